"""The thin CLI: standard library only, exit codes, and the sentence on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sync.cli_add import describe, exit_code

HEAVY = ("httpx", "structlog", "keyring", "anyio", "starlette", "uvicorn", "tenacity")


class TestImports:
    """`status`, `add-contact`, `pause`, `resume` load no third-party package."""

    @pytest.mark.parametrize("command", ["status", "add-contact ada-lovelace", "pause", "resume"])
    def test_thin_commands_import_stdlib_only(self, command: str, tmp_path: Path) -> None:
        """Running the command (against no daemon) imports none of the heavy packages."""
        code = (
            "import sys, json\n"
            "from sync.cli import main\n"
            f"rc = main({command.split()!r})\n"
            f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
            "print(json.dumps([rc, heavy]))\n"
        )
        env = {
            "XDG_RUNTIME_DIR": str(tmp_path),
            "SYNCD_CONFIG": str(tmp_path / "none.toml"),
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        rc, heavy = json.loads(done.stdout.strip().splitlines()[-1])
        assert rc == 3
        assert heavy == []


def _sel(*outcomes: tuple[str, str]) -> dict[str, object]:
    return {
        "targets": {f"crm{i}": {"outcome": o, "reason": r} for i, (o, r) in enumerate(outcomes)}
    }


class TestExitCodes:
    """add-contact's exit code follows the README's exit codes."""

    @pytest.mark.parametrize(
        ("selections", "code"),
        [
            pytest.param([_sel(("created", ""), ("unchanged", ""))], 0, id="all-ok"),
            pytest.param([_sel(("created", ""), ("failed", "error"))], 1, id="one-failed"),
            pytest.param([_sel(("ambiguous", ""))], 1, id="ambiguous"),
            pytest.param([_sel(("failed", "auth"), ("created", ""))], 4, id="auth-only"),
            pytest.param([_sel(("failed", "auth"), ("failed", "error"))], 1, id="auth-and-other"),
            pytest.param([_sel(("refused", "privacy"), ("refused", "privacy"))], 5, id="refused"),
        ],
    )
    def test_exit_code(self, selections: list[dict[str, object]], code: int) -> None:
        """Each mix of outcomes maps to its exit code."""
        assert exit_code(selections) == code  # type: ignore[arg-type]

    def test_lines(self) -> None:
        """One line per CRM in the documented forms."""
        assert describe("hubspot", {"outcome": "created", "id": "123"}) == "hubspot: created 123"
        assert (
            describe("hubspot", {"outcome": "ambiguous", "candidates": ["12", "57"]})
            == "hubspot: ambiguous 12, 57"
        )
        assert describe("pipedrive", {"outcome": "failed", "detail": "x; y"}) == (
            "pipedrive: failed: x; y"
        )


class TestErrors:
    """Errors are one sentence on stderr, never a traceback."""

    def test_usage_error_is_one_line(self, tmp_path: Path) -> None:
        """A malformed ref exits 2 with one line on stderr."""
        env = {"XDG_RUNTIME_DIR": str(tmp_path), "SYNCD_CONFIG": str(tmp_path / "none.toml")}
        done = subprocess.run(
            [sys.executable, "-m", "sync.cli", "add-contact", "not a ref"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
