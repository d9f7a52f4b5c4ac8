"""A thin client of the control API. Standard library only: the quick commands load it.

It speaks just the HTTP/1.1 it needs over the Unix socket (one request, ``Connection:
close``, a body by ``Content-Length`` or chunks) rather than through ``http.client``, which
loads ``ssl`` and the ``email`` package: two thirds of what `syncd status` spent importing.
"""

from __future__ import annotations

# _socket is the C module under ``socket``: all one Unix connection needs, without the
# Python layer that builds enums of every constant on import (a sixth of `syncd status`).
import _socket
import errno
import json
from pathlib import Path
from typing import Any

from sync.errors import DaemonNotRunning, SyncdError, UsageError
from sync.private_paths import check_socket

#: The most the status line and headers of an answer may take; the daemon's are a few lines.
MAX_HEAD = 64 * 1024
_BODY_METHODS = ("POST", "PUT", "PATCH")
_NOT_HTTP = "syncd answered something that is not HTTP; check its log"


class _Closed(ConnectionResetError):
    """The daemon closed the connection before its answer was complete."""


def _request(method: str, path: str, payload: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    if payload is not None:
        lines.append("Content-Type: application/json")
    if payload is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(payload or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (payload or b"")


class _Reader:
    """Reads an answer off a connected socket, as much as each step needs."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed(errno.ECONNRESET, "it closed the connection before answering in full")
        self.buffer += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise SyncdError(_NOT_HTTP)
            self._more()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self) -> bytes:
        while chunk := self.sock.recv(65536):
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        return data


def _answer(reader: _Reader) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 answer."""
    status_line = reader.line()
    while status_line.startswith(b"HTTP/1.1 100"):  # an interim answer: skip it
        while reader.line():
            pass
        status_line = reader.line()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise SyncdError(_NOT_HTTP)
    headers: dict[bytes, bytes] = {}
    size = len(status_line)
    while line := reader.line():
        size += len(line)
        name, sep, value = line.partition(b":")
        if not sep or size > MAX_HEAD:
            raise SyncdError(_NOT_HTTP)
        headers[name.strip().lower()] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return int(parts[1]), _chunked(reader)
    length = headers.get(b"content-length")
    if length is None:
        return int(parts[1]), reader.rest()
    if not length.isdigit():
        raise SyncdError(_NOT_HTTP)
    return int(parts[1]), reader.exactly(int(length))


def _chunked(reader: _Reader) -> bytes:
    body = b""
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise SyncdError(_NOT_HTTP) from None
        if size == 0:
            while reader.line():  # trailers, then the blank line
                pass
            return body
        body += reader.exactly(size)
        if reader.line():
            raise SyncdError(_NOT_HTTP)


def _exchange(path: Path, request: bytes, timeout: float) -> tuple[int, bytes]:
    """Send ``request`` to the socket at ``path``; the answer's status and body."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(request)
        return _answer(_Reader(sock))
    finally:
        sock.close()


def __getattr__(name: str) -> object:
    # The raw http.client connection the end-to-end tests send malformed requests with;
    # built on first use so that the thin commands never import http.client.
    if name == "_UnixConnection":
        from sync.control._unix_http import UnixConnection

        return UnixConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ControlClient:
    """Calls the daemon listening on ``socket_path``."""

    def __init__(self, socket_path: Path, *, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: object = None, *, timeout: float | None = None
    ) -> Any:
        """Send one request; the decoded JSON answer, or the error it stands for."""
        # Before anything is sent: the socket and its directory must be ours and private,
        # or whoever could replace them would receive our requests. A refusal exits 2, not
        # 3: the daemon may well be running, and the fix is a chmod or another `[daemon]
        # socket` (the same sentence `syncd run` gives), not starting a daemon.
        check_socket(self.socket_path)
        payload = None if body is None else json.dumps(body).encode()
        request = _request(method, path, payload)
        try:
            status, raw = _exchange(self.socket_path, request, timeout or self.timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                "syncd is not running; start it with `syncd run` "
                "(or `syncd service install` to start it with your session)"
            ) from None
        except PermissionError:
            raise DaemonNotRunning(
                f"cannot open the control socket {self.socket_path}: permission denied; "
                "run syncd as the user who started the daemon"
            ) from None
        except TimeoutError:
            raise SyncdError("syncd did not answer in time; check `syncd status`") from None
        except OSError as exc:
            raise DaemonNotRunning(
                f"cannot reach syncd ({exc.strerror or type(exc).__name__}); is `syncd run` up?"
            ) from None
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, RecursionError):  # nested past the parser: not JSON to us
            raise SyncdError("syncd answered something that is not JSON; check its log") from None
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            error = UsageError if status < 500 else SyncdError
            raise error(str(message or f"syncd answered HTTP {status}"))
        return answer

    def add(self, refs: list[str], to: list[str] | None, with_messages: bool) -> dict[str, Any]:
        """Submit selections; the daemon's answer once they are accepted."""
        result: dict[str, Any] = self.call(
            "POST", "/v1/selections", {"refs": refs, "to": to, "with_messages": with_messages}
        )
        return result

    def selection(self, selection_id: str, *, wait: float = 0.0) -> dict[str, Any]:
        """A selection's state, waiting up to ``wait`` seconds for it to finish."""
        result: dict[str, Any] = self.call(
            "GET", f"/v1/selections/{selection_id}?wait={wait}", timeout=wait + self.timeout
        )
        return result

    def check(self, ref: str, to: list[str] | None) -> dict[str, Any]:
        """Whether a person is in each CRM; the daemon reads, nothing is written."""
        result: dict[str, Any] = self.call(
            "POST", "/v1/check", {"ref": ref, "to": to}, timeout=self.timeout * 4
        )
        return result

    def forget(
        self, ref: str, to: list[str] | None, *, undo: bool = False, wait: float = 0.0
    ) -> dict[str, Any]:
        """Ask the daemon to erase a person (or, ``undo``, lift their do-not-sync entry);
        the answer once it is accepted, or done within ``wait`` seconds."""
        result: dict[str, Any] = self.call(
            "POST",
            f"/v1/forget?wait={wait}",
            {"ref": ref, "to": to, "undo": undo},
            timeout=wait + self.timeout,
        )
        return result

    def export(self, ref: str, to: list[str] | None) -> dict[str, Any]:
        """What each CRM holds about a person; the daemon reads, nothing is written."""
        result: dict[str, Any] = self.call(
            "POST", "/v1/export", {"ref": ref, "to": to}, timeout=self.timeout * 4
        )
        return result

    def block(self, ref: str, *, undo: bool = False) -> dict[str, Any]:
        """Put a person on the do-not-sync list, or take them off it."""
        result: dict[str, Any] = self.call(
            "POST", "/v1/block", {"ref": ref, "undo": undo}, timeout=self.timeout * 4
        )
        return result

    def cancel(self, selection_id: str) -> dict[str, Any]:
        """Remove a queued selection; a UsageError (exit 2) says why when it is too late."""
        result: dict[str, Any] = self.call("DELETE", f"/v1/selections/{selection_id}")
        return result

    def status(self) -> dict[str, Any]:
        """The daemon's status object."""
        result: dict[str, Any] = self.call("GET", "/v1/status")
        return result
