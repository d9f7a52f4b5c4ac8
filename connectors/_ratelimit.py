"""Client-side rate limiting for one CRM instance: requests are paced so that a healthy run
never draws a 429 (or Salesforce's 403 ``REQUEST_LIMIT_EXCEEDED``).

A :class:`RateLimiter` counts requests in a sliding window the way vendors do (at most
``limit`` in any ``interval`` seconds), starting from the vendor's documented limit and
corrected by what each response's rate-limit headers say (a vendor parser turns them into
a :class:`RateInfo`): a different limit or window is adopted, a server that counts more
requests than we sent (another app on the same token) fills the window, and "nothing left,
frees in N s" holds every request until then.

It is conservative on purpose: a request counts from the moment it is granted until
``interval`` after its answer arrived (the server counted it somewhere in between), and
until the first answer has told the real limits only one request is in flight. A wait is
computed and slept once; a request that waits for another one to finish waits on an event.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx


@dataclass(frozen=True, slots=True)
class RateInfo:
    """What one response says about the window it was counted in (``None``: not said)."""

    limit: int | None = None
    #: The window's length in seconds.
    interval: float | None = None
    remaining: int | None = None
    #: Seconds until the window frees a request.
    reset: float | None = None


Parser = Callable[[httpx.Response], RateInfo | None]


class Limiter(Protocol):
    """What :func:`connectors._http.send` needs: a slot around each attempt, and a look at
    each answer."""

    def slot(self) -> AbstractAsyncContextManager[None]: ...

    def observe(self, response: httpx.Response) -> None: ...


class RateLimiter:
    """At most ``limit`` requests in any ``interval`` seconds, corrected by ``parse``.

    ``max_wait`` caps one wait (past it the request goes out and the server's answer
    decides); ``clock`` and ``sleep`` are injectable so tests need not really wait.
    """

    def __init__(
        self,
        limit: int,
        interval: float,
        *,
        parse: Parser | None = None,
        max_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if limit < 1 or interval <= 0:
            raise ValueError("a rate limit needs limit >= 1 and interval > 0")
        self.limit = limit
        self.interval = interval
        self.max_wait = max_wait
        self._parse = parse
        self._clock = clock
        self._sleep = sleep
        #: (when the window stops counting it - interval, how many requests), by time.
        self._counted: list[tuple[float, int]] = []
        self._in_flight = 0
        self._hold_until = 0.0
        self._learned = parse is None
        self._turn = anyio.Lock()
        self._finished: anyio.Event | None = None
        #: Every wait asked for, for tests and logs.
        self.waits: list[float] = []

    # -- what send() uses ----------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for room in the window, then hold it while the request runs."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    def observe(self, response: httpx.Response) -> None:
        """Correct the window from ``response``'s rate-limit headers."""
        self._learned = True
        info = self._parse(response) if self._parse is not None else None
        if info is None:
            return
        now = self._clock()
        if info.limit is not None and info.limit >= 1:
            self.limit = info.limit
        if info.interval is not None and info.interval > 0:
            self.interval = info.interval
        if info.remaining is not None:
            self._expire(now)
            server_used = self.limit - max(0, info.remaining)
            unseen = server_used - self._used()
            if unseen > 0:
                # Requests we did not send (another app on the token): they leave the
                # window when the server says it frees, or a whole interval from now.
                frees_in = self.interval if info.reset is None else min(info.reset, self.interval)
                bisect.insort(self._counted, (now + frees_in - self.interval, unseen))
            # A spent window holds until the server's reset, unless our own count explains
            # all of the server's: then our window, which counts each request from its end
            # (never earlier than the server does), knows to the millisecond when a request
            # frees, where the reset header is rounded up to whole seconds (Pipedrive's
            # 2 s window said "2" after each burst of 20: a 2 s pause, 15 % of its limit).
            if info.remaining <= 0 and info.reset is not None and unseen > 0:
                self._hold_until = max(self._hold_until, now + info.reset)

    # -- the window ----------------------------------------------------------------------

    async def _acquire(self) -> None:
        async with self._turn:  # one waiter computes at a time, in arrival order
            while (wait := self._wait(self._clock())) is None:
                self._finished = self._finished or anyio.Event()
                await self._finished.wait()
            if wait > 0:
                self.waits.append(wait)
                await self._sleep(wait)
            self._in_flight += 1

    def _release(self) -> None:
        self._in_flight -= 1
        bisect.insort(self._counted, (self._clock(), 1))
        if self._finished is not None:
            self._finished.set()
            self._finished = None

    def _wait(self, now: float) -> float | None:
        """Seconds until one more request fits, or None while it waits for one in flight."""
        self._expire(now)
        if not self._learned and self._in_flight:
            return None  # the first answer tells the real limits: wait for it
        wait = max(0.0, self._hold_until - now)
        excess = self._used() - self.limit + 1
        if excess > 0:
            for at, weight in self._counted:
                excess -= weight
                if excess <= 0:
                    wait = max(wait, at + self.interval - now)
                    break
            else:
                return None  # only requests still in flight can make room
        if self.max_wait is not None:
            wait = min(wait, self.max_wait)
        return math.ceil(wait * 1000) / 1000  # never a hair short of the window

    def _expire(self, now: float) -> None:
        gone = bisect.bisect_right(self._counted, (now - self.interval, math.inf))
        del self._counted[:gone]

    def _used(self) -> int:
        return self._in_flight + sum(weight for _, weight in self._counted)


class Layered:
    """Several limits at once (e.g. an account's window and its search endpoint's own):
    a request takes a slot in each, narrowest first."""

    def __init__(self, limiters: Sequence[Limiter]) -> None:
        self._limiters = tuple(limiters)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A slot in every limiter."""
        async with AsyncExitStack() as stack:
            for limiter in self._limiters:
                await stack.enter_async_context(limiter.slot())
            yield

    def observe(self, response: httpx.Response) -> None:
        """Every limiter sees the answer."""
        for limiter in self._limiters:
            limiter.observe(response)


class Unlimited:
    """No pacing at all: for tests of how a client handles the server's own 429."""

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Go ahead."""
        yield

    def observe(self, response: httpx.Response) -> None:
        """Ignore the answer."""


__all__ = ["Layered", "Limiter", "Parser", "RateInfo", "RateLimiter", "Unlimited"]
