"""What `syncd status` and `add-contact --no-wait` load before they ask the daemon, and that
the shortcuts that keep them quick answer as the full machinery would.

Extends test_thin_cli.py (no third-party package) with the standard-library modules that
cost most of the start: none of them may come back on these paths. Not a timing test: the
wall time is measured in bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync import config, paths
from sync.cli import THIN, build_parser, subcommands, thin_command
from sync.control.client import ControlClient
from sync.errors import DaemonNotRunning, Problem, SyncdError
from sync.refs import BadLine

#: Modules (or packages) that once made up most of `syncd status`'s start.
SLOW = (
    "importlib.metadata",  # the --version string
    "sync.config",  # the full config validation ...
    "sync.config_check",
    "connectors",  # ... and the connector registry it loads
    "http.client",  # the control client's HTTP, which loads ssl and email
    "socket",  # its enums of every constant; the client uses _socket
    "selectors",
    "ssl",
    "email",
    "dataclasses",  # loads inspect, ast, dis
    "inspect",
    "traceback",  # only for --debug
    "html",  # only for --format waybar
    "textwrap",  # only for the table
    "csv",  # only for LinkedIn's Connections.csv
    "platformdirs",
)
PROBE = """
import json, sys
from sync.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(argv: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    slow = [m for m in result["modules"] if m in SLOW or m.split(".")[0] in SLOW]
    slow += [m for m in result["modules"] if m.startswith("importlib.metadata")]
    return result["code"], sorted(set(slow))


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg"),
    }


