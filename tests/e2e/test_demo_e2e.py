"""`syncd demo` is the README's first command: it must run clean on a fresh machine."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_relays_everyone_once_and_leaves_no_residue() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sync.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    first, _, second = done.stdout.partition("# second add")
    created = re.findall(r": (\w+): created \d+", first)
    assert created
    assert len(created) == first.count("/in/")
    assert ": created " not in second
    assert second.count(": unchanged ") == len(created)
    match = re.search(r"residue scan: (\d+) hits for (\d+) strings", done.stdout)
    assert match is not None
    assert match.group(1) == "0"
    assert int(match.group(2)) > 0
