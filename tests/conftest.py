"""Markers every run relies on, and no silent skips.

Every test under tests/e2e/ is marked ``e2e``. A run that includes tests needing the real
OS keyring (the e2e harness's ``sandboxes`` fixture, or the ``keyring`` marker) checks once,
before its first test, that a Secret Service answers; if none does it stops with a sentence
saying how to get one. Only ``SYNCD_TEST_NO_KEYRING=1`` outside CI turns that into visible
skips, for development on a machine without D-Bus.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).parent / "e2e"
OPT_OUT = "SYNCD_TEST_NO_KEYRING"
NO_KEYRING = (
    "these tests need a real OS keyring (a Secret Service on D-Bus) and none answers here: "
    "run them through `bash scripts/test.sh`, which installs and starts one "
    f"(or set {OPT_OUT}=1 to skip them while developing)"
)


def needs_keyring(item: pytest.Item) -> bool:
    """Whether ``item`` stores credentials in the real OS keyring."""
    return item.get_closest_marker("keyring") is not None or "sandboxes" in getattr(
        item, "fixturenames", ()
    )


def keyring_usable() -> bool:
    """Whether syncd, started as the CLI starts, finds a keyring it accepts."""
    probe = subprocess.run(
        [sys.executable, "-c", "from sync.secrets import KeyringTokenStore; KeyringTokenStore()"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return probe.returncode == 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e/ ``e2e`` (before ``-m`` selects)."""
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Stop before the first test when selected tests need a keyring this machine lacks."""
    if session.config.option.collectonly:
        return
    wanting = [item for item in session.items if needs_keyring(item)]
    if not wanting or keyring_usable():
        return
    if os.environ.get(OPT_OUT) == "1" and not os.environ.get("CI"):
        skip = pytest.mark.skip(reason=f"no OS keyring and {OPT_OUT}=1")
        for item in wanting:
            item.add_marker(skip)
        return
    pytest.exit(NO_KEYRING, returncode=pytest.ExitCode.USAGE_ERROR)
