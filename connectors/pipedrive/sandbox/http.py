"""HTTP helpers of the Pipedrive sandbox: the response envelope and error bodies, the
token-based rate limits and their headers, and request parsing.

Envelope: ``{"success", "data", "additional_data"}``; errors ``{"success": false, "error",
"error_info", "data": null, "additional_data": null}`` plus ``errorCode`` (401, 429) or v2's
``code`` (e.g. https://github.com/pipedrive/client-php/issues/234: ``"code": "ERR_UNKNOWN"``).

Rate limits (https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting): each request
spends its endpoint's token cost (the ``x-token-cost`` of the OpenAPI files, sent back as the
``x-token-cost`` header) from the company's daily budget (30,000 base tokens x plan multiplier
x seats, reset at midnight), and each token has a burst limit per rolling 2-second window,
told in ``x-ratelimit-limit``/``-remaining``/``-reset`` (seconds until the window frees a
slot: https://github.com/DavidRouyer/pipedrive-dotnet/issues/36). Over either, a 429
``Request over limit``. Search has had its own, lower burst limit (10 per 2 s).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse

from connectors.pipedrive.sandbox.store import PipedriveError, bad_request
from rig.sandbox import SlidingWindow

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
CORRELATION_HEADER = "x-correlation-id"
BURST_INTERVAL = 2.0

#: Tokens each endpoint costs, as the OpenAPI files' ``x-token-cost`` say.
TOKEN_COST: dict[tuple[str, str], int] = {
    ("GET", "/api/v2/persons"): 10,
    ("POST", "/api/v2/persons"): 5,
    ("GET", "/api/v2/persons/{id}"): 1,
    ("PATCH", "/api/v2/persons/{id}"): 5,
    ("DELETE", "/api/v2/persons/{id}"): 3,
    ("GET", "/api/v2/persons/search"): 20,
    ("GET", "/api/v2/personFields"): 10,
    ("POST", "/api/v2/personFields"): 5,
    ("GET", "/api/v2/organizations"): 10,
    ("POST", "/api/v2/organizations"): 5,
    ("GET", "/api/v2/organizations/{id}"): 1,
    ("GET", "/api/v2/organizations/search"): 20,
    ("GET", "/api/v1/notes"): 20,
    ("POST", "/api/v1/notes"): 10,
    ("DELETE", "/api/v1/notes/{id}"): 6,
}


def new_correlation_id() -> str:
    """A fresh request id for the ``x-correlation-id`` header."""
    return str(uuid.uuid4())


def ok(data: object, additional_data: object = None, *, status: int = 200) -> JSONResponse:
    """A successful answer in Pipedrive's envelope."""
    body: dict[str, object] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return JSONResponse(body, status)


def error_body(
    message: str, *, code: str | None = None, error_code: int | None = None
) -> dict[str, object]:
    """An error in Pipedrive's envelope."""
    body: dict[str, object] = {"success": False, "error": message}
    if code is not None:
        body["code"] = code
    if error_code is not None:
        body["errorCode"] = error_code
    return {**body, "error_info": ERROR_INFO, "data": None, "additional_data": None}


def from_exception(error: PipedriveError) -> JSONResponse:
    """The answer for a :class:`PipedriveError`."""
    return JSONResponse(error_body(error.message, code=error.code), error.status)


def unauthorized() -> JSONResponse:
    """What Pipedrive answers a missing, wrong or expired token (``v1.yaml``'s 401)."""
    return JSONResponse(error_body("unauthorized access", error_code=401), 401)


def gone(what: str) -> JSONResponse:
    """A retired endpoint: 410 with the envelope (``v1.yaml``'s ``...GoneResponse``)."""
    return JSONResponse(
        error_body(f"The {what} you are trying to access is no longer available"), 410
    )


def over_limit() -> dict[str, object]:
    """The body of a 429."""
    return error_body("Request over limit", error_code=429)


