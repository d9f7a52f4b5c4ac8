"""The thin-client commands import the standard library only (DESIGN.md, "The command line
must feel instant"): run each against a socket nobody listens on, then list what loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("httpx", "anyio", "structlog", "keyring", "tenacity", "starlette", "uvicorn")
PROBE = """
import json, sys
from sync.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["pause"],
        ["resume"],
        ["add-contact", "ada-lovelace"],
        ["check", "ada-lovelace"],
    ],
)
def test_thin_commands_load_no_heavy_module(tmp_path: Path, argv: list[str]) -> None:
    """Each command exits 3 (no daemon) having imported none of the daemon's libraries."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[daemon]\nsocket = "{tmp_path / "run" / "syncd.sock"}"\n\n'
        '[source]\ntype = "linkedin"\n\n[crm.hubspot]\ntype = "hubspot"\n'
    )
    probe = PROBE.replace("HEAVY", repr(json.dumps(HEAVY)))
    done = subprocess.run(
        [sys.executable, "-c", probe, argv[0], "--config", str(config), *argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 3, done.stderr
    assert result["heavy"] == []
    assert "syncd run" in done.stderr
