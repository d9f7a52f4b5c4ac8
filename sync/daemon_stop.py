"""Stopping a daemon that still answers on the control socket (a `syncd run` in a terminal),
for `syncd uninstall --purge`: its pid from the socket's peer credentials, SIGTERM, and a
bounded wait for it to exit."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sync.purge import Report

#: The daemon drains for up to 10 s; the service manager allows 30 s (sync/service.py).
STOP_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class Peer:
    """The process serving the control socket."""

    pid: int
    uid: int


def socket_peer(path: Path) -> Peer | None:
    """The process listening on the control socket at ``path``; None when nobody answers.

    Raises ``UnsafePath`` for a socket that is not ours, and ``OSError`` when the OS cannot
    say who the peer is.
    """
    from sync.private_paths import check_socket

    check_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        return _peer_credentials(sock)
    finally:
        sock.close()


def _peer_credentials(sock: socket.socket) -> Peer:
    if sys.platform == "linux":
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("=iII"))
        pid, uid, _gid = struct.unpack("=iII", raw)
        return Peer(pid, uid)
    if sys.platform == "darwin":
        from sync.control.sockets import peer_uid

        raw = sock.getsockopt(0, 0x002, struct.calcsize("=i"))  # SOL_LOCAL, LOCAL_PEERPID
        uid = peer_uid(sock)
        return Peer(struct.unpack("=i", raw)[0], os.getuid() if uid is None else uid)
    raise OSError(errno.ENOSYS, "this OS does not tell the peer of a Unix socket")


def stop_daemon(path: Path, report: Report, *, wait: float = STOP_WAIT_S) -> bool:
    """SIGTERM the daemon answering on ``path`` and wait (at most ``wait`` s) until it and
    its socket are gone; False (with a sentence) when it could not be stopped."""
    from sync.private_paths import UnsafePath

    try:
        peer = socket_peer(path)
    except (UnsafePath, OSError) as error:
        report.failed(f"could not tell which process serves {path} ({error}); stop it by hand")
        return False
    if peer is None:
        return True
    if peer.uid != os.getuid() or peer.pid <= 0:
        report.failed(
            f"the process serving {path} is not one this user can stop; stop it by hand and "
            "run `syncd uninstall --purge` again"
        )
        return False
    if not _terminate_and_wait(peer.pid, wait):
        report.failed(
            f"syncd (pid {peer.pid}) did not stop within {wait:.0f} s of SIGTERM; stop it "
            f"(`kill {peer.pid}`) and run `syncd uninstall --purge` again; nothing else was removed"
        )
        return False
    report.done(f"stopped the syncd daemon (pid {peer.pid}) that served {path}")
    return True


def _terminate_and_wait(pid: int, wait: float) -> bool:
    """SIGTERM ``pid`` and wait for its exit, through a pidfd where the OS has one."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            signal.pidfd_send_signal(fd, signal.SIGTERM)
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(wait * 1000))
        except ProcessLookupError:
            return True
        finally:
            os.close(fd)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:  # no pidfd (macOS): nothing to wait on but time
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
