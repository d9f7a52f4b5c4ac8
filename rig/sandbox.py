"""What every sandbox shares: valid tokens, the request log, fault knobs, and the
``/_sandbox/...`` control endpoints that let a test, the demo or a benchmark drive a
sandbox running in another process.

A vendor sandbox builds its own Starlette app for the vendor's paths and wraps it with
:meth:`SandboxCore.wrap`; the result is one ASGI app that serves both.

Control endpoints (JSON):

=======  ===========================  ==================================================
GET      /_sandbox/records            what the sandbox holds (the vendor's snapshot)
GET      /_sandbox/requests           every vendor request: method, path, query, status
GET      /_sandbox/violations         requests with a method the API must never receive
PUT      /_sandbox/tokens             ``{"tokens": [...]}``: the credentials it accepts
POST     /_sandbox/expire-tokens      every current token now answers 401
POST     /_sandbox/faults             ``{"status", "retry_after", "count", "path_prefix",
                                      "latency_ms", "body", "content_type"}``: the next
                                      ``count`` requests fail (``body``: a raw answer, text)
POST     /_sandbox/garbage            ``{"kind", "count", "path_prefix", "method", "applied",
                                      "size"}``: the next ``count`` matching requests are
                                      answered 200 with garbage of ``kind`` (see
                                      :data:`GARBAGE_KINDS`), instead of the vendor's answer
                                      or, with ``applied``, after the vendor handled them
POST     /_sandbox/network            ``{"outage_seconds"}``: refuse connections that long;
                                      ``{"reset" | "lose_response": count, "path_prefix",
                                      "method"}``:
                                      cut the next ``count`` matching requests with a TCP
                                      reset, before the write or after it was applied
                                      (needs the :mod:`rig.faultnet` proxy)
POST     /_sandbox/reset              forget records, requests, faults
=======  ===========================  ==================================================

Garbage is what a broken proxy, a captive portal or a cut download hands a client with a
``200``; every kind carries :data:`GARBAGE_CANARY`, so a test can check that no message,
log or outcome ever repeats a body.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rig.garbage import GARBAGE_KINDS, HUGE_BYTES, garbage_response

CONTROL_PREFIX = "/_sandbox/"

#: Builds the vendor's error body for an injected fault: (status, message) -> JSON.
ErrorBody = Callable[[int, str], Any]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a sandbox received on the vendor's paths."""

    method: str
    path: str
    query: str
    status: int
    header_names: tuple[str, ...]
    #: When the answer was complete (epoch seconds).
    at: float
    #: When the sandbox took the request up (epoch seconds): ``at - started`` is the time
    #: it spent answering, injected latency included.
    started: float = 0.0


@dataclass(slots=True)
class _Fault:
    status: int
    retry_after: float | None
    remaining: int
    path_prefix: str
    body: bytes | None = None
    content_type: str | None = None


@dataclass(slots=True)
class _NetFault:
    kind: str  # "reset" (before the vendor sees the request) or "lose_response" (after)
    remaining: int
    path_prefix: str
    method: str = ""  # "" = any


@dataclass(slots=True)
class _Garbage:
    kind: str
    remaining: int
    path_prefix: str
    method: str = ""  # "" = any
    applied: bool = False  # the vendor handles the request; its answer is replaced
    size: int = HUGE_BYTES


