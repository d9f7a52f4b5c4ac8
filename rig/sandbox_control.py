"""Drives a sandbox running in another process through its ``/_sandbox/`` control
endpoints (the table in :mod:`rig.sandbox`), for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from rig.garbage import HUGE_BYTES
from rig.sandbox import CONTROL_PREFIX


class SandboxControl:
    """Drives a sandbox in another process through its control endpoints."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        # Control endpoints sit at the server's root, whatever path the vendor API has.
        root = httpx.URL(base_url).copy_with(path=CONTROL_PREFIX.rstrip("/"), query=None)
        self._http = httpx.Client(base_url=root, timeout=timeout)

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def records(self) -> Any:
        """What the sandbox holds, in the vendor sandbox's snapshot shape."""
        return self._json("GET", "/records")

    def requests(self) -> list[dict[str, Any]]:
        """Every vendor request received since the last reset."""
        result: list[dict[str, Any]] = self._json("GET", "/requests")
        return result

    def violations(self) -> list[dict[str, Any]]:
        """Requests with a method the API must never receive."""
        result: list[dict[str, Any]] = self._json("GET", "/violations")
        return result

    def set_tokens(self, tokens: Iterable[str]) -> None:
        """Replace the credentials the sandbox accepts."""
        self._json("PUT", "/tokens", {"tokens": list(tokens)})

    def break_next(
        self, kind: str, *, count: int = 1, path_prefix: str = "", method: str = ""
    ) -> None:
        """Cut the next ``count`` matching requests with a TCP reset (see SandboxCore)."""
        body = {kind: count, "path_prefix": path_prefix, "method": method}
        self._json("POST", "/network", body)

    def outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, as a CRM that is down."""
        self._json("POST", "/network", {"outage_seconds": seconds})

    def garbage_next(
        self,
        kind: str,
        *,
        count: int = 1,
        path_prefix: str = "",
        method: str = "",
        applied: bool = False,
        size: int = HUGE_BYTES,
    ) -> None:
        """Answer the next ``count`` matching vendor requests with garbage (see SandboxCore)."""
        body = {
            "kind": kind,
            "count": count,
            "path_prefix": path_prefix,
            "method": method,
            "applied": applied,
            "size": size,
        }
        self._json("POST", "/garbage", body)

    def expire_tokens(self) -> None:
        """Make every current token answer 401."""
        self._json("POST", "/expire-tokens")

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        count: int = 1,
        path_prefix: str = "",
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """Make the next ``count`` vendor requests fail with ``status`` (and ``body``, which
        travels as UTF-8 text)."""
        self._json(
            "POST",
            "/faults",
            {
                "status": status,
                "retry_after": retry_after,
                "count": count,
                "path_prefix": path_prefix,
                "body": None if body is None else body.decode("utf-8"),
                "content_type": content_type,
            },
        )

    def set_latency(self, latency_ms: int) -> None:
        """Delay every vendor request by ``latency_ms``."""
        self._json("POST", "/faults", {"latency_ms": latency_ms})

    def reset(self) -> None:
        """Forget records, requests and faults."""
        self._json("POST", "/reset")

    def post(self, path: str, body: Any) -> Any:
        """Call a vendor-specific control endpoint (``path`` relative to /_sandbox)."""
        return self._json("POST", path, body)