class TestThinImports:
    """The quick commands load none of the slow modules, with or without a config file."""

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(["status"], id="status"),
            pytest.param(["status", "--json"], id="status-json"),
            pytest.param(["status", "--format", "oneline"], id="status-oneline"),
            pytest.param(["add-contact", "ada-lovelace", "--no-wait"], id="add-no-wait"),
            pytest.param(["add-contact", "ada-lovelace"], id="add"),
            pytest.param(["pause"], id="pause"),
            pytest.param(["resume"], id="resume"),
        ],
    )
    @pytest.mark.parametrize("with_socket_key", [True, False], ids=["socket-key", "no-socket"])
    def test_no_slow_module(self, tmp_path: Path, argv: list[str], with_socket_key: bool) -> None:
        """Against no daemon the command exits 3 (0 for a bar format) and loaded none of SLOW."""
        file = tmp_path / "config.toml"
        daemon = f'[daemon]\nsocket = "{tmp_path / "run" / "syncd.sock"}"\n\n'
        file.write_text(
            (daemon if with_socket_key else "")
            + '[source]\ntype = "linkedin"\n\n[crm.hubspot]\ntype = "hubspot"\n',
            encoding="utf-8",
        )
        code, slow = _loaded([argv[0], "--config", str(file), *argv[1:]], _env(tmp_path))
        assert code == (0 if "oneline" in argv else 3)
        assert slow == []

    def test_config_free_default(self, tmp_path: Path) -> None:
        """Without any config file the socket is found, and still nothing slow is loaded."""
        env = {**_env(tmp_path), "SYNCD_CONFIG": str(tmp_path / "none.toml")}
        assert _loaded(["status"], env) == (3, [])

    def test_version_is_looked_up_when_asked(self, tmp_path: Path) -> None:
        """`syncd --version` still prints the installed version, and exits 0."""
        from importlib.metadata import version

        done = subprocess.run(
            [sys.executable, "-m", "sync.cli", "--version"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"syncd {version('syncd')}\n"


def _handler_id(args: argparse.Namespace) -> object:
    handler = vars(args).get("handler")
    cells = tuple(c.cell_contents for c in handler.__closure__ or ()) if handler else ()
    return (getattr(handler, "__qualname__", None), cells)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, ...]:
    """What ``parser`` makes of ``argv``: the namespace and its handler, or the exit."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return ("exit", stop.code)
    rest = {k: v for k, v in vars(args).items() if k != "handler"}
    return ("args", rest, _handler_id(args))


class TestOneCommandParser:
    """A command line naming a thin command parses with that command's parser alone exactly
    as with the whole parser."""

    @pytest.mark.parametrize("name", THIN)
    def test_same_help(self, name: str) -> None:
        """The command's --help text, usage and defaults are the same."""
        alone = subcommands(build_parser(name))
        assert list(alone) == [name]
        full = subcommands(build_parser())[name]
        assert alone[name].format_help() == full.format_help()
        assert alone[name].prog == full.prog

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(["status"], id="status"),
            pytest.param(["--debug", "status", "--json"], id="debug-status"),
            pytest.param(["status", "--format", "waybar", "--config", "x.toml"], id="waybar"),
            pytest.param(["status", "--format", "nope"], id="bad-format"),
            pytest.param(["status", "--json", "--format", "oneline"], id="exclusive"),
            pytest.param(["status", "extra"], id="extra-word"),
            pytest.param(["status", "--debug"], id="root-flag-after"),
            pytest.param(["add-contact", "a-b", "--no-wait", "--to", "x,y"], id="add"),
            pytest.param(["add-contact", "--from-file", "-", "--json"], id="add-file"),
            pytest.param(["pause"], id="pause"),
            pytest.param(["resume", "--config", "c"], id="resume"),
            pytest.param(["forget", "a-b", "--yes", "--undo"], id="forget"),
            pytest.param(["block", "a-b"], id="block"),
            pytest.param(["unfollow", "a-b", "--to", "h"], id="unfollow"),
            pytest.param(["cancel"], id="cancel-missing"),
            pytest.param(["check", "a-b", "--json"], id="check"),
            pytest.param(["export"], id="export"),
        ],
    )
    def test_same_parse(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """The namespace (handler included), or the exit code and the message, are the same."""
        name = thin_command(argv)
        assert name is not None
        alone = _parse(build_parser(name), argv)
        alone_out = capsys.readouterr()
        full = _parse(build_parser(), argv)
        assert alone == full
        assert alone_out == capsys.readouterr()

    @pytest.mark.parametrize(
        ("argv", "name"),
        [
            pytest.param(["status"], "status", id="status"),
            pytest.param(["--debug", "add-contact", "x"], "add-contact", id="after-debug"),
            pytest.param([], None, id="nothing"),
            pytest.param(["--help"], None, id="help"),
            pytest.param(["-h", "status"], None, id="help-first"),
            pytest.param(["--version"], None, id="version"),
            pytest.param(["--deb", "status"], None, id="abbreviated-flag"),
            pytest.param(["stat"], None, id="abbreviated-command"),
            pytest.param(["run"], None, id="not-thin"),
            pytest.param(["auth", "status"], None, id="nested"),
            pytest.param(["--config", "status"], None, id="misplaced-option"),
        ],
    )
    def test_thin_command(self, argv: list[str], name: str | None) -> None:
        """Only a thin command in the command's place picks the one-command parser."""
        assert thin_command(argv) == name

    def test_only_thin_commands(self) -> None:
        """Asking for one parser of a command that is not thin is a programming error."""
        with pytest.raises(ValueError, match="thin"):
            build_parser("run")


class TestSocketPath:
    """sync.paths finds the same socket and config file as sync.config does."""

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param(None, id="no-file"),
            pytest.param("[daemon\n", id="broken-toml"),
            pytest.param(b"\xff\xfe", id="not-utf8"),
            pytest.param('[source]\ntype = "linkedin"\n', id="no-socket-word"),
            pytest.param('[daemon]\nsocket = ""\n', id="empty"),
            pytest.param('[daemon]\nsocket = "   "\n', id="blank"),
            pytest.param('[daemon]\nsocket = "/abs/s.sock"\n', id="absolute"),
            pytest.param('[daemon]\nsocket = "rel/s.sock"\n', id="relative"),
            pytest.param('[daemon]\nsocket = "~/s.sock"\n', id="home"),
            pytest.param("[daemon]\nsocket = 3\n", id="not-a-string"),
            pytest.param('daemon = "x"\n', id="daemon-not-a-table"),
            pytest.param('daemon.socket = "/dotted.sock"\n', id="dotted-key"),
            pytest.param('[daemon]\n"\\u0073ocket" = "/escaped.sock"\n', id="escaped-key"),
            pytest.param('# socket = "/c.sock"\n[daemon]\nlog_level = "info"\n', id="comment"),
        ],
    )
    def test_same_as_config(self, tmp_path: Path, text: str | bytes | None) -> None:
        """Each file gives the same socket path both ways."""
        file = tmp_path / "syncd.toml"
        if isinstance(text, bytes):
            file.write_bytes(text)
        elif text is not None:
            file.write_text(text, encoding="utf-8")
        env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
        expected = config.socket_path(str(file), env)
        assert paths.socket_path(str(file), env) == expected

    @pytest.mark.parametrize(
        "env",
        [
            pytest.param({}, id="empty"),
            pytest.param({"SYNCD_CONFIG": "/e/c.toml"}, id="env"),
            pytest.param({"XDG_CONFIG_HOME": "/x"}, id="xdg"),
            pytest.param({"XDG_RUNTIME_DIR": "/run/user/7"}, id="runtime"),
            pytest.param({"XDG_RUNTIME_DIR": "  "}, id="blank-runtime"),
        ],
    )
    def test_same_places(self, env: dict[str, str]) -> None:
        """The config file and the runtime directory are found alike, flag or none."""
        assert paths.resolve_path(None, env) == config.resolve_path(None, env)
        assert paths.resolve_path("/f.toml", env) == config.resolve_path("/f.toml", env)
        assert paths.runtime_dir(env) == config.runtime_dir(env)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[bytes], Path]]:
    """A one-shot server on a private socket that reads a request and answers ``raw``."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    path = run / "syncd.sock"
    threads: list[threading.Thread] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(30)

    def start(raw: bytes) -> Path:
        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                conn.sendall(raw)

        thread = threading.Thread(target=answer)
        thread.start()
        threads.append(thread)
        return path

    yield start
    for thread in threads:
        thread.join(timeout=30)
    listener.close()


class TestControlClientHttp:
    """The client's own HTTP reads every way the daemon may frame an answer."""

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b'HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{"state": 1}', id="length"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'5\r\n{"sta\r\n7;x=y\r\nte": 1}\r\n0\r\nX-T: 1\r\n\r\n',
                id="chunked",
            ),
            pytest.param(b'HTTP/1.1 200 OK\r\nX: y\r\n\r\n{"state": 1}', id="until-close"),
            pytest.param(
                b"HTTP/1.1 100 Continue\r\n\r\n"
                b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"state": 1}',
                id="interim",
            ),
        ],
    )
    def test_framings(self, serve: Callable[[bytes], Path], raw: bytes) -> None:
        """Length, chunks, or the end of the connection: the same JSON comes out."""
        assert ControlClient(serve(raw), timeout=10).status() == {"state": 1}

    def test_error_answer(self, serve: Callable[[bytes], Path]) -> None:
        """A 4xx answer's sentence is the UsageError's."""
        body = b'{"error": "no such selection"}'
        raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        with pytest.raises(SyncdError, match="no such selection") as caught:
            ControlClient(serve(raw), timeout=10).cancel("sel_0")
        assert caught.value.exit_code == 2

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b"", id="nothing"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", id="cut-short"),
        ],
    )
    def test_closed_early(self, serve: Callable[[bytes], Path], raw: bytes) -> None:
        """A connection closed before the whole answer is a daemon that cannot be reached."""
        with pytest.raises(DaemonNotRunning, match="closed the connection"):
            ControlClient(serve(raw), timeout=10).status()

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b"SSH-2.0-OpenSSH\r\n\r\n", id="not-http"),
            pytest.param(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", id="bad-header"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="bad-length"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"
            ),
        ],
    )
    def test_not_http(self, serve: Callable[[bytes], Path], raw: bytes) -> None:
        """Something that is not an HTTP answer is one sentence, not a crash."""
        with pytest.raises(SyncdError, match="not HTTP"):
            ControlClient(serve(raw), timeout=10).status()

    def test_request_bytes(self, tmp_path: Path) -> None:
        """The request carries its method, path, JSON body and length, and asks to close."""
        from sync.control.client import _request

        raw = _request("POST", "/v1/check", b'{"a": 1}')
        head, body = raw.split(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/check HTTP/1.1"
        assert b"Connection: close" in lines
        assert b"Content-Length: 8" in lines
        assert b"Content-Type: application/json" in lines
        assert body == b'{"a": 1}'
        assert b"Content-Length: 0" in _request("POST", "/v1/pause", None).split(b"\r\n")
        assert b"Content-Length" not in _request("GET", "/v1/status", None)


class TestHandWrittenValues:
    """Problem and BadLine behave as the frozen dataclasses they replace."""

    @pytest.mark.parametrize(
        ("make", "other"),
        [
            pytest.param(lambda: Problem("/c.toml", "daemon.socket", "bad"), "key", id="problem"),
            pytest.param(lambda: BadLine(3, "not a ref"), "reason", id="badline"),
        ],
    )
    def test_value(self, make: Callable[[], object], other: str) -> None:
        """Equal by fields, hashable, frozen, with a dataclass-style repr, and picklable."""
        one, two = make(), make()
        assert one == two
        assert hash(one) == hash(two)
        assert one != ("/c.toml", "daemon.socket", "bad")
        assert pickle.loads(pickle.dumps(one)) == one  # noqa: S301 -- our own bytes
        with pytest.raises(AttributeError):
            setattr(one, other, "x")
        assert repr(one).startswith(type(one).__name__ + "(")
        assert str(Problem("/c", "", "m")) == "/c: m"
        assert str(Problem("/c", "k", "m")) == "/c: k: m"
