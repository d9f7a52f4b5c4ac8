"""Loopback TCP sockets for the sandboxes and the fault proxy (port 0: any free port)."""

from __future__ import annotations

import socket


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on loopback (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// base URL a loopback TCP socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"
