"""How the Pipedrive client authenticates, and the one function that turns Pipedrive's
error answers into syncd's errors.

An API token goes in the ``x-api-token`` header (the ``api_key`` scheme of the OpenAPI
files), never in the query string, where proxies and logs would keep it. An OAuth credential
is traded at ``POST <oauth_url>/oauth/token`` (HTTP Basic client auth, form body
``grant_type=refresh_token&refresh_token=…``; https://pipedrive.readme.io/docs/marketplace-oauth-authorization)
for an access token held in memory and sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import re
from collections.abc import Generator

import httpx

from connectors._http import classify_response
from sync.errors import AuthError, ConnectorError, FatalConnectorError, RetryableError, SyncdError

TOKEN_PATH = "/oauth/token"  # noqa: S105 - an endpoint path, not a secret
REQUEST_ID_HEADER = "x-correlation-id"
#: A 429 whose window resets later than this is the daily token budget, not the burst limit.
DAILY_RESET_THRESHOLD = 60.0
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class TokenAuth(httpx.Auth):
    """Sends the API token as ``x-api-token``, or the current OAuth access token as Bearer;
    read at each attempt, so a refresh takes effect on the retry."""

    def __init__(self) -> None:
        self.api_token: str | None = None
        self.access_token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.api_token:
            request.headers["x-api-token"] = self.api_token
        elif self.access_token:
            request.headers["Authorization"] = f"Bearer {self.access_token}"
        yield request


def error_fields(response: httpx.Response) -> dict[str, str]:
    """The string fields of an error body (``error``, ``code``, ``message``…)."""
    try:
        body: object = response.json()
    except ValueError:
        return {}
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


def classify_token(connector: str, response: httpx.Response) -> SyncdError:
    """A refused refresh is an AuthError: the user must authorise syncd again."""
    if response.status_code in (400, 401, 403):
        return AuthError(
            connector,
            f"{connector} refused to refresh the OAuth token (HTTP {response.status_code}); "
            f"authorise syncd again and store the new credential with `syncd auth set {connector}`",
        )
    return classify(connector, response)