class Network(Protocol):
    """What the sandbox needs of the proxy in front of it (:class:`FaultProxy`)."""

    def outage(self, seconds: float) -> None: ...

    def doom(self, upstream_port: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Throttle:
    """The state of a rate-limit window after counting one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float


class SlidingWindow:
    """At most ``limit`` requests in any ``interval`` seconds, as vendors count them."""

    def __init__(self, limit: int, interval: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.interval = interval
        self._clock = clock
        self._hits: deque[float] = deque()

    def hit(self) -> Throttle:
        """Count one request; say whether it is allowed and what is left."""
        now = self._clock()
        while self._hits and now - self._hits[0] >= self.interval:
            self._hits.popleft()
        reset = self.interval - (now - self._hits[0]) if self._hits else self.interval
        if len(self._hits) >= self.limit:
            return Throttle(False, self.limit, 0, reset)
        self._hits.append(now)
        return Throttle(True, self.limit, self.limit - len(self._hits), reset)

    def clear(self) -> None:
        """Forget every counted request."""
        self._hits.clear()


class SandboxCore:
    """The state every sandbox shares, and the control endpoints over it."""

    def __init__(
        self,
        name: str,
        *,
        error_body: ErrorBody,
        tokens: Iterable[str] = (),
        allowed_methods: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        self.error_body = error_body
        self.tokens: set[str] = set(tokens)
        self.expired: set[str] = set()
        self.allowed_methods = allowed_methods
        self.requests: list[RecordedRequest] = []
        self.violations: list[RecordedRequest] = []
        self.latency_ms = 0
        #: Vendor requests being answered right now, and the most there have been at once
        #: (benchmarks compare it with a vendor's concurrency limit).
        self.in_flight = 0
        self.peak_in_flight = 0
        self._faults: deque[_Fault] = deque()
        self._net_faults: deque[_NetFault] = deque()
        self._garbage: deque[_Garbage] = deque()
        #: The proxy in front of this sandbox, when it is served over the network.
        self.network: Network | None = None

    # -- knobs -------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        count: int = 1,
        path_prefix: str = "",
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching vendor requests with ``status``; with ``body``,
        that raw body (e.g. an HTML page or broken JSON) instead of the vendor's error."""
        self._faults.append(_Fault(status, retry_after, count, path_prefix, body, content_type))

    def break_next(
        self, kind: str, *, count: int = 1, path_prefix: str = "", method: str = ""
    ) -> None:
        """Cut the next ``count`` matching requests with a TCP reset: ``"reset"`` before
        the vendor sees them, ``"lose_response"`` after the vendor applied them."""
        if kind not in ("reset", "lose_response"):
            raise ValueError(f"unknown network fault {kind!r}")
        self._net_faults.append(_NetFault(kind, count, path_prefix, method.upper()))

    def garbage_next(
        self,
        kind: str,
        *,
        count: int = 1,
        path_prefix: str = "",
        method: str = "",
        applied: bool = False,
        size: int = HUGE_BYTES,
    ) -> None:
        """Answer the next ``count`` matching vendor requests with a ``200`` of garbage
        ``kind`` (see :data:`GARBAGE_KINDS`; ``size`` is how big ``huge`` is). The vendor
        never sees them, unless ``applied``: then it handles each (a write is made) and
        its answer is replaced on the way back, as a broken proxy would."""
        if kind not in GARBAGE_KINDS:
            raise ValueError(f"unknown garbage kind {kind!r}")
        self._garbage.append(_Garbage(kind, count, path_prefix, method.upper(), applied, size))

    def expire_tokens(self) -> None:
        """Every token accepted so far now answers 401."""
        self.expired |= self.tokens
        self.tokens.clear()

    def reset(self) -> None:
        """Forget requests, violations, faults and latency (records are the vendor's)."""
        self.requests.clear()
        self.violations.clear()
        self._faults.clear()
        self._net_faults.clear()
        self._garbage.clear()
        self.latency_ms = 0

    # -- helpers for vendor routes ------------------------------------------------------

    def bearer(self, request: Request) -> str | None:
        """The Bearer token of ``request``, if any."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def accepts(self, token: str | None) -> bool:
        """Whether ``token`` is a currently valid credential."""
        return token is not None and token in self.tokens

    # -- ASGI ----------------------------------------------------------------------------

    def wrap(
        self,
        vendor_app: ASGIApp,
        *,
        snapshot: Callable[[], Any],
        reset_records: Callable[[], None],
        extra_routes: Sequence[BaseRoute] = (),
    ) -> ASGIApp:
        """One ASGI app: the control endpoints, then faults and logging around the vendor."""
        control = Starlette(routes=[*self._control_routes(snapshot, reset_records), *extra_routes])
        return _SandboxApp(self, control, vendor_app)

    def _control_routes(
        self, snapshot: Callable[[], Any], reset_records: Callable[[], None]
    ) -> list[BaseRoute]:
        async def records(_: Request) -> Response:
            return JSONResponse(snapshot())

        async def requests(_: Request) -> Response:
            return JSONResponse([asdict(r) for r in self.requests])

        async def violations(_: Request) -> Response:
            return JSONResponse([asdict(r) for r in self.violations])

        async def tokens(request: Request) -> Response:
            body = await request.json()
            self.tokens = {str(t) for t in body.get("tokens", [])}
            self.expired.clear()
            return JSONResponse({"tokens": len(self.tokens)})

        async def expire(_: Request) -> Response:
            self.expire_tokens()
            return JSONResponse({"expired": len(self.expired)})

        async def faults(request: Request) -> Response:
            body = await request.json()
            if "latency_ms" in body:
                self.latency_ms = int(body["latency_ms"])
            if "status" in body:
                self.fail_next(
                    int(body["status"]),
                    retry_after=body.get("retry_after"),
                    count=int(body.get("count", 1)),
                    path_prefix=str(body.get("path_prefix", "")),
                    body=None if body.get("body") is None else str(body["body"]).encode(),
                    content_type=str(body["content_type"]) if body.get("content_type") else None,
                )
            return JSONResponse({"pending_faults": len(self._faults)})

        async def network(request: Request) -> Response:
            body = await request.json()
            if self.network is None:
                return JSONResponse({"error": "this sandbox is not behind a fault proxy"}, 409)
            if "outage_seconds" in body:
                self.network.outage(float(body["outage_seconds"]))
            for kind in ("reset", "lose_response"):
                if kind in body:
                    prefix = str(body.get("path_prefix", ""))
                    method = str(body.get("method", ""))
                    self.break_next(kind, count=int(body[kind]), path_prefix=prefix, method=method)
            return JSONResponse({"pending_network_faults": len(self._net_faults)})

        async def garbage(request: Request) -> Response:
            body = await request.json()
            try:
                self.garbage_next(
                    str(body.get("kind", "")),
                    count=int(body.get("count", 1)),
                    path_prefix=str(body.get("path_prefix", "")),
                    method=str(body.get("method", "")),
                    applied=bool(body.get("applied", False)),
                    size=int(body.get("size", HUGE_BYTES)),
                )
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse({"pending_garbage": len(self._garbage)})

        async def reset(_: Request) -> Response:
            self.reset()
            reset_records()
            return JSONResponse({"reset": True})

        p = CONTROL_PREFIX
        return [
            Route(p + "records", records, methods=["GET"]),
            Route(p + "requests", requests, methods=["GET"]),
            Route(p + "violations", violations, methods=["GET"]),
            Route(p + "tokens", tokens, methods=["PUT"]),
            Route(p + "expire-tokens", expire, methods=["POST"]),
            Route(p + "faults", faults, methods=["POST"]),
            Route(p + "network", network, methods=["POST"]),
            Route(p + "garbage", garbage, methods=["POST"]),
            Route(p + "reset", reset, methods=["POST"]),
        ]

    def _take_net_fault(self, method: str, path: str) -> _NetFault | None:
        if self.network is None:
            return None
        for fault in self._net_faults:
            if path.startswith(fault.path_prefix) and fault.method in ("", method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._net_faults.remove(fault)
                return fault
        return None

    def _take_garbage(self, method: str, path: str) -> _Garbage | None:
        for garbage in self._garbage:
            if path.startswith(garbage.path_prefix) and garbage.method in ("", method):
                garbage.remaining -= 1
                if garbage.remaining <= 0:
                    self._garbage.remove(garbage)
                return garbage
        return None

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None


class Sandbox(Protocol):
    """What every vendor sandbox offers the rig: one ASGI app serving the vendor's paths and
    ``/_sandbox/``, the shared core with its fault knobs, and how a config and a stored
    credential point syncd at it."""

    @property
    def core(self) -> SandboxCore: ...

    @property
    def app(self) -> ASGIApp: ...

    def credential(self, token: str) -> str:
        """What `syncd auth set` stores so a client authenticates with ``token``."""
        ...

    def config_table(self, root_url: str) -> dict[str, object]:
        """The config keys that point an instance of this type at the sandbox."""
        ...


class CRMSandbox(Sandbox, Protocol):
    """A CRM's sandbox: what it holds, in rows the demo prints and counts the tests check."""

    #: The (method, path prefix) of the request that writes a contact, for fault tests.
    WRITE_REQUEST: ClassVar[tuple[str, str]]

    def rows(self) -> list[dict[str, str]]:
        """The contacts it holds, one row each (name, email, company, id)."""
        ...

    def contact_count(self) -> int:
        """How many contacts it holds."""
        ...


class _SandboxApp:
    """Routes control paths to the control app; records and perturbs vendor requests."""

    def __init__(self, core: SandboxCore, control: ASGIApp, vendor: ASGIApp) -> None:
        self.core = core
        self.control = control
        self.vendor = vendor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await (self.control if scope["type"] == "http" else self.vendor)(scope, receive, send)
            return
        core = self.core
        status_seen = 0
        net_fault = core._take_net_fault(scope["method"], scope["path"])
        client = scope.get("client")
        peer_port = int(client[1]) if client else 0

        async def recording_send(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
                if net_fault is not None and core.network is not None:
                    core.network.doom(peer_port)  # before the first byte of the answer
            await send(message)

        core.in_flight += 1
        core.peak_in_flight = max(core.peak_in_flight, core.in_flight)
        started = time.time()
        try:
            await self._answer(scope, receive, recording_send, net_fault)
        finally:
            core.in_flight -= 1
        record = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            status=status_seen,
            header_names=tuple(sorted({k.decode("latin-1").lower() for k, _ in scope["headers"]})),
            at=time.time(),
            started=started,
        )
        core.requests.append(record)
        if core.allowed_methods is not None and record.method not in core.allowed_methods:
            core.violations.append(record)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, net_fault: _NetFault | None
    ) -> None:
        core = self.core
        if core.latency_ms:
            await anyio.sleep(core.latency_ms / 1000)
        method = scope["method"]
        path = scope["path"]
        if core.allowed_methods is not None and method not in core.allowed_methods:
            response: ASGIApp = JSONResponse(
                core.error_body(405, f"method {method} is not allowed"), status_code=405
            )
        elif net_fault is not None and net_fault.kind == "reset":
            response = Response(status_code=502)  # never seen: the connection is reset
        elif (garbage := core._take_garbage(method, path)) is not None:
            if garbage.applied:
                await self.vendor(scope, receive, _discard)
            response = garbage_response(garbage.kind, garbage.size)
        elif (fault := core._take_fault(path)) is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            if fault.body is not None:
                response = Response(
                    fault.body,
                    status_code=fault.status,
                    headers=headers,
                    media_type=fault.content_type,
                )
            else:
                response = JSONResponse(
                    core.error_body(fault.status, "injected fault"),
                    status_code=fault.status,
                    headers=headers,
                )
        else:
            response = self.vendor
        await response(scope, receive, send)


async def _discard(_: Message) -> None:
    """An ASGI ``send`` that drops the vendor's answer (garbage goes out instead)."""
