"""A thin client of the control API. Standard library only: the quick commands load it."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from sync.errors import DaemonNotRunning, SyncdError, UsageError
from sync.private_paths import check_socket


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


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
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
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
        finally:
            conn.close()
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, RecursionError):  # nested past the parser: not JSON to us
            raise SyncdError("syncd answered something that is not JSON; check its log") from None
        if response.status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            error = UsageError if response.status < 500 else SyncdError
            raise error(str(message or f"syncd answered HTTP {response.status}"))
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
