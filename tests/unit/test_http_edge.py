"""The one HTTP edge: every way an exchange breaks becomes one of syncd's errors, retried
when it can succeed later, and no message ever repeats a body, a URL or an exception's text.

Real sandboxes in process (``httpx.ASGITransport``); the network between is the suite's
recording transport, whose ``before`` hook breaks it the way a real one breaks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import structlog
from starlette.types import ASGIApp

from connectors._http import MAX_BODY_BYTES, json_body, json_object, send
from connectors.hubspot import errors
from connectors.hubspot.sandbox.app import HubSpotSandbox
from connectors.linkedin.sandbox.app import LinkedInSandbox
from rig.garbage import GARBAGE_CANARY, GARBAGE_KINDS
from sync.errors import (
    ConnectorError,
    FatalConnectorError,
    RecordRejected,
    RetryableError,
    SyncdError,
    WriteUncertain,
)
from sync.retry import RetryPolicy
from tests.doubles import FakeClock, RecordingTransport

TOKEN = "edge-token-canary-61f0"
#: In the URL of every read: a profile id is a person's data.
URL_CANARY = "url-canary-person-0d9a"
#: The text of every injected httpx exception: it may quote a URL or a header.
ERROR_CANARY = "exception-canary-77b3 someone@people.example"
#: In the body of every write.
WRITE_CANARY = "write-canary-c512@people.example"
READ = "/api/v1/me"
WRITE = "/crm/v3/objects/contacts/batch/create"

Breaker = Callable[[httpx.Request], Exception]


def assert_clean(error: BaseException) -> None:
    """No canary, token or body text in what the user or the log would see."""
    assert isinstance(error, ConnectorError)
    shown = f"{error} {error.describe()}"
    for canary in (TOKEN, URL_CANARY, ERROR_CANARY, WRITE_CANARY, GARBAGE_CANARY):
        assert canary not in shown
    assert "<html" not in shown
    assert error.connector in str(error)


def retries(logs: Sequence[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """The ``retry.scheduled`` events among captured logs."""
    return [e for e in logs if e["event"] == "retry.scheduled"]


@dataclass
class Edge:
    """A client on a real sandbox with a breakable network in between."""

    transport: RecordingTransport
    client: httpx.AsyncClient
    clock: FakeClock
    breaks: list[Breaker]

    def break_next(self, make: Breaker, times: int = 1) -> None:
        """The next ``times`` requests fail with the error ``make`` builds."""
        self.breaks.extend([make] * times)

    def policy(self, attempts: int = 4) -> RetryPolicy:
        """Retries that never really wait."""
        return RetryPolicy(attempts=attempts, sleep=self.clock.sleep)

    async def read(self, *, attempts: int = 4, max_body: int = MAX_BODY_BYTES) -> httpx.Response:
        """GET the source's ``/me``, the URL carrying a person's id."""
        return await send(
            self.client,
            "GET",
            READ,
            connector="source",
            policy=self.policy(attempts),
            params={"q": URL_CANARY},
            max_body=max_body,
        )

    async def write(self, *, attempts: int = 4) -> httpx.Response:
        """POST one contact to HubSpot's batch create (not idempotent)."""
        person = {"properties": {"email": WRITE_CANARY, "firstname": "Edge"}}
        return await send(
            self.client,
            "POST",
            WRITE,
            connector="hubspot",
            policy=self.policy(attempts),
            json={"inputs": [person]},
        )


async def _edge(app: ASGIApp) -> AsyncIterator[Edge]:
    breaks: list[Breaker] = []

    def before(request: httpx.Request) -> None:
        if breaks:
            raise breaks.pop(0)(request)

    transport = RecordingTransport.over(app, before)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers=headers
    ) as client:
        yield Edge(transport, client, FakeClock(), breaks)


@pytest.fixture
def source() -> LinkedInSandbox:
    return LinkedInSandbox(tokens=[TOKEN])


@pytest.fixture
def hubspot() -> HubSpotSandbox:
    return HubSpotSandbox(tokens=[TOKEN])


@pytest.fixture
async def reader(source: LinkedInSandbox) -> AsyncIterator[Edge]:
    async for edge in _edge(source.app):
        yield edge


@pytest.fixture
async def writer(hubspot: HubSpotSandbox) -> AsyncIterator[Edge]:
    async for edge in _edge(hubspot.app):
        yield edge


