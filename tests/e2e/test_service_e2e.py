"""`syncd run` as a service manager starts it: NOTIFY_SOCKET and WATCHDOG_USEC set, the
messages read from a datagram socket the test owns, the real keyring and sandboxes behind."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import HUBSPOT_TOKEN, SOURCE_TOKEN, Env

pytestmark = pytest.mark.e2e

#: WATCHDOG_USEC for the daemon: it should ping every 0.2 s.
WATCHDOG_USEC = 400_000


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A bound datagram socket in a short temp dir (sun_path is short)."""
    directory = tempfile.mkdtemp(prefix="syncd-notify-")
    path = os.path.join(directory, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


def read_until(sock: socket.socket, line: str, timeout: float = 30.0) -> list[str]:
    """Every message read until one holding ``line`` (fails the test past ``timeout``)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(line in m.splitlines() for m in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {line!r} within {timeout} s: {seen}"
        sock.settimeout(left)
        seen.append(sock.recv(4096).decode())
    return seen


class TestNotifyProtocol:
    """The real `syncd run` speaks the notify protocol a `Type=notify` unit expects."""

    def test_ready_watchdog_and_stopping(self, env: Env, notify_socket: socket.socket) -> None:
        """READY=1 (with an idle status) comes first and the daemon answers then; WATCHDOG=1
        follows at half the interval; SIGTERM sends STOPPING=1 and exits 0; no message
        carries a credential."""
        env.environ |= {
            "NOTIFY_SOCKET": notify_socket.getsockname(),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        env.environ.pop("WATCHDOG_PID", None)
        daemon = env.start_daemon()
        first = read_until(notify_socket, "READY=1")
        assert len(first) == 1
        assert "STATUS=idle" in first[0].splitlines()
        assert env.syncd("status", "--json").returncode == 0
        started = time.monotonic()
        pings = read_until(notify_socket, "WATCHDOG=1")
        pings += read_until(notify_socket, "WATCHDOG=1")
        pings += read_until(notify_socket, "WATCHDOG=1")
        assert time.monotonic() - started < 3.0  # three pings at 0.2 s, on a loaded machine
        assert env.stop_daemon(daemon) == 0
        rest = read_until(notify_socket, "STOPPING=1")
        for message in first + pings + rest:
            assert SOURCE_TOKEN not in message
            assert HUBSPOT_TOKEN not in message
