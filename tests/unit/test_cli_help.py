"""Every `--help` of `syncd` ends with an example, and keeps the exit codes."""

from __future__ import annotations

import pytest

from sync.cli import build_parser, subcommands

PARSERS = {"": build_parser(), **subcommands(build_parser())}


class TestHelp:
    """Each command's help, the nested ones included, shows how it is called."""

    @pytest.mark.parametrize("path", sorted(PARSERS), ids=lambda p: p or "syncd")
    def test_help_ends_with_an_example(self, path: str) -> None:
        """The help mentions an example, and its last line is a `syncd …` command line."""
        text = PARSERS[path].format_help()
        assert "example" in text.lower()
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        assert last.startswith(("syncd ", "printf ", "pass ")) or " syncd " in last, last

    @pytest.mark.parametrize("path", sorted(PARSERS), ids=lambda p: p or "syncd")
    def test_help_says_the_exit_codes(self, path: str) -> None:
        """The exit codes stay in every help text."""
        assert "exit codes:" in PARSERS[path].format_help()

    def test_examples_name_their_own_command(self) -> None:
        """A command's own examples call that command (no example copied from another)."""
        for path, parser in PARSERS.items():
            if not path:
                continue
            epilog = parser.epilog or ""
            tail = epilog[epilog.lower().rindex("example") :]
            assert f"syncd {path}" in tail, path
