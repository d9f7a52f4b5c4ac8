"""How Pipedrive's error answers read: the one function that turns them into syncd's
errors, the helpers that pick machine codes out of an error body (never its free text), and
the envelope check every successful answer passes.

How the client authenticates (``x-api-token``, or OAuth refreshed with HTTP Basic client
auth at ``<oauth_url>/oauth/token``) is told to the shared session in
:mod:`connectors.pipedrive.client`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from connectors._http import classify_response, json_body, json_object
from sync.errors import ConnectorError, FatalConnectorError, RetryableError, SyncdError

REQUEST_ID_HEADER = "x-correlation-id"
#: A 429 whose window resets later than this is the daily token budget, not the burst limit.
DAILY_RESET_THRESHOLD = 60.0
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def error_fields(response: httpx.Response) -> dict[str, str]:
    """The string fields of an error body (``error``, ``code``, ``message``…)."""
    body = json_body(response)
    if not isinstance(body, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in body.items()
        if isinstance(v, str | int) and not isinstance(v, bool)
    }


def code_of(value: str | None) -> str | None:
    """``value`` if it is a machine code (``ERR_SCHEMA_VALIDATION_FAILED``), else None:
    free text from Pipedrive can quote a person's data and never goes into our messages."""
    return value if value and _CODE.match(value) else None


def _seconds(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def classify(connector: str, response: httpx.Response) -> SyncdError:
    """Pipedrive's answer as syncd's error: v2's ``code`` is the code, ``x-correlation-id``
    the request id; a 429 waits ``x-ratelimit-reset`` seconds unless it sent Retry-After,
    and a 429 that resets in hours is the daily token budget, which waiting will not fix."""
    status = response.status_code
    rid = response.headers.get(REQUEST_ID_HEADER)
    if status == 429 and "retry-after" not in response.headers:
        reset = _seconds(response.headers.get("x-ratelimit-reset"))
        if reset is not None and reset > DAILY_RESET_THRESHOLD:
            return FatalConnectorError(
                connector,
                f"{connector} answered HTTP 429: the company's daily API token budget is used "
                "up; syncd can try again after it resets at midnight (UTC)",
                status=status,
                request_id=rid,
            )
        what = f"{connector} answered HTTP 429"
        wait = reset if reset is not None else 2.0
        return RetryableError(connector, what, status=status, request_id=rid, retry_after=wait)
    code = code_of(error_fields(response).get("code"))
    error = classify_response(connector, response, request_id_header=REQUEST_ID_HEADER, code=code)
    if isinstance(error, ConnectorError) and error.request_id is None:
        error.request_id = rid
    return error


def envelope(connector: str, response: httpx.Response) -> tuple[Any, dict[str, Any]]:
    """``data`` and ``additional_data`` of an answer in Pipedrive's envelope; an answer that
    does not say ``success`` is a FatalConnectorError."""
    body = json_object(connector, response)
    if body.get("success") is not True:
        raise FatalConnectorError(
            connector,
            f"{connector} answered HTTP {response.status_code} without success",
            status=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        )
    more = body.get("additional_data")
    return body.get("data"), more if isinstance(more, dict) else {}
