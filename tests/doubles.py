"""The test doubles the whole suite shares: one fake clock and one recording transport.

Tests fake servers (the sandboxes), never clients; these two only stand between a real
client and a real sandbox, to move time without waiting and to see what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.lowlevel
import httpx
from starlette.types import ASGIApp


class FakeClock:
    """Monotonic time that moves only when a test advances it or something sleeps on it;
    records every wait asked for, and never really waits."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def monotonic(self) -> float:
        """The current time, for a ``clock=`` parameter."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move time forward by it, and let other tasks run once."""
        self.waits.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


#: Runs before a request goes to the inner transport (sync, or async to hold it).
Hook = Callable[[httpx.Request], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Sent:
    """One request as it left the client."""

    method: str
    url: httpx.URL
    headers: httpx.Headers
    content: bytes = field(repr=False)

    @property
    def path(self) -> str:
        return self.url.path

    def json(self) -> Any:
        """The JSON body, or None if the request had none."""
        is_json = self.headers.get("content-type", "").startswith("application/json")
        return json.loads(self.content) if is_json and self.content else None


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes each request to ``inner`` and records it; ``before`` runs first — a colleague
    editing the CRM at that very moment, or a gate that holds requests back."""

    def __init__(self, inner: httpx.AsyncBaseTransport, before: Hook | None = None) -> None:
        self.inner = inner
        self.before = before
        self.sent: list[Sent] = []

    @classmethod
    def over(cls, app: ASGIApp, before: Hook | None = None) -> RecordingTransport:
        """A recorder in front of an ASGI app (a sandbox), in process."""
        return cls(httpx.ASGITransport(app=app), before)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        self.sent.append(Sent(request.method, request.url, request.headers.copy(), content))
        if self.before is not None:
            waited = self.before(request)
            if waited is not None:
                await waited
        return await self.inner.handle_async_request(request)

    def to(self, path: str, method: str | None = None) -> list[Sent]:
        """The requests sent to paths starting with ``path`` (and of ``method``, if given)."""
        return [
            s
            for s in self.sent
            if s.path.startswith(path) and (method is None or s.method == method)
        ]

    async def aclose(self) -> None:
        await self.inner.aclose()