def raising(kind: type[Exception]) -> Breaker:
    """Builds ``kind`` as httpx raises it, with a canary for its text."""

    def make(request: httpx.Request) -> Exception:
        if kind is httpx.StreamConsumed:
            return httpx.StreamConsumed()  # httpx gives it a fixed text
        if issubclass(kind, httpx.RequestError):
            return kind(ERROR_CANARY, request=request)
        return kind(ERROR_CANARY)

    return make


#: httpx errors after which a write may have reached the CRM.
MAY_HAVE_ARRIVED = [
    pytest.param(httpx.ReadError, id="read-error"),
    pytest.param(httpx.WriteError, id="write-error"),
    pytest.param(httpx.CloseError, id="close-error"),
    pytest.param(httpx.ReadTimeout, id="read-timeout"),
    pytest.param(httpx.WriteTimeout, id="write-timeout"),
    pytest.param(httpx.RemoteProtocolError, id="remote-protocol-error"),
    pytest.param(httpx.NetworkError, id="other-network-error"),
]

#: httpx errors after which a read can succeed later: those where the request never left,
#: and those where it may have arrived.
TRANSIENT = [
    pytest.param(httpx.ConnectError, id="connect-error"),
    pytest.param(httpx.ConnectTimeout, id="connect-timeout"),
    pytest.param(httpx.PoolTimeout, id="pool-timeout"),
    pytest.param(httpx.ProxyError, id="proxy-error"),
    *MAY_HAVE_ARRIVED,
]

#: httpx errors that sending the same request again cannot cure.
FATAL = [
    pytest.param(httpx.UnsupportedProtocol, id="unsupported-protocol"),
    pytest.param(httpx.InvalidURL, id="invalid-url"),
    pytest.param(httpx.TooManyRedirects, id="too-many-redirects"),
    pytest.param(httpx.LocalProtocolError, id="local-protocol-error"),
    pytest.param(httpx.StreamConsumed, id="stream-misuse"),
    pytest.param(httpx.HTTPError, id="unknown-http-error"),
]


class TestBrokenNetwork:
    """Each httpx failure becomes a syncd error sorted by whether it can succeed later."""

    @pytest.mark.parametrize("kind", TRANSIENT)
    async def test_a_read_is_retried_and_the_retry_logged(
        self, reader: Edge, kind: type[Exception]
    ) -> None:
        """A read broken twice is tried a third time, and each retry is logged."""
        reader.break_next(raising(kind), times=2)
        with structlog.testing.capture_logs() as logs:
            response = await reader.read()
        assert json_object("source", response)["publicId"]
        assert len(reader.transport.sent) == 3
        scheduled = retries(logs)
        assert [e["attempt"] for e in scheduled] == [1, 2]
        assert [e["wait_s"] for e in scheduled] == [round(w, 3) for w in reader.clock.waits]
        for event in scheduled:
            assert event["crm"] == "source"
            assert isinstance(event["reason"], str)
            assert event["reason"]
            assert ERROR_CANARY not in json.dumps(event)
            assert URL_CANARY not in json.dumps(event)

    @pytest.mark.parametrize("kind", TRANSIENT)
    async def test_a_read_that_stays_broken_ends_retryable(
        self, reader: Edge, kind: type[Exception]
    ) -> None:
        """Past the attempt budget the read fails as retryable, with a clean sentence."""
        reader.break_next(raising(kind), times=10)
        with pytest.raises(RetryableError) as caught:
            await reader.read(attempts=3)
        assert type(caught.value) is RetryableError
        assert len(reader.transport.sent) == 3
        assert_clean(caught.value)

    @pytest.mark.parametrize("kind", MAY_HAVE_ARRIVED)
    async def test_a_write_is_never_resent_once_it_may_have_arrived(
        self, writer: Edge, hubspot: HubSpotSandbox, kind: type[Exception]
    ) -> None:
        """A write whose exchange broke after it may have left is WriteUncertain, sent once."""
        writer.break_next(raising(kind))
        with structlog.testing.capture_logs() as logs, pytest.raises(WriteUncertain) as caught:
            await writer.write()
        assert len(writer.transport.sent) == 1
        assert retries(logs) == []
        assert_clean(caught.value)

    @pytest.mark.parametrize(
        "kind",
        [
            pytest.param(httpx.ConnectError, id="connect-error"),
            pytest.param(httpx.ConnectTimeout, id="connect-timeout"),
            pytest.param(httpx.PoolTimeout, id="pool-timeout"),
        ],
    )
    async def test_a_write_that_never_left_is_retried(
        self, writer: Edge, hubspot: HubSpotSandbox, kind: type[Exception]
    ) -> None:
        """A write refused before it left is sent again, and made once."""
        writer.break_next(raising(kind))
        response = await writer.write()
        assert response.status_code == 201
        assert hubspot.contact_count() == 1

    @pytest.mark.parametrize("kind", FATAL)
    async def test_what_cannot_succeed_later_is_fatal_at_once(
        self, reader: Edge, kind: type[Exception]
    ) -> None:
        """A failure that the same request would meet again is fatal, after one attempt."""
        reader.break_next(raising(kind), times=10)
        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises(FatalConnectorError) as caught,
        ):
            await reader.read()
        assert len(reader.transport.sent) == 1
        assert retries(logs) == []
        assert_clean(caught.value)


