"""The thin-client commands import the standard library only (README, "Commands"): run
each against a socket nobody listens on, then list what loaded."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
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
        ["forget", "ada-lovelace", "--yes"],
        ["forget", "ada-lovelace", "--undo"],
        ["block", "ada-lovelace"],
        ["unblock", "ada-lovelace"],
        ["export", "ada-lovelace"],
        ["cancel", "sel_0123456789abcdef"],
        ["follow", "ada-lovelace"],
        ["unfollow", "ada-lovelace"],
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


def _config(tmp_path: Path, socket_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[daemon]\nsocket = "{socket_path}"\n\n'
        '[source]\ntype = "linkedin"\n\n[crm.hubspot]\ntype = "hubspot"\n',
        encoding="utf-8",
    )
    return config


def _status(tmp_path: Path, socket_path: Path) -> subprocess.CompletedProcess[str]:
    """`syncd status` against ``socket_path``."""
    config = _config(tmp_path, socket_path)
    return subprocess.run(
        [sys.executable, "-m", "sync.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _listening(path: Path) -> socket.socket:
    """A socket that listens at ``path`` and never answers: a connection would queue."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    listener.setblocking(False)
    return listener


def _nobody_connected(listener: socket.socket) -> bool:
    try:
        accepted, _ = listener.accept()
    except BlockingIOError:
        return True
    accepted.close()
    return False


class TestSocketChecks:
    """The thin client refuses a socket or directory that is not the user's own and private,
    before it sends anything."""

    @pytest.mark.parametrize(
        ("dir_mode", "sock_mode", "words"),
        [
            pytest.param(0o755, 0o600, "mode 0755", id="dir-open-to-others"),
            pytest.param(0o710, 0o600, "mode 0710", id="dir-open-to-group"),
            pytest.param(0o700, 0o666, "mode 0666", id="socket-writable-by-all"),
            pytest.param(0o700, 0o620, "mode 0620", id="socket-writable-by-group"),
        ],
    )
    def test_loose_modes_are_refused(
        self, tmp_path: Path, dir_mode: int, sock_mode: int, words: str
    ) -> None:
        """`syncd status` exits 2 with one sentence naming the problem, and never connects."""
        run = tmp_path / "run"
        run.mkdir()
        path = run / "syncd.sock"
        with _listening(path) as listener:
            path.chmod(sock_mode)
            run.chmod(dir_mode)
            done = _status(tmp_path, path)
            assert _nobody_connected(listener)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1
        assert words in done.stderr
        assert "chmod" in done.stderr

    def test_symlinked_socket_is_refused(self, tmp_path: Path) -> None:
        """A link at the socket's path is refused without connecting through it."""
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        with _listening(tmp_path / "real.sock") as listener:
            (run / "syncd.sock").symlink_to(tmp_path / "real.sock")
            done = _status(tmp_path, run / "syncd.sock")
            assert _nobody_connected(listener)
        assert done.returncode == 2, done.stderr
        assert "symbolic link" in done.stderr

    def test_private_socket_is_used(self, tmp_path: Path) -> None:
        """A 0600 socket in a 0700 directory passes the checks and is connected to."""
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        path = run / "syncd.sock"
        connected: list[bool] = []

        def hang_up(listener: socket.socket) -> None:
            accepted, _ = listener.accept()
            connected.append(True)
            accepted.close()  # the client reports an unreachable daemon: exit 3

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(1)
            listener.settimeout(30)
            path.chmod(0o600)
            thread = threading.Thread(target=hang_up, args=(listener,))
            thread.start()
            done = _status(tmp_path, path)
            thread.join(timeout=30)
        assert connected == [True]
        assert done.returncode == 3, done.stderr
