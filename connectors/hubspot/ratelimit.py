"""HubSpot's rate limits, as a :class:`connectors._ratelimit.RateLimiter` paces them.

Private apps on Free/Starter may send 100 requests per rolling 10 seconds (190 on
Pro/Enterprise), counted per app across everyone using it: a team whose daemons share one
private app's token (or one app installed once) shares one window. The CRM search
endpoints have their own, lower limit (5 requests per second on current plans; we pace 4).
Answers say ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` / ``-Interval-Milliseconds``;
the daily limit (``-Daily``, ``-Daily-Remaining``) is not paced. :class:`SharedWindow`
reads ``-Remaining`` to see the rest of the team and slows down before the window is empty;
a 429 still waits (one window, or ``Retry-After``) in :mod:`connectors.hubspot.errors`.
https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
https://developers.hubspot.com/changelog/crm-search-api-rate-limit-increase
https://developers.hubspot.com/changelog/increasing-our-api-limits
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import httpx

from connectors._ratelimit import RateInfo, RateLimiter

#: The lowest documented burst limit (Free/Starter private apps); headers raise it.
BURST_LIMIT = 100
BURST_INTERVAL = 10.0
SEARCH_LIMIT = 4
SEARCH_INTERVAL = 1.0


def parse(response: httpx.Response) -> RateInfo | None:
    """The rolling window as ``X-HubSpot-RateLimit-*`` tells it, if it does."""
    limit = _number(response, "x-hubspot-ratelimit-max")
    remaining = _number(response, "x-hubspot-ratelimit-remaining")
    millis = _number(response, "x-hubspot-ratelimit-interval-milliseconds")
    if limit is None and remaining is None and millis is None:
        return None
    return RateInfo(
        limit=limit,
        interval=millis / 1000 if millis else None,
        remaining=remaining,
    )


#: How hard :class:`SharedWindow` brakes as the app's window fills: the pause after an
#: answer is ``interval * BRAKE * limit / free**2``, ``free`` being what remains beyond the
#: reserve. With N clients always busy the window settles where
#: N * free**2 = BRAKE * limit * (limit - remaining).
BRAKE = 0.5
#: The part of the window the brake treats as already gone: answers arrive late enough
#: that a whole team may send one more request each after the window looked open. It grows
#: to one request per client the answers show (about 1/share, at most half the window): with
#: a fixed 10, twenty daemons met a full window about once a run each.
RESERVE = 0.1
#: How far a pause may be stretched (a fraction of it), so that clients braked by the
#: same ``-Remaining`` do not all come back in the same instant.
JITTER = 0.25


#: The part of the search limit a team aims at when it shares it: the team's searches
#: arrive at random moments, and a rolling second must rarely hold more than the limit.
SEARCH_TEAM_LOAD = 0.5
#: A search that ran into the search limit (``policyName`` ``SECONDLY``) pauses our
#: searches this many of our own gaps, on top of the retry's wait.
SEARCH_BACKOFF = 2.0


class SearchPace:
    """The search endpoints' own limit, shared with the team.

    HubSpot documents the search limit (5 per second) but no header that counts it: search
    answers carry only the app's ten-second window. So our part of it is our part of the
    app's window (:attr:`SharedWindow.share`) of a conservative team load, and while
    others are there each search goes out at a random moment of its gap (not at its start)
    so that a team released together does not search in the same second.
    """

    def __init__(
        self,
        window: SharedWindow,
        limit: int = SEARCH_LIMIT,
        interval: float = SEARCH_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.own = RateLimiter(limit, interval, clock=clock, sleep=sleep)
        self._window = window
        self._rate = limit / interval
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._last = -math.inf
        self._turn = anyio.Lock()
        #: Every pause taken because of the team, for tests and benchmarks.
        self.waits: list[float] = []

    def gap(self) -> float:
        """Seconds between two of our searches: none alone, else our share of the team's."""
        share = self._window.share
        if share >= 1.0:
            return 0.0
        return 1 / (self._rate * SEARCH_TEAM_LOAD * max(share, 0.01))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Space our searches by the team's share, then a slot in our own search window."""
        async with self._turn:
            gap = self.gap()
            now = self._clock()
            start = max(self._last + gap, now)
            if gap > 0 and self._last < now - gap:  # a first search after a rest: any moment
                start = now + self._rng.uniform(0, gap)
            wait = start - now
            if wait > 0:
                self.waits.append(wait)
                await self._sleep(wait)
            self._last = self._clock()
        async with self.own.slot():
            yield

    def observe(self, response: httpx.Response) -> None:
        """A 429 of the search limit pushes our next search back; other answers say
        nothing about it."""
        if search_limited(response):
            gap = max(self.gap(), 1 / self._rate)
            self._last = max(self._last, self._clock() + SEARCH_BACKOFF * gap - gap)


