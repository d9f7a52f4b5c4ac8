"""The sandboxes' loopback sockets answer without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

import anyio

from rig.loopback import bind_loopback


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY only on accepted sockets whose protocol is TCP: the
    listening socket must say so, or each kept-alive answer waits ~40 ms for an ACK."""
    listener = bind_loopback()
    seen: list[int] = []
    accepted_one = anyio.Event()

    async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        accepted_one.set()

    server = await asyncio.start_server(accepted, sock=listener)
    async with server:
        host, port = listener.getsockname()[:2]
        stream = await anyio.connect_tcp(host, port)
        with anyio.fail_after(5):
            await accepted_one.wait()
        await stream.aclose()
    assert listener.proto == socket.IPPROTO_TCP
    assert seen == [1]
