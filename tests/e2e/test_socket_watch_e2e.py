"""The control socket file deleted under a running daemon: `syncd run` binds it again and
answers, or stops cleanly and says why in its log — it never goes on serving nothing."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time

import pytest

from tests.e2e.conftest import Env

pytestmark = pytest.mark.e2e

#: The daemon looks every 2 s (sync.control.sockets.WATCH_SECONDS); this leaves room for a
#: loaded machine without letting a daemon that never notices pass.
DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.2


def events(env: Env) -> list[str]:
    path = env.root / "log" / "syncd.log"
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines()]


def answers_again(env: Env) -> subprocess.CompletedProcess[str]:
    """Poll `syncd status --json` until it succeeds; fails the test past the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        done = env.syncd("status", "--json")
        if done.returncode == 0:
            return done
        assert time.monotonic() < deadline, f"no answer within {DEADLINE_SECONDS}s: {done.stderr}"
        time.sleep(POLL_SECONDS)


class TestSocketDeleted:
    """The daemon notices its socket file is gone and serves a new one."""

    def test_deleted_socket_is_bound_again(self, env: Env) -> None:
        """After `rm` of the socket, status answers again on a fresh 0600 socket, and a
        SIGTERM then stops the daemon with 0 and removes that socket too."""
        daemon = env.start_daemon()
        assert env.syncd("status", "--json").returncode == 0
        env.socket.unlink()
        assert env.syncd("status").returncode == 3  # gone: nobody answers at the path
        status = json.loads(answers_again(env).stdout)
        assert status["state"] == "idle"
        assert stat.S_IMODE(env.socket.lstat().st_mode) == 0o600
        assert env.stop_daemon(daemon) == 0
        assert not env.socket.exists()
        assert {"control.socket_lost", "control.socket_rebound"} <= set(events(env))

    def test_deleted_directory_is_made_again(self, env: Env) -> None:
        """After the socket's whole directory is deleted, it comes back 0700 and answers."""
        daemon = env.start_daemon()
        shutil.rmtree(env.socket.parent)
        answers_again(env)
        assert stat.S_IMODE(env.socket.parent.lstat().st_mode) == 0o700
        assert env.stop_daemon(daemon) == 0

    def test_unrecoverable_place_stops_the_daemon_cleanly(self, env: Env) -> None:
        """When the directory cannot be made again (a file took its place), the daemon
        drains, logs why, and exits 1 with a sentence, so a service manager restarts it."""
        daemon = env.start_daemon()
        shutil.rmtree(env.socket.parent)
        env.socket.parent.write_text("", encoding="utf-8")
        out, err = daemon.communicate(timeout=DEADLINE_SECONDS + 30)
        env.outputs += [out, err]
        assert daemon.returncode == 1, err
        assert f"the control socket {env.socket} was removed and cannot be made again" in err
        assert "Traceback" not in err
        logged = events(env)
        assert "control.socket_unrecoverable" in logged
        assert logged[-1] == "daemon.stopped"
