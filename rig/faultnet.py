"""The network between syncd and a sandbox, with the faults a real network has.

A :class:`FaultProxy` listens on the port a config points at and pipes bytes to the
sandbox's own server. It can, on request:

- **outage**: stop listening for N seconds — new connections are *refused*, open ones are
  cut — then listen again on the same port, as a CRM that went down and came back;
- **reset**: cut a connection with a TCP RST instead of letting the answer through.

Which answers to cut is decided by the sandbox, which knows the request (path, method) and
whether the write was applied: it marks the connection by the proxy's upstream port (the
``client`` of the ASGI scope) before the first byte of its answer leaves, and the proxy
resets the matching client connection when that byte arrives. So "connection reset before
the write" and "response lost after the write was applied" are both real TCP resets seen
by an unmodified HTTP client.
"""

from __future__ import annotations

import contextlib
import socket
import struct

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

_CHUNK = 65536


class FaultProxy:
    """A loopback TCP proxy in front of one sandbox server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._doomed: set[int] = set()  # upstream local ports whose answer must not arrive
        self._outage = anyio.Event()
        self._outage_seconds = 0.0
        self.outages = 0

    # -- knobs (called from the sandbox's control endpoint, same event loop) -------------

    def outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds`` and cut the open ones."""
        self._outage_seconds = seconds
        self._outage.set()

    def doom(self, upstream_port: int) -> None:
        """Reset the client connection behind ``upstream_port`` before its answer arrives."""
        self._doomed.add(upstream_port)

    # -- serving ---------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Proxy until cancelled; reports the listening port once."""
        started = False
        while True:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
            self.port = listener.extra(SocketAttribute.local_port)
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, self._pipe, tg)
                if not started:
                    task_status.started(self.port)
                    started = True
                await self._outage.wait()
                tg.cancel_scope.cancel()  # stop listening, cut every open connection
            self.outages += 1
            await anyio.sleep(self._outage_seconds)  # the outage lasts this long
            self._outage = anyio.Event()

    async def _pipe(self, client: SocketStream) -> None:
        async with client:
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
            except OSError:
                _reset(client)
                return
            async with upstream, anyio.create_task_group() as tg:
                port = upstream.extra(SocketAttribute.local_port)
                tg.start_soon(self._forward, client, upstream, None, tg.cancel_scope)
                tg.start_soon(self._forward, upstream, client, port, tg.cancel_scope)

    async def _forward(
        self,
        source: SocketStream,
        sink: SocketStream,
        doomed_port: int | None,
        scope: anyio.CancelScope,
    ) -> None:
        try:
            while True:
                data = await source.receive(_CHUNK)
                if doomed_port is not None and doomed_port in self._doomed:
                    self._doomed.discard(doomed_port)
                    _reset(sink)
                    break
                await sink.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()


def _reset(stream: SocketStream) -> None:
    """Make closing ``stream`` send a TCP RST (SO_LINGER 0) rather than a clean FIN."""
    raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
