"""HTTP helpers of the Salesforce sandbox: Salesforce-shaped error bodies, the
``Sforce-Limit-Info`` header, request-body checks, and the edge middleware that serves
the sandbox's own control of refresh tokens.

Error body: a JSON list of ``{message, errorCode, fields}``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm);
limit header: ``Sforce-Limit-Info: api-usage=N/M``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.salesforce.mapping import BATCH_LIMIT
from connectors.salesforce.sandbox.store import SalesforceError
from rig.sandbox import CONTROL_PREFIX

LIMIT_HEADER = "Sforce-Limit-Info"
DUPLICATE_HEADER = "Sforce-Duplicate-Rule-Header"
API_PREFIX = "/services/data/"

_FAULTS = {
    400: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "A validation rule refused the record."),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable."),
}


def entry(error: SalesforceError) -> dict[str, object]:
    """One error entry, as a list item of an error answer."""
    out: dict[str, object] = {**error.extra, "message": error.message, "errorCode": error.code}
    if error.fields or (error.status == 400 and error.code not in _QUERY_CODES):
        out["fields"] = list(error.fields)
    return out


_QUERY_CODES = frozenset({"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"})


def record_error(error: SalesforceError) -> dict[str, object]:
    """One entry of ``errors`` in a SaveResult (collections name the code statusCode)."""
    return {"statusCode": error.code, "message": error.message, "fields": list(error.fields)}


def fault_body(status: int, message: str) -> list[dict[str, object]]:
    """The body of an injected fault (SandboxCore's ``error_body``), Salesforce-shaped."""
    code, text = _FAULTS.get(
        status,
        ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId "
         "if you contact support: 1932025786-11431 (-1187593419)"),
    )  # fmt: skip
    return [{"message": text, "errorCode": code}]


def oauth_error(error: str, description: str) -> dict[str, str]:
    """The token endpoint's own error shape."""
    return {"error": error, "error_description": description}


class DailyUsage:
    """The org's API calls in a rolling 24 hours, as Salesforce counts them."""

    def __init__(self, limit: int, clock: Callable[[], float], window: float = 86_400.0):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._calls: deque[float] = deque()

    def used(self) -> int:
        """Calls counted in the last 24 hours."""
        now = self._clock()
        while self._calls and now - self._calls[0] >= self.window:
            self._calls.popleft()
        return len(self._calls)

    def hit(self) -> bool:
        """Count one call; False (not counted) once the limit is reached."""
        if self.used() >= self.limit:
            return False
        self._calls.append(self._clock())
        return True

    def clear(self) -> None:
        """Forget every counted call."""
        self._calls.clear()

    def header(self) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.used()}/{self.limit}"


def allow_save(request: Request) -> bool:
    """Whether ``Sforce-Duplicate-Rule-Header`` asks to save past a duplicate alert."""
    raw = request.headers.get(DUPLICATE_HEADER, "")
    parts = dict(p.strip().partition("=")[::2] for p in raw.split(";") if "=" in p)
    return parts.get("allowSave", "").strip().lower() == "true"


# -- request bodies ----------------------------------------------------------------------


def bad_json(detail: str) -> SalesforceError:
    """A 400 for a body Salesforce would not parse."""
    return SalesforceError(400, "JSON_PARSER_ERROR", detail)


async def json_body(request: Request) -> Any:
    """The request body as JSON, or 400 JSON_PARSER_ERROR."""
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise bad_json("Unexpected character: was expecting a JSON value") from exc


async def json_object(request: Request) -> dict[str, object]:
    """The request body as one JSON object (an sObject's fields)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_json("Cannot deserialize instance of sObject from a non-object value")
    return {str(k): v for k, v in body.items()}


async def collection(request: Request) -> tuple[bool, list[dict[str, object]]]:
    """``allOrNone`` and ``records`` of an sObject Collections request."""
    body = await json_object(request)
    records = body.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise bad_json("records must be a list of sObjects")
    if len(records) > BATCH_LIMIT:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {BATCH_LIMIT} records into this call",
        )
    return body.get("allOrNone") is True, [{str(k): v for k, v in r.items()} for r in records]


def type_of(record: dict[str, object]) -> str | None:
    """``attributes.type`` of a collections record."""
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    return kind if isinstance(kind, str) else None


def fields_of(record: dict[str, object], *drop: str) -> dict[str, object]:
    """A collections record's fields, without ``attributes`` and ``drop``."""
    skip = {"attributes", *(d.lower() for d in drop)}
    return {k: v for k, v in record.items() if k.lower() not in skip}


# -- the edge ----------------------------------------------------------------------------


class Edge:
    """In front of the wrapped app: ``PUT /_sandbox/tokens`` sets the *refresh* tokens the
    sandbox accepts (a Salesforce credential is a refresh token), and every API answer
    that lacks ``Sforce-Limit-Info`` (an injected fault) gets it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        set_tokens: Callable[[Iterable[str]], None],
        usage: Callable[[], str],
    ) -> None:
        self.app = app
        self.set_tokens = set_tokens
        self.usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if (method, path) == ("PUT", CONTROL_PREFIX + "tokens"):
            request = Request(scope, receive)
            tokens = (await request.json()).get("tokens", [])
            self.set_tokens(str(t) for t in tokens)
            body = json.dumps({"tokens": len(tokens)}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        if not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        name = LIMIT_HEADER.lower().encode()

        async def patched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] != 401:
                headers = list(message.get("headers", []))
                if not any(k.lower() == name for k, _ in headers):
                    headers.append((name, self.usage().encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, patched)
