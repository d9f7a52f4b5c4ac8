"""The HTTP edge every connector shares: one place that turns responses into our errors,
and one retry loop around a request.

Error messages built here carry the instance name, the HTTP status, the vendor's error
code and request id, and never the vendor's free-text message: vendors echo field values
in it ("email x@y.example is invalid"), and those are people's data (P1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from connectors._ratelimit import Limiter
from sync.errors import (
    AuthError,
    ConnectorError,
    FatalConnectorError,
    RecordRejected,
    RetryableError,
    SyncdError,
    WriteUncertain,
)
from sync.retry import RetryPolicy

Classifier = Callable[[str, httpx.Response], SyncdError]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REJECTED_STATUSES = frozenset({400, 404, 409, 410, 413, 422})


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (number or HTTP date), if present."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_response(
    connector: str,
    response: httpx.Response,
    *,
    request_id_header: str = "x-request-id",
    code: str | None = None,
) -> SyncdError:
    """The error an unexpected response stands for, sorted by what to do next."""
    status = response.status_code
    request_id = response.headers.get(request_id_header)
    what = f"{connector} answered HTTP {status}" + (f" {code}" if code else "")
    if status == 401:
        return AuthError(
            connector,
            f"{connector} rejected its credential ({code or 'HTTP 401'}); "
            f"store a valid one with `syncd auth set {connector}`",
        )
    if status in RETRYABLE_STATUSES:
        return RetryableError(
            connector,
            what,
            status=status,
            request_id=request_id,
            retry_after=retry_after_seconds(response),
        )
    if status == 403:
        return AuthError(
            connector,
            f"{connector} refused access ({code or 'HTTP 403'}); check the credential's "
            f"permissions and store it again with `syncd auth set {connector}`",
        )
    if status in REJECTED_STATUSES:
        return RecordRejected(connector, what, status=status, request_id=request_id)
    return FatalConnectorError(connector, what, status=status, request_id=request_id)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    connector: str,
    policy: RetryPolicy,
    classify: Classifier = classify_response,
    ok: Container[int] = range(200, 300),
    refresh: Callable[[], Awaitable[None]] | None = None,
    idempotent: bool | None = None,
    limiter: Limiter | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request, retrying what can succeed later; return a response whose status
    is in ``ok`` or raise the error it stands for.

    A 401 calls ``refresh`` once (when given) and tries again with the new token. A request
    that is not ``idempotent`` (by default: POST) is not sent again after the connection
    broke once it may have reached the CRM: :class:`WriteUncertain` is raised instead, and
    the caller re-runs the whole upsert, which finds by identity what the lost write made.
    With a ``limiter``, every attempt (retries too) first waits for room in the CRM's rate
    window, and every answer corrects it.
    """
    refreshed = False
    safe = method.upper() != "POST" if idempotent is None else idempotent

    async def attempt_once() -> httpx.Response:
        nonlocal refreshed
        try:
            if limiter is None:
                response = await client.request(method, url, **kwargs)
            else:
                async with limiter.slot():
                    response = await client.request(method, url, **kwargs)
                    limiter.observe(response)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # it never left
            raise RetryableError(connector, f"{connector} cannot be reached") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            if not safe:
                raise WriteUncertain(
                    connector, f"{connector} did not confirm a write (the connection broke)"
                ) from exc
            if isinstance(exc, httpx.TimeoutException):
                raise RetryableError(connector, f"{connector} did not answer in time") from exc
            raise RetryableError(connector, f"{connector} cannot be reached") from exc
        if response.status_code in ok:
            return response
        error = classify(connector, response)
        if isinstance(error, AuthError) and refresh is not None and not refreshed:
            refreshed = True
            await refresh()
            raise RetryableError(connector, f"{connector} token refreshed", retry_after=0)
        raise error

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
        wait=policy.delay,
        retry=retry_if_exception(
            lambda e: isinstance(e, RetryableError) and not isinstance(e, WriteUncertain)
        ),
        sleep=policy.sleep,
        before_sleep=policy.before_sleep(connector, f"{method.upper()} request"),
        reraise=True,
    )
    response: httpx.Response = await retrying(attempt_once)
    return response


def json_object(connector: str, response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or a FatalConnectorError saying it was not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FatalConnectorError(
            connector,
            f"{connector} answered with something that is not a JSON object",
            status=response.status_code,
        )
    return body


__all__ = [
    "ConnectorError",
    "classify_response",
    "json_object",
    "retry_after_seconds",
    "send",
]
