"""Salesforce's API request limit, as a :class:`connectors._ratelimit.RateLimiter` paces it.

Salesforce has no per-second limit, only a count of API calls in a rolling 24 hours
(15,000 for a Developer Edition org, 100,000 and more for Enterprise); past it a call is
refused with 403 ``REQUEST_LIMIT_EXCEEDED``. Every answer says
``Sforce-Limit-Info: api-usage=N/M``: M becomes the limit and calls the org made that syncd
did not fill the window, so requests are held only when usage nears the maximum. A hold
never lasts longer than ``MAX_WAIT``: then the call goes out and the 403 is retried.

Concurrency: an org refuses new calls (403 ``REQUEST_LIMIT_EXCEEDED``) while 25 of its calls
(production orgs and sandboxes; 5 in Developer Edition and trials) have run 20 seconds or
longer; shorter calls are not counted. syncd never has more than ``CONCURRENT_LIMIT`` calls
of one org in flight, so it can never be the one past the limit.
https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import httpx

from connectors._ratelimit import Layered, RateInfo, RateLimiter

#: The smallest documented daily allocation; the first answer tells the org's own.
DAILY_LIMIT = 15_000
WINDOW = 86_400.0
#: Concurrent long-running calls a production org or sandbox takes.
CONCURRENT_LIMIT = 25
MAX_WAIT = 60.0
#: The org's count, not a connected app's ``per-app-api-usage=N/M(appName=...)``.
_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def parse(response: httpx.Response) -> RateInfo | None:
    """The org's usage as ``Sforce-Limit-Info`` tells it, if it does."""
    found = _USAGE.search(response.headers.get("sforce-limit-info", ""))
    if found is None or int(found.group(2)) < 1:
        return None
    used, limit = int(found.group(1)), int(found.group(2))
    return RateInfo(limit=limit, remaining=max(0, limit - used))


class InFlight:
    """At most ``limit`` calls in flight at once; ``peak`` is the most there ever were."""

    def __init__(self, limit: int = CONCURRENT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("a concurrency limit needs limit >= 1")
        self.limit = limit
        self.peak = 0
        self._now = 0
        # Made on first use: a semaphore belongs to the event loop that runs the calls.
        self._slots: anyio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for one of the ``limit`` places, and hold it while the call runs."""
        if self._slots is None:
            self._slots = anyio.Semaphore(self.limit)
        async with self._slots:
            self._now += 1
            self.peak = max(self.peak, self._now)
            try:
                yield
            finally:
                self._now -= 1

    def observe(self, response: httpx.Response) -> None:
        """Nothing to learn: Salesforce does not say how many calls are running."""


class Budget:
    """The org's limits together: calls in flight (``in_flight``) and the rolling daily
    count (``daily``, which learns the org's allocation from ``Sforce-Limit-Info``)."""

    def __init__(self, in_flight: InFlight, daily: RateLimiter) -> None:
        self.in_flight = in_flight
        self.daily = daily
        self._both = Layered([in_flight, daily])

    def slot(self) -> AbstractAsyncContextManager[None]:
        """A place in flight, then room in the day's count."""
        return self._both.slot()

    def observe(self, response: httpx.Response) -> None:
        """The day's count learns from the answer."""
        self._both.observe(response)


def limiter(
    sleep: Callable[[float], Awaitable[None]],
    *,
    window: float = WINDOW,
    clock: Callable[[], float] = time.monotonic,
    concurrent: int = CONCURRENT_LIMIT,
) -> Budget:
    """The org's limits: ``concurrent`` calls in flight, and its rolling daily count
    (``window`` seconds; shorter in tests)."""
    daily = RateLimiter(
        DAILY_LIMIT, window, parse=parse, max_wait=MAX_WAIT, clock=clock, sleep=sleep
    )
    return Budget(InFlight(concurrent), daily)
