"""`syncd completion bash|zsh|fish`: scripts generated from the parser, run in the real
shells where they are installed."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sync.cli import build_parser
from sync.completion import bash, commands, fish, zsh

#: Asks the bash function for the candidates of the words in "$1" (a trailing space means
#: the cursor is on a new, empty word), one per line.
ASK_BASH = """
source "$2"
read -ra COMP_WORDS <<< "$1"
[[ "$1" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_syncd
printf '%s\\n' "${COMPREPLY[@]}"
"""


def script(shell: str) -> str:
    """What `syncd completion SHELL` prints, through the real CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "sync.cli", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "syncd.bash"
    path.write_text(script("bash"), encoding="utf-8")
    return path


def candidates(bash_script: Path, typed: str) -> list[str]:
    """The completions bash offers after ``typed``."""
    done = subprocess.run(
        ["bash", "-c", ASK_BASH, "ask", typed, str(bash_script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [line for line in done.stdout.splitlines() if line]


class TestBash:
    """The bash function completes commands, nested actions, options and their choices."""

    @pytest.mark.parametrize(
        ("typed", "expected"),
        [
            pytest.param("syncd st", ["status"], id="command-prefix"),
            pytest.param("syncd service ", ["install", "uninstall", "status"], id="nested"),
            pytest.param("syncd status --format ", ["table", "waybar", "oneline"], id="choices"),
            pytest.param("syncd status --format w", ["waybar"], id="choice-prefix"),
            pytest.param("syncd auth s", ["set", "status"], id="auth-actions"),
            pytest.param("syncd completion ", ["bash", "zsh", "fish"], id="positional-choices"),
            pytest.param("syncd --debug pa", ["pause"], id="after-a-global-flag"),
            pytest.param("syncd add-contact --to", ["--to"], id="option-prefix"),
            pytest.param(
                "syncd status --config x.toml --format o", ["oneline"], id="skips-option-values"
            ),
            pytest.param(
                "syncd auth status --", ["--help", "--config", "--json"], id="nested-opts"
            ),
        ],
    )
    def test_candidates(self, bash_script: Path, typed: str, expected: list[str]) -> None:
        """``typed`` is completed with exactly ``expected``."""
        assert sorted(candidates(bash_script, typed)) == sorted(expected)

    def test_a_file_option_completes_paths(self, bash_script: Path, tmp_path: Path) -> None:
        """`--from-file` completes file names."""
        (tmp_path / "Connections.csv").write_text("", encoding="utf-8")
        found = candidates(bash_script, f"syncd add-contact --from-file {tmp_path}/Conn")
        assert found == [f"{tmp_path}/Connections.csv"]

    def test_the_script_is_valid_bash(self, bash_script: Path) -> None:
        """`bash -n` accepts it and it registers itself for `syncd`."""
        subprocess.run(["bash", "-n", str(bash_script)], check=True, timeout=30)
        registered = subprocess.run(
            ["bash", "-c", f"source {bash_script}; complete -p syncd"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert "-F _syncd" in registered.stdout


class TestFromTheParser:
    """A command added to the parser is completed without touching sync/completion.py."""

    def test_a_new_command_and_its_choices_appear_in_every_script(self) -> None:
        """A made-up `frobnicate --level low|high` shows up in bash, zsh and fish alike."""
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        new = sub.add_parser("frobnicate", help="a command no one wrote completion for")
        new.add_argument("--level", choices=("low", "high"))
        tree = commands(parser)
        assert "frobnicate" in {c.path for c in tree}
        for render in (bash, zsh, fish):
            text = render(tree)
            assert "frobnicate" in text, render.__name__
            assert "low high" in text or "'low' 'high'" in text, render.__name__

    @pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
    def test_every_command_is_mentioned(self, shell: str) -> None:
        """Each script names every command and nested action of the parser."""
        text = script(shell)
        for command in commands(build_parser()):
            for name in command.subcommands:
                assert name in text, (shell, command.path, name)


class TestOtherShells:
    """zsh and fish parse their scripts, where those shells are installed."""

    def test_zsh_syntax(self, tmp_path: Path) -> None:
        """`zsh -n` accepts the zsh script."""
        if shutil.which("zsh") is None:
            pytest.skip("zsh is not installed here; the script is only checked for its content")
        path = tmp_path / "_syncd"
        path.write_text(script("zsh"), encoding="utf-8")
        subprocess.run(["zsh", "-n", str(path)], check=True, timeout=30)

    def test_fish_syntax(self, tmp_path: Path) -> None:
        """`fish --no-execute` accepts the fish script."""
        if shutil.which("fish") is None:
            pytest.skip("fish is not installed here; the script is only checked for its content")
        path = tmp_path / "syncd.fish"
        path.write_text(script("fish"), encoding="utf-8")
        subprocess.run(["fish", "--no-execute", str(path)], check=True, timeout=30)
