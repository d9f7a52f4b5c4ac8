"""How the HubSpot client authenticates: a private-app token, or an OAuth refresh token
traded at ``POST /oauth/v1/token`` for an access token kept in memory only, and the one
function that turns HubSpot's error answers into syncd's errors.

Refresh grant: https://developers.hubspot.com/docs/methods/OAuth2/refresh-access-token
(form-encoded ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
``refresh_token``; the answer carries ``access_token`` and ``expires_in``).
"""

from __future__ import annotations

import re
from collections.abc import Generator

import httpx

from connectors._http import classify_response
from sync.errors import AuthError, ConnectorError, FatalConnectorError, RetryableError, SyncdError

CORRELATION_HEADER = "x-hubspot-correlation-id"
TOKEN_PATH = "/oauth/v1/token"  # noqa: S105 - an endpoint path, not a secret
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class Bearer(httpx.Auth):
    """Sends the current access token; read at each attempt, so a refresh takes effect
    on the retry."""

    def __init__(self) -> None:
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def error_fields(response: httpx.Response) -> dict[str, str]:
    """The string fields of an error body (``category``, ``policyName``, ``message``…)."""
    try:
        body: object = response.json()
    except ValueError:
        return {}
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


def classify_token(connector: str, response: httpx.Response) -> SyncdError:
    """A refused refresh is an AuthError: the user must authorise syncd again."""
    if response.status_code in (400, 401, 403):
        fields = error_fields(response)
        code = code_of(fields.get("status")) or code_of(fields.get("category"))
        return AuthError(
            connector,
            f"{connector} refused to refresh the OAuth token ({code or response.status_code}); "
            f"authorise syncd again and store the new credential with `syncd auth set {connector}`",
        )
    return classify(connector, response)
