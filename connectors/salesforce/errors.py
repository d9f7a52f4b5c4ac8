"""How Salesforce's error answers read: the one function that turns them into syncd's
errors, and the helpers that pick codes, field names and API usage out of an answer (never
its free text).

The OAuth refresh (``POST <login_url>/services/oauth2/token``, form-encoded, answering
``access_token`` and ``instance_url``) is done by the shared session
(:mod:`connectors._session`).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm

Errors are a JSON list of ``{message, errorCode, fields}``; an expired session is 401
``INVALID_SESSION_ID``; the org's API limit is **403** ``REQUEST_LIMIT_EXCEEDED`` (throttling,
retried, never a credential problem).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

import re

import httpx

from connectors._http import classify_response, json_body, retry_after_seconds
from sync.errors import RetryableError, SyncdError

LIMIT_INFO_HEADER = "Sforce-Limit-Info"
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,79}$")
_USAGE = re.compile(r"(?:^|[\s,;])api-usage=(\d+)/(\d+)")  # not per-app-api-usage


def errors(response: httpx.Response) -> list[dict[str, object]]:
    """The error entries of an answer: Salesforce's list, or a lone object wrapped."""
    body = json_body(response)
    if body is None:
        return []
    items = body if isinstance(body, list) else [body]
    return [{str(k): v for k, v in i.items()} for i in items if isinstance(i, dict)]


def code_of(value: object) -> str | None:
    """``value`` if it is a machine code (``INVALID_SESSION_ID``), else None: free text from
    Salesforce can quote a person's data and never goes into our messages."""
    return value if isinstance(value, str) and _CODE.match(value) else None


def first_code(response: httpx.Response) -> str | None:
    """The ``errorCode`` of an error answer's first entry, if it is a code."""
    entries = errors(response)
    return code_of(entries[0].get("errorCode")) if entries else None


def describe(entry: dict[str, object], code_key: str = "errorCode") -> str:
    """An error entry as ``CODE (Field, Field)``: the code and field names, no message."""
    code = code_of(entry.get(code_key)) or "ERROR"
    names = entry.get("fields")
    shown = (
        [f for f in names if isinstance(f, str) and _FIELD.match(f)]
        if isinstance(names, list)
        else []
    )
    return code + (f" ({', '.join(shown)})" if shown else "")


def api_usage(response: httpx.Response) -> tuple[int, int] | None:
    """``Sforce-Limit-Info: api-usage=N/M`` as (used, limit), if present."""
    found = _USAGE.search(response.headers.get(LIMIT_INFO_HEADER, ""))
    return (int(found.group(1)), int(found.group(2))) if found else None


def classify(connector: str, response: httpx.Response) -> SyncdError:
    """Salesforce's answer as syncd's error: the first entry's ``errorCode`` is the code;
    403 ``REQUEST_LIMIT_EXCEEDED`` is throttling, retried like a 429."""
    entries = errors(response)
    code = code_of(entries[0].get("errorCode")) if entries else None
    status = response.status_code
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        usage = api_usage(response)
        detail = f" (api usage {usage[0]}/{usage[1]})" if usage else ""
        return RetryableError(
            connector,
            f"{connector} answered HTTP 403 REQUEST_LIMIT_EXCEEDED: the org's API limit is "
            f"used up for now{detail}",
            status=status,
            retry_after=retry_after_seconds(response),
        )
    return classify_response(connector, response, code=code)