class TestRealUrls:
    """URLs httpx itself refuses end as fatal errors that do not quote the URL."""

    @pytest.mark.parametrize(
        "url",
        [
            pytest.param(f"http://crm.invalid:{URL_CANARY}/x", id="invalid-url"),
            pytest.param(f"ftp://crm.invalid/{URL_CANARY}", id="unsupported-protocol"),
        ],
    )
    async def test_an_address_that_cannot_be_called_is_fatal(self, url: str) -> None:
        """An invalid URL or a scheme httpx has no transport for is fatal, URL not shown."""
        clock = FakeClock()
        async with httpx.AsyncClient() as client:
            with pytest.raises(FatalConnectorError) as caught:
                await send(
                    client,
                    "GET",
                    url,
                    connector="hubspot",
                    policy=RetryPolicy(attempts=3, sleep=clock.sleep),
                )
        assert clock.waits == []
        assert "config" in str(caught.value)
        assert_clean(caught.value)


class TestGarbage:
    """A 200 whose body is garbage never escapes the edge as anything but a syncd error."""

    async def test_every_kind_is_known(self, source: LinkedInSandbox) -> None:
        """The sandbox refuses a garbage kind it does not know."""
        with pytest.raises(ValueError, match="unknown garbage kind"):
            source.core.garbage_next("confetti")
        assert set(GARBAGE_KINDS) == {"corrupt_gzip", "truncated_json", "html", "huge"}

    async def test_a_corrupt_gzip_read_is_retried_and_logged(
        self, reader: Edge, source: LinkedInSandbox
    ) -> None:
        """Two corrupt gzip answers are retried; the third answer is read."""
        source.core.garbage_next("corrupt_gzip", count=2)
        with structlog.testing.capture_logs() as logs:
            response = await reader.read()
        assert json_object("source", response)["publicId"]
        scheduled = retries(logs)
        assert [(e["crm"], e["attempt"]) for e in scheduled] == [("source", 1), ("source", 2)]
        assert all(e["reason"] == "DecodingError" for e in scheduled)
        assert all(isinstance(e["wait_s"], float) for e in scheduled)

    async def test_corrupt_gzip_for_ever_ends_within_the_budget(
        self, reader: Edge, source: LinkedInSandbox
    ) -> None:
        """An answer that stays corrupt is retried only as often as the policy allows."""
        source.core.garbage_next("corrupt_gzip", count=100)
        with pytest.raises(RetryableError) as caught:
            await reader.read(attempts=3)
        assert type(caught.value) is RetryableError
        assert len(reader.transport.sent) == 3
        assert "HTTP 200" in str(caught.value)
        assert_clean(caught.value)

    async def test_a_corrupt_gzip_answer_to_a_write_is_uncertain(
        self, writer: Edge, hubspot: HubSpotSandbox
    ) -> None:
        """A write answered with corrupt gzip may have been made: WriteUncertain, not resent."""
        hubspot.core.garbage_next("corrupt_gzip", applied=True)
        with pytest.raises(WriteUncertain) as caught:
            await writer.write()
        assert len(writer.transport.sent) == 1
        assert hubspot.contact_count() == 1  # it was made: sending it again would double it
        assert caught.value.request_id  # HubSpot's correlation id, for the user's ticket
        assert_clean(caught.value)

    @pytest.mark.parametrize("kind", ["truncated_json", "html"])
    async def test_a_200_that_is_not_json_is_fatal_with_a_sentence(
        self, reader: Edge, source: LinkedInSandbox, kind: str
    ) -> None:
        """Cut JSON or a captive portal's page is read, then refused as not the API's answer."""
        source.core.garbage_next(kind)
        response = await reader.read()
        assert response.content  # the body was read, and it is garbage
        with pytest.raises(FatalConnectorError) as caught:
            json_object("source", response)
        assert caught.value.status == 200
        assert "HTTP 200" in str(caught.value)
        assert_clean(caught.value)

    async def test_a_huge_answer_is_refused_at_the_cap(
        self, reader: Edge, source: LinkedInSandbox
    ) -> None:
        """A body one byte past the 16 MiB cap is refused, not retried, and not kept."""
        source.core.garbage_next("huge", size=MAX_BODY_BYTES + 1)
        with pytest.raises(FatalConnectorError) as caught:
            await reader.read()
        assert len(reader.transport.sent) == 1
        assert "16 MiB" in str(caught.value)
        assert_clean(caught.value)

    async def test_an_answer_at_the_cap_is_read(
        self, reader: Edge, source: LinkedInSandbox
    ) -> None:
        """A body exactly at the cap is read whole (the cap is not off by one)."""
        source.core.garbage_next("huge", size=4096)
        response = await reader.read(max_body=4096)
        assert len(response.content) == 4096
        source.core.garbage_next("huge", size=4097)
        with pytest.raises(FatalConnectorError, match="4096 bytes"):
            await reader.read(max_body=4096)

    async def test_garbage_can_be_aimed_by_path_and_method(
        self, reader: Edge, source: LinkedInSandbox
    ) -> None:
        """Garbage aimed at another path or method leaves this read alone."""
        source.core.garbage_next("html", path_prefix="/api/v1/profiles")
        source.core.garbage_next("html", method="POST")
        response = await reader.read()
        assert json_object("source", response)["publicId"]


