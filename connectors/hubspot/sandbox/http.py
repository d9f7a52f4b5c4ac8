"""HTTP helpers of the HubSpot sandbox: HubSpot-shaped error bodies and rate-limit
headers, request-body checks, and the correlation-id header on every answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.hubspot.mapping import BATCH_LIMIT, ErrorDetail, RateLimitError, StandardError
from connectors.hubspot.sandbox.store import HubSpotError
from rig.sandbox import CONTROL_PREFIX, Throttle

CORRELATION_HEADER = "X-HubSpot-Correlation-Id"
DAILY_LIMIT = 250_000

_CATEGORY_OF_STATUS = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
}
_DETAIL_MESSAGE = {
    "PROPERTY_DOESNT_EXIST": "There is no property named {name}.",
    "READ_ONLY_VALUE": "The property {name} is read-only.",
    "INVALID_EMAIL": "The value of {name} is not an email address.",
    "BLOCKLISTED_EMAIL": "The value of {name} was permanently deleted and cannot be used.",
    "INVALID_DATETIME": "The value of {name} is not an ISO 8601 datetime or epoch milliseconds.",
    "INVALID_OPTION": "The value of {name} is not one of its options.",
    "VALUE_TOO_LONG": "The value of {name} is longer than 65,536 characters.",
    "REQUIRED_PROPERTY": "The property {name} is required.",
}

#: The body of a 403 for a token without the scopes a call needs (``MISSING_SCOPES``).
MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. "
    "Read more about required scopes here: https://developers.hubspot.com/scopes."
)


def new_correlation_id() -> str:
    """A fresh correlation id, a UUID as HubSpot sends them."""
    return str(uuid.uuid4())


def error_body(
    status: int,
    category: str,
    message: str,
    correlation_id: str,
    *,
    errors: tuple[tuple[str, str], ...] = (),
    context: Mapping[str, list[str]] | None = None,
) -> StandardError:
    """HubSpot's error body (https://developers.hubspot.com/docs/api-reference/error-handling)."""
    body: StandardError = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id,
        "category": category,
    }
    if errors:
        details: list[ErrorDetail] = [
            {
                "message": _DETAIL_MESSAGE.get(code, "{name} is not valid.").format(name=name),
                "code": code,
                "context": {"propertyName": [name]},
            }
            for code, name in errors
        ]
        body["errors"] = details
    if context:
        body["context"] = dict(context)
    return body


def from_exception(error: HubSpotError, correlation_id: str) -> StandardError:
    """The error body for a :class:`HubSpotError`."""
    return error_body(
        error.status,
        error.category,
        error.message,
        correlation_id,
        errors=error.errors,
        context=error.context or None,
    )


def rate_limit_body(policy: str, correlation_id: str) -> RateLimitError:
    """A 429 body (https://developers.hubspot.com/docs/api/usage-details)."""
    what = {"TEN_SECONDLY_ROLLING": "ten-second rolling", "SECONDLY": "per-second search"}.get(
        policy, "daily"
    )
    return {
        "status": "error",
        "message": f"The {what} request limit has been reached.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id,
        "policyName": policy,
        "requestId": new_correlation_id(),
    }


def fault_body(status: int, message: str) -> StandardError | RateLimitError:
    """The body of an injected fault (SandboxCore's ``error_body``), HubSpot-shaped."""
    if status == 429:
        return rate_limit_body("TEN_SECONDLY_ROLLING", new_correlation_id())
    category = _CATEGORY_OF_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "ERROR")
    return error_body(status, category, message, new_correlation_id())


def rate_headers(throttle: Throttle, interval: float, daily_used: int) -> dict[str, str]:
    """The ``X-HubSpot-RateLimit-*`` headers after counting one request in a window of
    ``interval`` seconds."""
    return {
        "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
        "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, DAILY_LIMIT - daily_used)),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(interval * 1000)),
        "X-HubSpot-RateLimit-Max": str(throttle.limit),
        "X-HubSpot-RateLimit-Remaining": str(throttle.remaining),
    }


# -- request bodies ----------------------------------------------------------------------


def bad_input(message: str) -> HubSpotError:
    """A 400 for a request body HubSpot would not parse."""
    return HubSpotError(400, "VALIDATION_ERROR", message)


async def json_object(request: Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400."""
    try:
        body: object = json.loads(await request.body())
    except ValueError as exc:
        raise bad_input("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise bad_input("The request body must be a JSON object.")
    return {str(k): v for k, v in body.items()}


def objects(value: object, what: str) -> list[dict[str, object]]:
    """A list of JSON objects, or a 400 naming ``what``."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise bad_input(f"{what} must be a list of objects.")
    return [{str(k): v for k, v in item.items()} for item in value]


def batch_inputs(body: Mapping[str, object]) -> list[dict[str, object]]:
    """The ``inputs`` of a batch request: 1 to 100 objects, or a 400."""
    inputs = objects(body.get("inputs"), "inputs")
    if not inputs or len(inputs) > BATCH_LIMIT:
        raise bad_input(f"A batch takes between 1 and {BATCH_LIMIT} inputs.")
    return inputs


def property_values(value: object) -> dict[str, str]:
    """``properties`` of a write: values are strings (numbers and booleans are written as
    text, null clears), or a 400."""
    if not isinstance(value, dict):
        raise bad_input("properties must be an object.")
    out: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            out[str(key)] = ""
        elif isinstance(item, bool):
            out[str(key)] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            out[str(key)] = str(item)
        else:
            raise bad_input(f"The value of {key} must be a string.")
    return out


def string_list(value: object) -> list[str] | None:
    """A list of strings (``properties`` to read), None when absent, or a 400."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_input("properties must be a list of strings.")
    return [str(v) for v in value]


def query_list(request: Request, name: str) -> list[str] | None:
    """A comma-separated query parameter (``properties``) as a list; None when absent."""
    raw = request.query_params.get(name)
    return [p for p in raw.split(",") if p] if raw else None


def number(value: object, default: int) -> int:
    """A whole number from a query parameter or body field (``limit``, ``after``), or a 400."""
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise bad_input("limit and after must be whole numbers.") from None


def text(value: object, what: str) -> str:
    """A non-empty string, or a 400 naming ``what``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise bad_input(f"{what} must be a non-empty string.")
    return value


# -- the correlation header on answers the vendor app did not build -------------------


class CorrelationIds:
    """Adds ``X-HubSpot-Correlation-Id`` to vendor answers that lack it (injected faults),
    taking the id from the body's ``correlationId`` so header and body agree."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        name = CORRELATION_HEADER.lower().encode()

        async def patched(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if not any(k.lower() == name for k, _ in message.get("headers", [])):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                cid = _body_correlation(message.get("body", b"")) or new_correlation_id()
                headers = [*held.get("headers", []), (name, cid.encode())]
                await send({**held, "headers": headers})
                held = None
            await send(message)

        await self.app(scope, receive, patched)


def _body_correlation(raw: bytes) -> str | None:
    try:
        body: object = json.loads(raw)
    except (ValueError, RecursionError):  # an injected body may be anything
        return None
    value = body.get("correlationId") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
