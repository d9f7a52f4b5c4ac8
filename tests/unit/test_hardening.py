"""`syncd run` turns core dumps off, so a native crash writes no memory to disk (P1, P2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys
from sync import hardening
if PLATFORM:
    sys.platform = PLATFORM
before = {"limit": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": hardening.dumpable()}
hardening.no_core_dumps()
hardening.no_core_dumps()  # twice: still fine once the hard limit is 0
status = {}
try:
    with open("/proc/self/status") as lines:
        status = dict(line.rstrip("\\n").split(":\\t", 1) for line in lines if ":\\t" in line)
except OSError:
    pass
print(json.dumps({
    "before": before,
    "limit": resource.getrlimit(resource.RLIMIT_CORE),
    "dumpable": hardening.dumpable(),
    "core_dumping": status.get("CoreDumping"),
}))
"""


def probe(platform: str = "") -> dict[str, object]:
    """Run the probe in a fresh interpreter, so this test process keeps its own limits;
    ``platform`` is what the probe tells syncd the platform is."""
    code = f"PLATFORM = {platform!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


class TestNoCoreDumps:
    """no_core_dumps() sets RLIMIT_CORE to 0 and, on Linux, clears the dumpable flag."""

    def test_core_limit_is_zero(self) -> None:
        """Soft and hard core limits are 0 afterwards, so no child can raise them."""
        assert probe()["limit"] == [0, 0]

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
    def test_not_dumpable_on_linux(self) -> None:
        """prctl(PR_GET_DUMPABLE) reads 1 before and 0 after; no core is being dumped."""
        result = probe()
        assert result["before"]["dumpable"] == 1  # type: ignore[index]  # JSON object
        assert result["dumpable"] == 0
        assert result["core_dumping"] == "0"

    def test_elsewhere_prctl_is_skipped_without_raising(self) -> None:
        """Told it runs on macOS, it still zeroes the core limit and raises nothing."""
        result = probe("darwin")
        assert result["limit"] == [0, 0]
        assert result["dumpable"] is None
