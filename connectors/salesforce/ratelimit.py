"""Salesforce's API request limit, as a :class:`connectors._ratelimit.RateLimiter` paces it.

Salesforce has no per-second limit, only a count of API calls in a rolling 24 hours
(15,000 for a Developer Edition org, 100,000 and more for Enterprise); past it a call is
refused with 403 ``REQUEST_LIMIT_EXCEEDED``. Every answer says
``Sforce-Limit-Info: api-usage=N/M``: M becomes the limit and calls the org made that syncd
did not fill the window, so requests are held only when usage nears the maximum. A hold
never lasts longer than ``MAX_WAIT``: then the call goes out and the 403 is retried.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import httpx

from connectors._ratelimit import RateInfo, RateLimiter

#: The smallest documented daily allocation; the first answer tells the org's own.
DAILY_LIMIT = 15_000
WINDOW = 86_400.0
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


def limiter(
    sleep: Callable[[float], Awaitable[None]],
    *,
    window: float = WINDOW,
    clock: Callable[[], float] = time.monotonic,
) -> RateLimiter:
    """The org's rolling daily count (``window`` seconds; shorter in tests)."""
    return RateLimiter(
        DAILY_LIMIT, window, parse=parse, max_wait=MAX_WAIT, clock=clock, sleep=sleep
    )