def fault_body(status: int, message: str) -> dict[str, object]:
    """The body of an injected fault (SandboxCore's ``error_body``), Pipedrive-shaped."""
    if status == 429:
        return over_limit()
    if status == 401:
        return error_body("unauthorized access", error_code=401)
    code = "ERR_SCHEMA_VALIDATION_FAILED" if status == 400 else "ERR_UNKNOWN"
    return error_body(message, code=code)


# -- rate limits -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spend:
    """The outcome of charging one request."""

    allowed: bool
    headers: dict[str, str]


class RateLimits:
    """The company's daily token budget and each token's burst windows."""

    def __init__(
        self,
        *,
        daily_budget: int,
        burst: int,
        oauth_burst: int,
        search_burst: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.daily_budget = daily_budget
        self.burst = burst
        self.oauth_burst = oauth_burst
        self.search_burst = search_burst
        self.clock = clock
        self.spent = 0
        self._windows: dict[tuple[str, bool], SlidingWindow] = {}

    def clear(self) -> None:
        """A new day: the budget is whole again and every window empty."""
        self.spent = 0
        self._windows.clear()

    def charge(self, token: str, *, oauth: bool, cost: int, search: bool) -> Spend:
        """Count one request of ``cost`` tokens made with ``token``."""
        limit = self.oauth_burst if oauth else self.burst
        throttle = self._window(token, False, limit).hit()
        allowed = throttle.allowed
        if allowed and search and self.search_burst is not None:
            # A search answer tells the search API's own window (a throttled search says
            # ``x-ratelimit-limit: 10``: https://devcommunity.pipedrive.com/t/rate-limiting-issues/7462).
            limit = self.search_burst
            throttle = self._window(token, True, limit).hit()
            allowed = throttle.allowed
        reset = throttle.reset_seconds
        if allowed and self.spent + cost > self.daily_budget:
            allowed = False
            reset = _seconds_to_midnight()
        if allowed:
            self.spent += cost
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(throttle.remaining),
            "x-ratelimit-reset": str(max(1, math.ceil(reset))),
            "x-token-cost": str(cost),
        }
        return Spend(allowed, headers)

    def _window(self, token: str, search: bool, limit: int) -> SlidingWindow:
        key = (token, search)
        if key not in self._windows:
            self._windows[key] = SlidingWindow(limit, BURST_INTERVAL, lambda: self.clock())
        return self._windows[key]


def _seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


# -- requests ------------------------------------------------------------------------------


async def json_object(request: Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400."""
    try:
        body: object = json.loads(await request.body())
    except ValueError as exc:
        raise bad_request("The request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return {str(k): v for k, v in body.items()}


def path_id(request: Request) -> int:
    """The ``{id}`` of the path as an integer, or a 400."""
    raw = str(request.path_params["id"])
    if not raw.isdigit():
        raise bad_request("id must be an integer")
    return int(raw)


def query_int(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """An integer query parameter, or a 400."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise bad_request(f"{name} must be an integer")
    return int(raw)


def query_bool(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter (``true``/``1``), or a 400."""
    raw = query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request(f"{name} must be a boolean")
    return raw in ("true", "1")


def cursor_page(
    items: list[object], query: Mapping[str, str], *, cap: int | None = None
) -> tuple[list[object], dict[str, object]]:
    """One page of ``items`` by v2's opaque ``cursor`` and ``limit`` (at most 500); with
    ``cap``, a page holds no more than that, whatever was asked (a server may answer
    fewer items than ``limit``: clients follow the cursor)."""
    limit = query_int(query, "limit", 100) or 100
    if limit > 500:
        raise bad_request("limit must not exceed 500")
    limit = min(limit, cap) if cap else limit
    start = _decode_cursor(query.get("cursor"))
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, {"next_cursor": _encode_cursor(start + limit) if more else None}


def _encode_cursor(offset: int) -> str:
    return uuid.UUID(int=offset).hex


def _decode_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    try:
        return uuid.UUID(hex=raw).int
    except ValueError:
        raise bad_request("cursor is not valid") from None
