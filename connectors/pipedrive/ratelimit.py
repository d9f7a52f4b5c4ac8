"""Pipedrive's burst limit, as a :class:`connectors._ratelimit.RateLimiter` paces it.

Each token may send a number of requests per rolling 2-second window that depends on the
plan: 20 for an ``api_token`` on Essential up to 120 on Enterprise (80 to 480 for OAuth
access tokens). Every answer says ``x-ratelimit-limit`` (the token's limit),
``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (seconds until the window frees a
request), which correct the window. The daily token budget (``x-token-cost``) is not
paced: running out of it is reported, not waited for.
https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx

from connectors._ratelimit import RateInfo, RateLimiter

#: The lowest documented burst limit (Essential, api_token); the first answer corrects it.
BURST_LIMIT = 20
BURST_INTERVAL = 2.0
#: Requests to a ``…/search`` endpoint per 2 s, on every plan and either kind of token.
SEARCH_LIMIT = 10


def parse(response: httpx.Response) -> RateInfo | None:
    """The burst window as ``x-ratelimit-*`` tells it, if it does; a search answer tells
    the search API's window instead, which is not the token's."""
    try:
        path = response.request.url.path
    except RuntimeError:  # an answer made without its request (tests)
        path = ""
    if path.endswith("/search"):
        return None
    limit = _number(response, "x-ratelimit-limit")
    remaining = _number(response, "x-ratelimit-remaining")
    reset = _number(response, "x-ratelimit-reset")
    if limit is None and remaining is None and reset is None:
        return None
    return RateInfo(
        limit=int(limit) if limit else None,
        remaining=None if remaining is None else int(remaining),
        reset=reset,
    )


def limiter(
    sleep: Callable[[float], Awaitable[None]], clock: Callable[[], float] = time.monotonic
) -> RateLimiter:
    """The token's burst window."""
    return RateLimiter(BURST_LIMIT, BURST_INTERVAL, parse=parse, sleep=sleep, clock=clock)


def search_limiter(
    sleep: Callable[[float], Awaitable[None]], clock: Callable[[], float] = time.monotonic
) -> RateLimiter:
    """The search API's own window (10 per 2 s on every plan). Its answers carry the
    token's window in ``x-ratelimit-*``, so this one keeps the documented figure."""
    return RateLimiter(SEARCH_LIMIT, BURST_INTERVAL, sleep=sleep, clock=clock)


def _number(response: httpx.Response, header: str) -> float | None:
    raw = response.headers.get(header, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and value == value else None  # not NaN
