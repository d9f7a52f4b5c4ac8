"""The suite's own rules: every end-to-end test is marked ``e2e`` and every test has a timeout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def collect(*args: str) -> subprocess.CompletedProcess[str]:
    """`pytest --collect-only -q ARGS` in this repository, as a separate run."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestMarkers:
    """Markers and the timeout are applied by the configuration, not left to each file."""

    @pytest.mark.slow  # a second pytest run collecting every e2e module
    def test_every_e2e_test_is_marked_e2e(self) -> None:
        """Selecting `not e2e` under tests/e2e/ deselects every test there and keeps none."""
        unmarked = collect("-m", "not e2e", "tests/e2e")
        kept = [line for line in unmarked.stdout.splitlines() if "::" in line]
        assert kept == []
        deselected = re.search(r"\((\d+) deselected\)", unmarked.stdout)
        assert deselected is not None, unmarked.stdout + unmarked.stderr
        assert int(deselected.group(1)) > 0
        assert unmarked.returncode == pytest.ExitCode.NO_TESTS_COLLECTED

    def test_a_hang_fails_after_the_configured_timeout(self, pytestconfig: pytest.Config) -> None:
        """pytest-timeout is active with a default of at most a few minutes per test."""
        assert pytestconfig.pluginmanager.hasplugin("timeout")
        assert 0 < float(pytestconfig.getini("timeout")) <= 300
