"""How HubSpot's error answers read: the one function that turns them into syncd's errors,
and the helpers that pick machine codes and correlation ids out of an error body (never
its free text).

The OAuth refresh (``POST /oauth/v1/token``, form-encoded client id and secret) is done by
the shared session (:mod:`connectors._session`):
https://developers.hubspot.com/docs/methods/OAuth2/refresh-access-token
"""

from __future__ import annotations

import re

import httpx

from connectors._http import classify_response, json_body
from sync.errors import ConnectorError, FatalConnectorError, RetryableError, SyncdError

CORRELATION_HEADER = "x-hubspot-correlation-id"
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def error_fields(response: httpx.Response) -> dict[str, str]:
    """The string fields of an error body (``category``, ``policyName``, ``message``…)."""
    body = json_body(response)
    if not isinstance(body, dict):
        return {}
    fields = {str(k): v for k, v in body.items() if isinstance(v, str)}
    details = body.get("errors")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0].get("code")
        if isinstance(first, str):
            fields["detailCode"] = first
    return fields


def code_of(value: str | None) -> str | None:
    """``value`` if it is a machine code (``VALIDATION_ERROR``), else None: free text
    from the vendor can echo a person's data and never goes into our messages."""
    return value if value and _CODE.match(value) else None


def request_id(response: httpx.Response, fields: dict[str, str] | None = None) -> str | None:
    """HubSpot's correlation id: the header, else the body's ``correlationId``."""
    fields = error_fields(response) if fields is None else fields
    return response.headers.get(CORRELATION_HEADER) or code_or_uuid(fields.get("correlationId"))


def code_or_uuid(value: str | None) -> str | None:
    """A correlation id only if it looks like one (hex and dashes)."""
    return value if value and re.fullmatch(r"[0-9a-fA-F-]{8,64}", value) else None


def classify(connector: str, response: httpx.Response) -> SyncdError:
    """HubSpot's answer as syncd's error: the body's ``category`` is the code, the
    correlation id is the request id; a rolling-window 429 waits one window."""
    fields = error_fields(response)
    rid = request_id(response, fields)
    status = response.status_code
    if status == 429:
        policy = code_of(fields.get("policyName")) or "RATE_LIMITS"
        if policy == "DAILY":
            return FatalConnectorError(
                connector,
                f"{connector} answered HTTP 429 DAILY: today's API calls are used up; "
                "syncd can try again after midnight in the HubSpot account's time zone",
                status=status,
                request_id=rid,
            )
        if "retry-after" not in response.headers:
            interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
            wait = int(interval) / 1000 if interval.isdigit() else 1.0
            what = f"{connector} answered HTTP 429 {policy}"
            return RetryableError(connector, what, status=status, request_id=rid, retry_after=wait)
    code = code_of(fields.get("category")) or code_of(fields.get("policyName"))
    error = classify_response(connector, response, request_id_header=CORRELATION_HEADER, code=code)
    if isinstance(error, ConnectorError) and error.request_id is None:
        error.request_id = rid
    return error
