"""Loopback TCP sockets for the sandboxes and the fault proxy (port 0: any free port)."""

from __future__ import annotations

import socket


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on loopback (port 0: any free port).

    Made with an explicit ``IPPROTO_TCP``: the sockets it accepts inherit that, and asyncio
    turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose protocol says TCP. With
    protocol 0, every answer on a kept-alive connection waited out the peer's delayed ACK
    (~40 ms a request), which made the sandboxes look ten times slower than they are."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// base URL a loopback TCP socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"
