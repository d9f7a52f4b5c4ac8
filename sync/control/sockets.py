"""The control socket: bound 0600 in a 0700 directory, owner-only, stale ones replaced,
and bound again if its file disappears while the daemon runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import sys
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sync.errors import SyncdError
from sync.private_paths import private_dir

log = structlog.get_logger("syncd.control")

#: How often the daemon checks that its socket file is still the one it bound.
WATCH_SECONDS = 2.0

#: macOS and the BSDs: ``getsockopt(SOL_LOCAL, LOCAL_PEERCRED)`` gives a ``struct xucred``
#: whose first two fields are ``u_int cr_version`` (0) and ``uid_t cr_uid``.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
_XUCRED_SIZE = 76  # version, uid, ngroups (+ padding), 16 groups


class AlreadyRunning(SyncdError):
    """Another daemon answers on the control socket."""


@dataclass(frozen=True, slots=True)
class ControlSocket:
    """A bound control socket and the file it made."""

    path: Path
    sock: socket.socket
    identity: tuple[int, int]

    def present(self) -> bool:
        """Whether the path still names the socket this object bound."""
        try:
            current = os.lstat(self.path)
        except OSError:
            return False
        return (current.st_ino, current.st_dev) == self.identity

    def remove(self) -> None:
        """Remove the socket file if it is still ours (not a successor daemon's)."""
        if self.present():
            with contextlib.suppress(OSError):
                self.path.unlink()


def bind_control_socket(path: Path) -> ControlSocket:
    """A listening Unix socket at ``path`` that only this user can connect to."""
    private_dir(path.parent, setting="[daemon] socket")
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
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    made = os.stat(path)
    return ControlSocket(path, sock, (made.st_ino, made.st_dev))


def peer_uid(sock: socket.socket | TransportSocket) -> int | None:
    """The uid of the process at the other end of a Unix socket; None where the OS has no
    way to tell. An ``OSError`` from the OS is passed on (the caller refuses the peer)."""
    if sys.platform == "linux":
        # struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("=iII"))
        _pid, uid, _gid = struct.unpack("=iII", raw)
        return int(uid)
    if sys.platform == "darwin" or sys.platform.startswith("freebsd"):
        option = getattr(socket, "LOCAL_PEERCRED", _LOCAL_PEERCRED)
        raw = sock.getsockopt(_SOL_LOCAL, option, _XUCRED_SIZE)
        version, uid = struct.unpack_from("=II", raw)
        if version != 0:
            raise OSError(f"unknown xucred version {version}")
        return int(uid)
    return None


class OwnerOnlyProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that hangs up on any peer but the socket's owner."""

    def owner(self) -> int:
        """The only uid allowed to talk to the daemon: the daemon's own."""
        return os.getuid()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if not isinstance(sock, socket.socket | TransportSocket) or sock.family != socket.AF_UNIX:
            return
        try:
            uid = peer_uid(sock)
        except OSError:
            log.warning("control.peer_unknown")
            transport.close()
            return
        if uid is not None and uid != self.owner():
            log.warning("control.peer_refused", uid=uid)
            transport.close()


#: Serves the control API on one more listening socket (``serve`` with the app bound).
ServeOn = Callable[..., Coroutine[Any, Any, None]]


class ControlSocketLost(SyncdError):
    """The control socket's file went away under the daemon and could not be bound again."""


async def keep_control_socket(
    control: ControlSocket,
    serve_on: ServeOn,
    stopping: anyio.Event,
    *,
    interval: float = WATCH_SECONDS,
    lost: Callable[[ControlSocketLost], None] | None = None,
) -> None:
    """Bind the control socket again (and serve it too) if its file is deleted or replaced.

    When it cannot be bound again (its directory cannot be made private, another daemon
    took the path), logs why, tells ``lost`` and sets ``stopping``: the daemon drains, then
    exits with that error (exit 1, so a service manager starts it again) rather than serving
    nothing. Returns once ``stopping`` is set, after stopping the servers it started and
    removing the file it bound.
    """
    current = control
    servers: list[uvicorn.Server] = []
    try:
        async with anyio.create_task_group() as tg:
            while True:
                with anyio.move_on_after(interval):
                    await stopping.wait()
                if stopping.is_set():
                    break
                if current.present():
                    continue
                log.warning("control.socket_lost")
                try:
                    fresh = bind_control_socket(control.path)
                except (SyncdError, OSError) as error:
                    log.exception("control.socket_unrecoverable")
                    why = str(error) if isinstance(error, SyncdError) else error.strerror
                    if lost is not None:
                        lost(
                            ControlSocketLost(
                                f"the control socket {control.path} was removed and cannot be "
                                f"made again ({why}); syncd stopped: fix that path and start "
                                "syncd again"
                            )
                        )
                    stopping.set()
                    break
                if servers:  # a socket this watcher bound was lost in turn: retire its server
                    servers[-1].should_exit = True
                servers.append(await tg.start(serve_on, fresh.sock))
                current = fresh
                log.info("control.socket_rebound")
            for server in servers:
                server.should_exit = True
    finally:
        if current is not control:
            current.remove()
