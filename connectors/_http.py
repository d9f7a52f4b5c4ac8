"""The HTTP edge every connector shares: one place that turns responses, and every way an
exchange can break, into our errors, and one retry loop around a request.

Error messages built here carry the instance name, the HTTP status, the vendor's error
code and request id, and never the vendor's free-text message, the URL or the body: vendors
echo field values in their messages ("email x@y.example is invalid"), URLs hold profile ids,
and bodies hold people's data (P1).

Every ``httpx`` exception is sorted here by what can succeed later:

======================================  =====================================================
connect error or timeout, pool timeout  retryable: the request never left
read/write error, read/write timeout,   retryable for reads; for a write (POST),
remote protocol error, close error      :class:`WriteUncertain`: it may have been applied
body that cannot be decoded             the same (a broken proxy may mangle one answer, not
                                        the next); the retry budget bounds it
invalid URL, unsupported protocol,      fatal: the config or syncd is wrong, and trying
too many redirects, local protocol      again sends the same request
error, stream misuse, anything else
body larger than :data:`MAX_BODY_BYTES` fatal: no answer syncd asks for comes near it
======================================  =====================================================
"""

from __future__ import annotations

import json
import re
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

#: The largest answer the edge reads, decoded. The biggest answers syncd asks for (a page
#: of 100 records, a conversation page) weigh well under 1 MiB; past 16 MiB the answer is
#: not the API's (a proxy's download, a runaway body, a compression bomb), and reading on
#: would only spend the user's memory.
MAX_BODY_BYTES = 16 * 1024 * 1024

#: Where vendors put the id of a request (checked in order) when the edge, not the
#: vendor's classifier, reports an answer: generic, HubSpot, Pipedrive.
REQUEST_ID_HEADERS = ("x-request-id", "x-hubspot-correlation-id", "x-correlation-id")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: Transport failures after which the request may have reached the server.
_MAY_HAVE_ARRIVED = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.CloseError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
)


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


def request_id_of(response: httpx.Response) -> str | None:
    """The vendor's request id from the first known header, if it looks like an id."""
    for name in REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value is not None:
            return value if _REQUEST_ID.fullmatch(value) else None
    return None


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


def exchange_error(
    connector: str,
    error: Exception,
    *,
    safe: bool,
    response: httpx.Response | None = None,
) -> ConnectorError:
    """The syncd error an ``httpx`` exception stands for (see the module's table).

    ``safe`` says whether the request may be sent again once it may have arrived;
    ``response`` is the answer whose body was being read, if it got that far. The
    exception's own text never enters the message: it can hold the URL.
    """
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FatalConnectorError(
            connector, f"{connector} has an address syncd cannot call; check its URL in the config"
        )
    if isinstance(error, httpx.TooManyRedirects):
        return FatalConnectorError(
            connector, f"{connector} redirected too many times; check its URL in the config"
        )
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return RetryableError(connector, f"{connector} cannot be reached")  # it never left
    if isinstance(error, httpx.ProxyError):
        return RetryableError(connector, f"the proxy to {connector} refused the connection")
    request_id = request_id_of(response) if response is not None else None
    if isinstance(error, httpx.DecodingError) and response is not None:
        # No ``status``: the status line was fine, and a retry's reason should say what
        # broke (the body), not "HTTP 200".
        what = (
            f"{connector} answered HTTP {response.status_code} with a body that cannot be decoded"
        )
        if not safe:
            return WriteUncertain(
                connector, f"{what}, so a write is unconfirmed", request_id=request_id
            )
        return RetryableError(connector, what, request_id=request_id)
    if isinstance(error, _MAY_HAVE_ARRIVED):
        if not safe:
            return WriteUncertain(
                connector, f"{connector} did not confirm a write (the connection broke)"
            )
        if isinstance(error, httpx.TimeoutException):
            return RetryableError(connector, f"{connector} did not answer in time")
        return RetryableError(connector, f"{connector} broke the connection")
    if isinstance(error, httpx.LocalProtocolError | httpx.StreamError):
        return FatalConnectorError(
            connector, f"syncd could not make a valid request to {connector} (a bug; see the log)"
        )
    if isinstance(error, httpx.TransportError):  # any other network failure
        if not safe:
            return WriteUncertain(
                connector, f"{connector} did not confirm a write (the connection broke)"
            )
        return RetryableError(connector, f"{connector} cannot be reached")
    return FatalConnectorError(
        connector, f"the exchange with {connector} failed unexpectedly ({type(error).__name__})"
    )


async def read_body(connector: str, response: httpx.Response, limit: int = MAX_BODY_BYTES) -> None:
    """Read a streamed answer's body (decoded) into ``response``, refusing one past ``limit``
    bytes before it is all in memory."""
    chunks: list[bytes] = []
    size = 0
    too_big = False
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            too_big = True
            break
        chunks.append(chunk)
    if too_big:
        raise FatalConnectorError(
            connector,
            f"{connector} answered HTTP {response.status_code} with more than {_size(limit)}, "
            "more than any answer syncd asks for; check its URL in the config",
            status=response.status_code,
            request_id=request_id_of(response),
        )
    # What ``Response.aread`` does once it has the bytes; the response then acts as read.
    response._content = b"".join(chunks)


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


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
    max_body: int = MAX_BODY_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request, retrying what can succeed later; return a response, its body read,
    whose status is in ``ok``, or raise the syncd error it stands for — never an ``httpx``
    exception.

    A 401 calls ``refresh`` once (when given) and tries again with the new token. A request
    that is not ``idempotent`` (by default: POST) is not sent again after the connection
    broke once it may have reached the CRM: :class:`WriteUncertain` is raised instead, and
    the caller re-runs the whole upsert, which finds by identity what the lost write made.
    With a ``limiter``, every attempt (retries too) first waits for room in the CRM's rate
    window, and every answer corrects it. A body past ``max_body`` bytes is refused.
    """
    refreshed = False
    safe = method.upper() != "POST" if idempotent is None else idempotent

    async def exchange() -> httpx.Response:
        async with client.stream(method, url, **kwargs) as response:
            if limiter is not None:
                limiter.observe(response)
            try:
                await read_body(connector, response, max_body)
            except (httpx.HTTPError, httpx.StreamError) as exc:
                raise exchange_error(connector, exc, safe=safe, response=response) from exc
        return response

    async def attempt_once() -> httpx.Response:
        nonlocal refreshed
        try:
            if limiter is None:
                response = await exchange()
            else:
                async with limiter.slot():
                    response = await exchange()
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise exchange_error(connector, exc, safe=safe) from exc
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
        before_sleep=policy.before_sleep(connector, method.upper()),
        reraise=True,
    )
    response: httpx.Response = await retrying(attempt_once)
    return response


def json_body(response: httpx.Response) -> object:
    """The response body parsed as JSON, or None when it is not JSON (garbage, an HTML page,
    cut short, or nested past what the parser allows)."""
    try:
        body: object = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    return body


def json_object(connector: str, response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or a FatalConnectorError saying it was not one."""
    body = json_body(response)
    if not isinstance(body, dict):
        raise FatalConnectorError(
            connector,
            f"{connector} answered HTTP {response.status_code} with something that is not "
            "the JSON object its API sends; check its URL in the config",
            status=response.status_code,
            request_id=request_id_of(response),
        )
    return body


__all__ = [
    "MAX_BODY_BYTES",
    "ConnectorError",
    "classify_response",
    "exchange_error",
    "json_body",
    "json_object",
    "read_body",
    "retry_after_seconds",
    "send",
]
