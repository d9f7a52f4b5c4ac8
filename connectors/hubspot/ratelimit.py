"""HubSpot's rate limits, as a :class:`connectors._ratelimit.RateLimiter` paces them.

Private apps on Free/Starter may send 100 requests per rolling 10 seconds (190 on
Pro/Enterprise); the CRM search endpoints have their own, lower limit of 4 requests per
second per token, and their answers carry no rate-limit headers. Every other answer says
``X-HubSpot-RateLimit-Max`` / ``-Remaining`` / ``-Interval-Milliseconds``, which correct
the window; the daily limit (``-Daily``) is not paced.
https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
https://developers.hubspot.com/changelog/crm-search-api-rate-limit-increase
https://developers.hubspot.com/changelog/increasing-our-api-limits
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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


def limiters(sleep: Callable[[float], Awaitable[None]]) -> tuple[RateLimiter, RateLimiter]:
    """The account's rolling window, and the search endpoints' own."""
    return (
        RateLimiter(BURST_LIMIT, BURST_INTERVAL, parse=parse, sleep=sleep),
        RateLimiter(SEARCH_LIMIT, SEARCH_INTERVAL, sleep=sleep),
    )


def _number(response: httpx.Response, header: str) -> int | None:
    raw = response.headers.get(header, "").strip()
    return int(raw) if raw.isdigit() else None
