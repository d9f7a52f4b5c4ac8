"""Serve an ASGI app on a socket we bound ourselves, as a task with an owner.

uvicorn normally installs signal handlers and binds its own socket; syncd owns both (the
daemon's signals, the control socket's mode, a sandbox's port 0), so this drives uvicorn's
startup, main loop and shutdown directly from inside a task group.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp


class _OwnedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner and sleeps while idle.

    uvicorn's own main loop wakes ten times a second to refresh the Date header and look at
    ``should_exit``; a daemon that lives for weeks on a laptop should not. Here setting
    ``should_exit`` wakes the loop, and no Date header is sent (no client of ours reads it).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        """Whether the server was asked to stop."""
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()

    async def main_loop(self) -> None:
        """Set the default headers once, then wait to be told to exit."""
        await self.on_tick(0)
        await self._exit.wait()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    graceful_seconds: int = 5,
    http_protocol: type[asyncio.Protocol] | None = None,
    task_status: TaskStatus[uvicorn.Server] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sock`` until cancelled or until ``server.should_exit`` is set.

    Reports the server through ``task_status`` once it accepts connections.
    """
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=graceful_seconds,
        server_header=False,
        date_header=False,
        http=http_protocol if http_protocol is not None else "auto",
    )
    config.load()
    server = _OwnedServer(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    task_status.started(server)
    try:
        await server.main_loop()
    finally:
        with anyio.CancelScope(shield=True):
            await server.shutdown(sockets=[sock])