def window_only(response: httpx.Response) -> RateInfo | None:
    """The window's size and length from the headers, without what is left in it (the
    rest of the team's use is :class:`SharedWindow`'s business)."""
    info = parse(response)
    if info is None:
        return None
    return RateInfo(limit=info.limit, interval=info.interval)


class SharedWindow:
    """The app's ten-second window as one of several clients sharing it sees it.

    Our own requests are paced exactly by a :class:`RateLimiter`. Each answer's
    ``-Remaining`` then tells how much of the window *others* used (what is used beyond our
    own requests of the last interval); while others are there, the next request waits
    ``interval * BRAKE * limit / remaining**2`` (at most one interval) after that answer.
    Every client brakes alike on the same number, so the window is shared about evenly
    and settles with a few requests to spare instead of running into 429s. Alone, the
    pause is zero and the exact window is the only limit.
    """

    def __init__(
        self,
        limit: int = BURST_LIMIT,
        interval: float = BURST_INTERVAL,
        *,
        brake: float = BRAKE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.own = RateLimiter(limit, interval, parse=window_only, clock=clock, sleep=sleep)
        self.brake = brake
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._clock = clock
        self._sleep = sleep
        self._mine: deque[float] = deque()  # when each of our answers arrived
        #: Our requests sent and not answered yet: the app's window counts them already
        #: (a lone add sends several side by side), so they are not the others' use.
        self._out = 0
        self._not_before = 0.0
        #: Our part of what the app's window last held (1.0: alone).
        self.share = 1.0
        self._turn = anyio.Lock()
        #: Every pause taken because of the others, for tests and benchmarks.
        self.waits: list[float] = []

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait out the pause the last answer asked for, then a slot in our own window."""
        async with self._turn:
            wait = self._not_before - self._clock()
            if wait > 0:
                self.waits.append(wait)
                await self._sleep(wait)
        async with self.own.slot():
            self._out += 1
            try:
                yield
            finally:
                self._out -= 1

    def observe(self, response: httpx.Response) -> None:
        """Correct our window, and set the pause before our next request."""
        if search_limited(response):
            return  # the search endpoints' own limit: SearchPace's business, not the window's
        self.own.observe(response)
        info = parse(response)
        now = self._clock()
        self._mine.append(now)
        limit, interval = self.own.limit, self.own.interval
        while self._mine and self._mine[0] <= now - interval:
            self._mine.popleft()
        if info is None or info.remaining is None:
            return
        remaining = max(0, info.remaining)
        used = limit - remaining
        # This answer's request is in _mine now; the rest of ours in flight are counted too.
        others = used - len(self._mine) - max(0, self._out - 1)
        self.share = 1.0 if others <= 0 else len(self._mine) / max(used, 1)
        if others <= 0 and response.status_code != 429:
            return  # alone: our own count is exact
        # Keep at least one request free per client we can tell is there (1/share): each
        # may send one more before it sees the answer that fills the window.
        reserve = max(RESERVE * limit, min(1 / max(self.share, 1e-9), limit / 2))
        free = max(remaining - reserve, 1)
        # Jitter, so that a team braked by the same number does not restart in step.
        # (upward only: a pause shorter than the brake's could meet a window still full).
        pause = min(interval, interval * self.brake * limit / free**2)
        pause *= self._rng.uniform(1, 1 + JITTER)
        self._not_before = max(self._not_before, now + pause)


def limiters(
    sleep: Callable[[float], Awaitable[None]],
) -> tuple[SharedWindow, SearchPace]:
    """The app's rolling window (shared with whoever else uses the app), and the search
    endpoints' own."""
    window = SharedWindow(sleep=sleep)
    return window, SearchPace(window, sleep=sleep)


def search_limited(response: httpx.Response) -> bool:
    """Whether a 429 is the search endpoints' per-second limit (``policyName``
    ``SECONDLY``) rather than the app's window. The limiters see an answer before its body
    is read, so this is told from what the body's policy goes with: a search path, and no
    ``-Remaining`` header saying the window is empty."""
    if response.status_code != 429 or not response.request.url.path.endswith("/search"):
        return False
    remaining = _number(response, "x-hubspot-ratelimit-remaining")
    return remaining is None or remaining > 0


def _number(response: httpx.Response, header: str) -> int | None:
    raw = response.headers.get(header, "").strip()
    return int(raw) if raw.isdigit() else None
