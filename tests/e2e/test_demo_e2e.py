"""`syncd demo` is the README's first command: it must run clean on a fresh machine."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_relays_everyone_once_and_leaves_no_residue() -> None:
    """Every sample person is created once in each CRM, a re-add changes nothing, one of
    them is erased everywhere and then refused, and the scan finds no residue."""
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
    assert re.search(r"created \d+ \(\+[1-9]\d* messages?\)", first)
    readds = re.findall(r": unchanged \S+ \(\+(\d+) messages?\)", second)
    assert readds == ["0"] * len(created)
    forget = done.stdout.partition("# erase them everywhere")[2]
    assert len(re.findall(r"^\w+: erased \S+", forget, flags=re.MULTILINE)) == 3
    readd = forget.partition("# forgotten: refused")[2]
    assert readd.count(": refused: this person asked to be forgotten") == 3
    assert "(exit 5," in readd
    counts = re.search(r"the CRMs now hold: (.*) contacts", done.stdout)
    assert counts is not None
    assert {int(n) for n in re.findall(r"\b(\d+)\b", counts.group(1))} == {len(created) // 3 - 1}
    match = re.search(r"residue scan: (\d+) hits for (\d+) strings", done.stdout)
    assert match is not None
    assert match.group(1) == "0"
    assert int(match.group(2)) > 0