class TestJsonShapes:
    """Parsing an answer's JSON in the edge never raises anything but a syncd error."""

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(f'["{GARBAGE_CANARY}"]'.encode(), id="a-list"),
            pytest.param(b'"' + GARBAGE_CANARY.encode() + b'"', id="a-string"),
            pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-past-the-parser"),
            pytest.param(b"\xff\xfe" + GARBAGE_CANARY.encode(), id="not-utf8"),
            pytest.param(b"", id="empty"),
        ],
    )
    async def test_not_an_object_is_fatal_and_quotes_nothing(self, body: bytes) -> None:
        """JSON that is not an object, or not JSON at all, is fatal with a clean sentence."""

        def server(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=body, headers={"x-request-id": "req-42"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            response = await send(
                client, "GET", "http://crm.test/x", connector="pipedrive", policy=RetryPolicy()
            )
        with pytest.raises(FatalConnectorError) as caught:
            json_object("pipedrive", response)
        assert (caught.value.status, caught.value.request_id) == (200, "req-42")
        assert_clean(caught.value)

    async def test_an_error_body_nested_past_the_parser_is_still_classified(
        self, writer: Edge, hubspot: HubSpotSandbox
    ) -> None:
        """A vendor error whose body the parser cannot read is sorted by its status alone."""
        hubspot.core.fail_next(400, body=b"[" * 100_000, content_type="application/json")
        with pytest.raises(SyncdError) as caught:
            await send(
                writer.client,
                "POST",
                WRITE,
                connector="hubspot",
                policy=writer.policy(),
                classify=errors.classify,
                json={"inputs": []},
            )
        assert isinstance(caught.value, RecordRejected)
        assert caught.value.status == 400

    @pytest.mark.parametrize(
        ("body", "parsed"),
        [
            pytest.param(b'{"code": "E1"}', {"code": "E1"}, id="an-object"),
            pytest.param(b"[1, 2]", [1, 2], id="a-list"),
            pytest.param(b"{" * 50_000, None, id="nested-past-the-parser"),
            pytest.param(b"<html>" + GARBAGE_CANARY.encode(), None, id="html"),
        ],
    )
    def test_vendor_error_helpers_read_bodies_through_the_edge(
        self, body: bytes, parsed: object
    ) -> None:
        """``json_body`` gives the parsed body, or None for anything the parser refuses."""
        assert json_body(httpx.Response(400, content=body)) == parsed
