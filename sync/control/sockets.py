"""The control socket: bound 0600 in a 0700 directory, owner-only, stale ones replaced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from uvicorn.protocols.http.h11_impl import H11Protocol

from sync.config import ensure_private_dir
from sync.errors import SyncdError


class AlreadyRunning(SyncdError):
    """Another daemon answers on the control socket."""


@dataclass(frozen=True, slots=True)
class ControlSocket:
    """A bound control socket and the file it made."""

    path: Path
    sock: socket.socket
    identity: tuple[int, int]

    def remove(self) -> None:
        """Remove the socket file if it is still ours (not a successor daemon's)."""
        with contextlib.suppress(OSError):
            current = os.stat(self.path)
            if (current.st_ino, current.st_dev) == self.identity:
                self.path.unlink()


def bind_control_socket(path: Path) -> ControlSocket:
    """A listening Unix socket at ``path`` that only this user can connect to."""
    ensure_private_dir(path.parent)
    if path.exists() or path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # left by a crash: nobody listens
        else:
            raise AlreadyRunning(
                f"syncd is already running on {path}; use `syncd status`, or stop it first"
            )
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bind under a umask that leaves the socket 0600 from its first instant.
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    made = os.stat(path)
    return ControlSocket(path, sock, (made.st_ino, made.st_dev))


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket, where the OS tells it."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class OwnerOnlyProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that hangs up on any peer but the socket's owner."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if isinstance(sock, socket.socket) and sock.family == socket.AF_UNIX:
            uid = peer_uid(sock)
            if uid is not None and uid != os.getuid():
                transport.close()
