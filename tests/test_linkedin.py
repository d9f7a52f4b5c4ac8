"""The source connector: its client against its sandbox, and the sandbox against the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from connectors.base import ConnectorSettings, Person
from connectors.linkedin import INFO
from connectors.linkedin.client import LinkedInSource
from connectors.linkedin.mapping import Profile, ShapeError, to_message, to_person
from connectors.linkedin.sandbox.app import LinkedInSandbox
from connectors.linkedin.sandbox.samples import (
    LONG_COMPANY,
    LONG_HEADLINE,
    SamplePerson,
    messages_for,
    profile,
    sample_people,
)
from rig.loopback import bind_loopback, url_of
from sync.asgi import serve
from sync.errors import (
    AuthError,
    ConnectorError,
    FatalConnectorError,
    RecordRejected,
    RetryableError,
)
from sync.retry import RetryPolicy
from tests.doubles import FakeClock

TOKEN = "sandbox-token-linkedin"
ROOT = "http://sandbox.test"
CONVERSATIONS = "/api/v1/conversations"
SPEC = Path(__file__).resolve().parents[1] / "specs" / "source" / "openapi.yaml"


# -- helpers ---------------------------------------------------------------------------------


def make_source(
    sandbox: LinkedInSandbox, clock: FakeClock, *, credential: str = TOKEN, attempts: int = 4
) -> LinkedInSource:
    """A source client talking to ``sandbox`` in-process, as instance ``source``."""
    settings = ConnectorSettings(instance="source", type="linkedin", base_url=ROOT + "/api")
    return LinkedInSource(
        settings,
        credential,
        transport=httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=attempts, sleep=clock.sleep),
    )


def raw_client(sandbox: LinkedInSandbox, *, token: str | None = TOKEN) -> httpx.AsyncClient:
    """A plain HTTP client of the sandbox, without the source client's guard."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url=ROOT, headers=headers
    )


def seeded(public_id: str, *, messages: int = 0, **fields: Any) -> SamplePerson:
    """A person for ``POST /_sandbox/people``, with profile fields overridden."""
    person_profile = profile(900, public_id, "Test", "Person")
    person_profile.update(fields)  # type: ignore[typeddict-item]
    person_profile["id"] = fields.get("id", f"urn:li:member:{abs(hash(public_id)) % 10**8}")
    return {"profile": person_profile, "contactInfo": {}, "messages": messages_for(9, messages)}


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return document


def validate(schema_name: str, body: object) -> None:
    """Raise unless ``body`` is valid for ``#/components/schemas/<schema_name>``."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": spec()["components"]}
    OAS30Validator(root, format_checker=oas30_format_checker).validate(body)


def documented_schema(path: str, status: int) -> str:
    """The schema name the spec gives for a GET of ``path`` answering ``status``."""
    answer = spec()["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in answer:
        answer = spec()["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    ref: str = answer["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> LinkedInSandbox:
    return LinkedInSandbox(tokens=[TOKEN])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def source(sandbox: LinkedInSandbox, clock: FakeClock) -> AsyncIterator[LinkedInSource]:
    client = make_source(sandbox, clock)
    yield client
    await client.aclose()


@pytest.fixture
async def raw(sandbox: LinkedInSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with raw_client(sandbox) as client:
        yield client


# -- the client ------------------------------------------------------------------------------


class TestFetchPerson:
    """fetch_person reads the profile and contact info and maps them to a Person."""

    async def test_maps_every_field(self, source: LinkedInSource) -> None:
        """Every Person field comes from the profile, its current position or contact info."""
        person = await source.fetch_person("zoe-angstrom")
        assert person == Person(
            member_id="urn:li:member:2002",
            public_id="zoe-angstrom",
            first_name="Zoë",
            last_name="Ångström",
            profile_url="https://www.linkedin.example/in/zoe-angstrom",
            headline="Systemingenjör på Fjordverk",
            location="Malmö, Sverige",
            email="zoe.angstrom@fjordverk.example",
            phone="+46 40 000 00 02",
            company="Fjordverk AB",
            company_domain="fjordverk.example",
            title="Systemingenjör",
        )

    @pytest.mark.parametrize(
        ("public_id", "field", "expected"),
        [
            pytest.param("wang-xiaoming", "first_name", "小明", id="cjk-name"),
            pytest.param("jose-nunez", "last_name", "Núñez", id="accented-name"),
            pytest.param("mette-larsen", "headline", LONG_HEADLINE, id="long-headline"),
            pytest.param("mette-larsen", "company", LONG_COMPANY, id="long-company"),
            pytest.param("jose-nunez", "phone", "+34 954 000 003", id="work-before-mobile"),
            pytest.param("fatima-zahra", "phone", "+212 6 00 00 00 13", id="mobile-before-home"),
            pytest.param("nils-hagberg", "phone", "+47 400 00 005", id="any-phone-last"),
            pytest.param("aoife-ni-bhriain", "phone", "+353 91 000 011", id="phone-without-type"),
            pytest.param("aoife-ni-bhriain", "title", "Operations Lead", id="current-not-first"),
            pytest.param("fatima-zahra", "company", "Atlas Components", id="first-current-wins"),
            pytest.param("priya-raman", "company", None, id="no-current-position"),
            pytest.param("lars-eriksen", "title", None, id="no-position-at-all"),
            pytest.param("elodie-blanc", "first_name", "Élodie", id="name-stripped"),
            pytest.param("elodie-blanc", "email", "elodie@lumen-labs.example", id="email-stripped"),
            pytest.param("elodie-blanc", "phone", None, id="blank-phone-is-none"),
            pytest.param("lukasz-zolkiewski", "email", None, id="null-email"),
            pytest.param("soren-kjaer", "company_domain", None, id="no-domain"),
        ],
    )
    async def test_field_cases(
        self, source: LinkedInSource, public_id: str, field: str, expected: str | None
    ) -> None:
        """Each tricky sample maps to the value a salesperson would expect."""
        person = await source.fetch_person(public_id)
        assert getattr(person, field) == expected

    async def test_person_without_email(self, source: LinkedInSource) -> None:
        """Contact info without an email gives a Person without one, and nothing else missing."""
        person = await source.fetch_person("wang-xiaoming")
        assert (person.email, person.phone) == (None, None)
        assert person.company == "上海云帆科技有限公司"

    async def test_contact_info_404_means_nothing_shared(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, clock: FakeClock
    ) -> None:
        """A 404 on contact-info is an empty contact card, not an error, and is not retried."""
        person = await source.fetch_person("quentin-marchal")
        assert (person.email, person.phone, person.company) == (None, None, "Forges du Nord")
        assert [r.status for r in sandbox.core.requests] == [200, 404]
        assert clock.waits == []

    async def test_unknown_profile_is_rejected(
        self, source: LinkedInSource, clock: FakeClock
    ) -> None:
        """A 404 on the profile is RecordRejected, said plainly, after one attempt."""
        with pytest.raises(RecordRejected, match="shows no profile for this reference") as caught:
            await source.fetch_person("nobody-here")
        assert caught.value.status == 404
        assert clock.waits == []

    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param("../me", id="dot-dot"),
            pytest.param("a", id="one-char"),
            pytest.param("has space", id="space"),
            pytest.param("zoë", id="non-ascii"),
        ],
    )
    async def test_malformed_ref_sends_nothing(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, ref: str
    ) -> None:
        """A reference that is not a publicId is refused before any request."""
        with pytest.raises(RecordRejected):
            await source.fetch_person(ref)
        with pytest.raises(RecordRejected):
            await source.fetch_messages(ref)
        assert sandbox.core.requests == []


class TestFetchMessages:
    """fetch_messages pages through the conversation, newest first, up to the limit."""

    @pytest.mark.parametrize(
        ("limit", "expected", "counts"),
        [
            pytest.param(500, 120, ["50", "50", "50"], id="all-in-three-pages"),
            pytest.param(60, 60, ["50", "10"], id="limit-cuts-second-page"),
            pytest.param(50, 50, ["50"], id="limit-of-one-page"),
            pytest.param(0, 0, [], id="zero-asks-nothing"),
        ],
    )
    async def test_pages_until_total_or_limit(
        self,
        source: LinkedInSource,
        sandbox: LinkedInSandbox,
        raw: httpx.AsyncClient,
        limit: int,
        expected: int,
        counts: list[str],
    ) -> None:
        """More than one page of messages is read page by page and stops at total or limit."""
        seeded_person = seeded("chatty-one", messages=120)
        done = await raw.post("/_sandbox/people", json={"people": [seeded_person]})
        assert done.status_code == 200
        sandbox.core.reset()
        messages = await source.fetch_messages("chatty-one", limit=limit)
        assert [m.id for m in messages] == [m["id"] for m in seeded_person["messages"]][:expected]
        assert [m.sent_at for m in messages] == sorted((m.sent_at for m in messages), reverse=True)
        queries = [httpx.QueryParams(r.query) for r in sandbox.core.requests]
        assert [q["count"] for q in queries] == counts
        assert [q["start"] for q in queries] == [str(50 * n) for n in range(len(counts))]

    async def test_stops_at_what_the_crms_hold(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, raw: httpx.AsyncClient
    ) -> None:
        """Paging stops at the first message the CRMs already hold: it and older ones are
        neither returned nor is any page after it asked for; only this conversation is read."""
        seeded_person = seeded("chatty-one", messages=120)
        done = await raw.post("/_sandbox/people", json={"people": [seeded_person]})
        assert done.status_code == 200
        sandbox.core.reset()
        ids = [m["id"] for m in seeded_person["messages"]]
        messages = await source.fetch_messages("chatty-one", until={ids[70], ids[100]})
        assert [m.id for m in messages] == ids[:70]
        queries = [httpx.QueryParams(r.query) for r in sandbox.core.requests]
        assert [q["start"] for q in queries] == ["0", "50"]
        assert {q["with"] for q in queries} == {"chatty-one"}

    async def test_maps_messages(self, source: LinkedInSource) -> None:
        """Each message keeps its id, conversation, sender, aware timestamp and text."""
        messages = await source.fetch_messages("ada-quill")
        assert [m.sender for m in messages] == ["them", "me", "them"]
        first = messages[0]
        assert first.conversation_id == "urn:li:conversation:7001"
        assert first.sent_at == datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
        assert first.text.startswith("Thanks for connecting")

    async def test_no_conversation_is_empty(
        self, source: LinkedInSource, sandbox: LinkedInSandbox
    ) -> None:
        """A person never written to has no messages, after a single request."""
        assert await source.fetch_messages("lars-eriksen") == []
        assert len(sandbox.core.requests) == 1


class TestFailures:
    """Each failure is the error that tells the caller what to do next."""

    async def test_check_auth_accepts_the_token(self, source: LinkedInSource) -> None:
        """check_auth passes with a token the source accepts."""
        await source.check_auth()

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.check_auth(), id="check-auth"),
            pytest.param(lambda s: s.fetch_person("ada-quill"), id="fetch-person"),
            pytest.param(lambda s: s.fetch_messages("ada-quill"), id="fetch-messages"),
        ],
    )
    async def test_401_is_auth_error(
        self,
        sandbox: LinkedInSandbox,
        clock: FakeClock,
        call: Callable[[LinkedInSource], Awaitable[object]],
    ) -> None:
        """A rejected session token is AuthError telling the user to run `syncd auth set source`."""
        source = make_source(sandbox, clock, credential="expired-session")
        with pytest.raises(AuthError, match=r"`syncd auth set source`") as caught:
            await call(source)
        await source.aclose()
        assert caught.value.connector == "source"
        assert "expired-session" not in str(caught.value)

    async def test_429_waits_for_retry_after(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, clock: FakeClock
    ) -> None:
        """A throttled request is retried after at least the Retry-After the source sent."""
        sandbox.core.fail_next(429, retry_after=7)
        person = await source.fetch_person("ada-quill")
        assert person.last_name == "Quill"
        assert max(clock.waits) >= 7

    async def test_rate_limit_window_is_waited_out(self) -> None:
        """The sandbox's own per-token window throttles, and the client waits it out."""
        clock = FakeClock()
        sandbox = LinkedInSandbox(
            tokens=[TOKEN], rate_limit=3, rate_interval=10, clock=clock.monotonic
        )
        source = make_source(sandbox, clock)
        await source.fetch_person("ada-quill")
        person = await source.fetch_person("jose-nunez")
        await source.aclose()
        assert person.first_name == "José"
        assert [r.status for r in sandbox.core.requests] == [200, 200, 200, 429, 200]
        assert clock.waits[0] >= 10

    async def test_999_is_not_retried_and_is_surfaced(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, clock: FakeClock
    ) -> None:
        """Bot defence stops at once with a sentence that says to wait; nothing is retried."""
        sandbox.bot_defence(5)
        with pytest.raises(FatalConnectorError, match="wait a few minutes") as caught:
            await source.fetch_person("ada-quill")
        assert caught.value.status == 999
        assert "refusing automated traffic" in str(caught.value)
        paths = [r.path for r in sandbox.core.requests]  # the contact info goes alongside
        assert len(paths) == len(set(paths)) <= 2
        assert clock.waits == []

    async def test_server_errors_are_retried_then_surface(
        self, sandbox: LinkedInSandbox, clock: FakeClock
    ) -> None:
        """A source that keeps failing with 503 is RetryableError after every attempt."""
        source = make_source(sandbox, clock, attempts=3)
        sandbox.core.fail_next(503, count=10)
        with pytest.raises(RetryableError):
            await source.fetch_person("ada-quill")
        await source.aclose()
        paths = [r.path for r in sandbox.core.requests]  # the contact info is read alongside
        assert {paths.count(path) for path in set(paths)} <= {1, 2, 3}
        assert max(paths.count(path) for path in paths) == 3

    async def test_unreadable_profile_is_fatal(
        self, source: LinkedInSource, sandbox: LinkedInSandbox
    ) -> None:
        """A profile that breaks the documented shape is a FatalConnectorError, not a crash."""
        sandbox.add_people([seeded("broken-shape", firstName=42)])
        with pytest.raises(FatalConnectorError, match="cannot read"):
            await source.fetch_person("broken-shape")


class TestGetOnly:
    """P4: the client cannot send anything but GET; the sandbox records whoever does."""

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    async def test_client_refuses_other_methods(
        self, source: LinkedInSource, sandbox: LinkedInSandbox, method: str
    ) -> None:
        """A non-GET through the client's own HTTP client is refused before it leaves."""
        with pytest.raises(FatalConnectorError, match="only ever reads"):
            await source.http.request(method, "/v1/profiles/ada-quill", json={})
        assert sandbox.core.requests == []

    async def test_sandbox_records_a_violation(
        self, sandbox: LinkedInSandbox, raw: httpx.AsyncClient
    ) -> None:
        """A POST from an unguarded client is answered 405 and recorded as a violation."""
        response = await raw.post("/api/v1/profiles/ada-quill", json={"text": "hi"})
        assert response.status_code == 405
        validate("Error", response.json())
        assert [(v.method, v.status) for v in sandbox.core.violations] == [("POST", 405)]

    async def test_a_full_read_is_get_only(
        self, source: LinkedInSource, sandbox: LinkedInSandbox
    ) -> None:
        """Reading a person and their conversation sends GET requests only."""
        await source.check_auth()
        await source.fetch_person("grace-okafor")
        await source.fetch_messages("grace-okafor")
        assert {r.method for r in sandbox.core.requests} == {"GET"}
        assert sandbox.core.violations == []


# -- the sandbox -----------------------------------------------------------------------------


class TestSandboxMatchesSpec:
    """Every body the sandbox serves on the documented paths validates against the spec."""

    async def test_me(self, sandbox: LinkedInSandbox) -> None:
        """/v1/me answers a Me with the token and an Error without it."""
        async with raw_client(sandbox) as good, raw_client(sandbox, token=None) as anonymous:
            ok = await good.get("/api/v1/me")
            refused = await anonymous.get("/api/v1/me")
        validate(documented_schema("/v1/me", 200), ok.json())
        assert refused.status_code == 401
        validate(documented_schema("/v1/me", 401), refused.json())

    async def test_every_sample_person(self, raw: httpx.AsyncClient) -> None:
        """Each sample's profile, contact info and conversation pages are spec-valid."""
        for person in sample_people():
            public_id = person["profile"]["publicId"]
            responses = {
                "/v1/profiles/{publicId}": await raw.get(f"/api/v1/profiles/{public_id}"),
                "/v1/profiles/{publicId}/contact-info": await raw.get(
                    f"/api/v1/profiles/{public_id}/contact-info"
                ),
                "/v1/conversations": await raw.get(
                    "/api/v1/conversations", params={"with": public_id, "count": 2}
                ),
            }
            for path, response in responses.items():
                validate(documented_schema(path, response.status_code), response.json())

    async def test_paging_fields(self, raw: httpx.AsyncClient) -> None:
        """A page reports where it starts, the count asked for and the total."""
        response = await raw.get(
            "/api/v1/conversations", params={"with": "jose-nunez", "start": 1, "count": 2}
        )
        page = response.json()
        validate("MessagePage", page)
        assert page["paging"] == {"start": 1, "count": 2, "total": 4}
        assert len(page["elements"]) == 2

    @pytest.mark.parametrize(
        ("path", "params", "status"),
        [
            pytest.param("/v1/profiles/{publicId}", {}, 404, id="unknown-profile"),
            pytest.param("/v1/profiles/{publicId}/contact-info", {}, 404, id="unknown-contact"),
            pytest.param("/v1/conversations", {"with": "no-one-here"}, 404, id="unknown-with"),
        ],
    )
    async def test_not_found(
        self, raw: httpx.AsyncClient, path: str, params: dict[str, str], status: int
    ) -> None:
        """An unknown profile is the documented 404 Error on every path."""
        response = await raw.get("/api" + path.format(publicId="no-one-here"), params=params)
        assert response.status_code == status
        validate(documented_schema(path, status), response.json())

    @pytest.mark.parametrize(
        ("url", "params"),
        [
            pytest.param("/api/v1/profiles/-leading-dash", {}, id="bad-public-id"),
            pytest.param(CONVERSATIONS, {}, id="missing-with"),
            pytest.param(CONVERSATIONS, {"with": "ada-quill", "count": 0}, id="count-0"),
            pytest.param(CONVERSATIONS, {"with": "ada-quill", "count": 51}, id="count-51"),
            pytest.param(CONVERSATIONS, {"with": "ada-quill", "count": 1.5}, id="count-float"),
            pytest.param(CONVERSATIONS, {"with": "ada-quill", "start": -1}, id="start-negative"),
            pytest.param(CONVERSATIONS, {"with": "ada-quill", "start": "x"}, id="start-nan"),
            pytest.param(CONVERSATIONS, {"with": "a b"}, id="bad-with"),
        ],
    )
    async def test_bad_parameters(
        self, raw: httpx.AsyncClient, url: str, params: dict[str, object]
    ) -> None:
        """Parameters outside the spec's schema are a 400 with an Error body."""
        response = await raw.get(url, params=params)  # type: ignore[arg-type]
        assert response.status_code == 400
        validate("Error", response.json())

    async def test_rate_limit(self) -> None:
        """Past its per-token window the sandbox answers the documented 429 with Retry-After."""
        sandbox = LinkedInSandbox(tokens=[TOKEN], rate_limit=2, rate_interval=10, clock=lambda: 0)
        async with raw_client(sandbox) as raw:
            statuses = [(await raw.get("/api/v1/me")).status_code for _ in range(2)]
            throttled = await raw.get("/api/v1/profiles/ada-quill")
        assert statuses == [200, 200]
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "10"
        validate(documented_schema("/v1/profiles/{publicId}", 429), throttled.json())

    async def test_bot_defence_by_control_route(
        self, sandbox: LinkedInSandbox, raw: httpx.AsyncClient
    ) -> None:
        """POST /_sandbox/bot-defence makes the next N requests answer 999 with no body."""
        assert (await raw.post("/_sandbox/bot-defence", json={"count": 2})).status_code == 200
        answers = [await raw.get("/api/v1/profiles/ada-quill") for _ in range(3)]
        assert [(r.status_code, r.content) for r in answers[:2]] == [(999, b"")] * 2
        assert answers[2].status_code == 200


class TestSandboxControl:
    """Tests seed, inspect and reset the sandbox through its knobs and control routes."""

    async def test_seeding_replaces_by_member_id(
        self, sandbox: LinkedInSandbox, raw: httpx.AsyncClient
    ) -> None:
        """Seeding a member under a new publicId replaces them, as a renamed vanity id does."""
        first = seeded("old-vanity", id="urn:li:member:55")
        renamed = seeded("new-vanity", id="urn:li:member:55", lastName="Renamed")
        for person in (first, renamed):
            assert (await raw.post("/_sandbox/people", json={"people": [person]})).is_success
        assert (await raw.get("/api/v1/profiles/old-vanity")).status_code == 404
        assert (await raw.get("/api/v1/profiles/new-vanity")).json()["lastName"] == "Renamed"

    async def test_bad_seed_is_refused(self, raw: httpx.AsyncClient) -> None:
        """A seeded person without a valid publicId is a 400, and nothing is added."""
        response = await raw.post("/_sandbox/people", json={"people": [{"profile": {}}]})
        assert response.status_code == 400

    async def test_reset_restores_the_samples(
        self, sandbox: LinkedInSandbox, raw: httpx.AsyncClient
    ) -> None:
        """/_sandbox/reset forgets seeded people and brings the samples back."""
        sandbox.add_people([seeded("temporary-one")])
        sandbox.bot_defence(3)
        await raw.post("/_sandbox/reset")
        records = (await raw.get("/_sandbox/records")).json()
        ids = {p["publicId"] for p in records["people"]}
        assert len(ids) == 24
        assert "temporary-one" not in ids
        assert (await raw.get("/api/v1/me")).status_code == 200

    def test_config_table_and_info(self, sandbox: LinkedInSandbox) -> None:
        """The sandbox's config table points the linkedin type at its /api path."""
        table = sandbox.config_table("http://127.0.0.1:5000")
        assert table == {"type": "linkedin", "base_url": "http://127.0.0.1:5000/api"}
        assert (INFO.kind, INFO.default_base_url) == ("source", "https://www.linkedin.example/api")

    def test_people_data_lists_every_text(self, sandbox: LinkedInSandbox) -> None:
        """people_data gives the strings a residue scan must not find, for held people only."""
        (data,) = sandbox.people_data(["jose-nunez", "not-held"])
        assert {data["first_name"], data["email"], data["phone 1"]} == {
            "José",
            "jose.nunez@olivar-digital.example",
            "+34 954 000 003",
        }
        assert "message 3" in data


@pytest.mark.e2e
class TestOverLoopback:
    """The sandbox behaves the same when served by uvicorn on a real socket."""

    async def test_read_and_bot_defence(self) -> None:
        """A real server serves a person, then the network's 999, which the client surfaces."""
        sandbox = LinkedInSandbox(tokens=[TOKEN])
        sock = bind_loopback()
        async with anyio.create_task_group() as tg:
            server = await tg.start(partial(serve, sandbox.app, sock, graceful_seconds=1))
            table = sandbox.config_table(url_of(sock))
            settings = ConnectorSettings("source", "linkedin", str(table["base_url"]))
            source = LinkedInSource(settings, TOKEN, retry=RetryPolicy(sleep=FakeClock().sleep))
            person = await source.fetch_person("kenji-sato")
            sandbox.bot_defence(1)
            with pytest.raises(FatalConnectorError) as caught:
                await source.fetch_person("kenji-sato")
            await source.aclose()
            server.should_exit = True
        assert person.first_name == "健二"
        assert caught.value.status == 999


# -- privacy ---------------------------------------------------------------------------------

CANARY_ID = "canary-qx7zz-publicid"
CANARY_FIRST = "Quillonette"
CANARY_LAST = "Zbrzezinska-Canary"


def _broken(sandbox: LinkedInSandbox) -> None:
    person = seeded(CANARY_ID, firstName=CANARY_FIRST, lastName=CANARY_LAST, id=7, messages=1)
    person["messages"][0]["sender"] = CANARY_LAST  # type: ignore[typeddict-item]
    sandbox.add_people([person])


class TestNoPersonDataInErrors:
    """P1: an error says what went wrong, never whom it was about."""

    @pytest.mark.parametrize(
        ("arrange", "error"),
        [
            pytest.param(lambda sb: sb.core.expire_tokens(), AuthError, id="401"),
            pytest.param(lambda sb: None, RecordRejected, id="404"),
            pytest.param(lambda sb: sb.bot_defence(9), FatalConnectorError, id="999"),
            pytest.param(lambda sb: sb.core.fail_next(429, count=9), RetryableError, id="429"),
            pytest.param(lambda sb: sb.core.fail_next(500, count=9), RetryableError, id="500"),
            pytest.param(lambda sb: sb.core.fail_next(400), RecordRejected, id="400"),
            pytest.param(lambda sb: sb.core.fail_next(403), AuthError, id="403"),
            pytest.param(_broken, FatalConnectorError, id="unreadable"),
        ],
    )
    @pytest.mark.parametrize("what", ["person", "messages"])
    async def test_canary_never_in_message(
        self,
        sandbox: LinkedInSandbox,
        clock: FakeClock,
        arrange: Callable[[LinkedInSandbox], None],
        error: type[Exception],
        what: str,
    ) -> None:
        """Whatever fails, the message holds neither the publicId nor the person's name."""
        arrange(sandbox)
        source = make_source(sandbox, clock, attempts=2)
        fetch: Callable[[str], Awaitable[object]] = (
            source.fetch_person if what == "person" else source.fetch_messages
        )
        with pytest.raises(error) as caught:
            await fetch(CANARY_ID)
        await source.aclose()
        text = str(caught.value)
        if isinstance(caught.value, ConnectorError):
            text += caught.value.describe()
        for canary in (CANARY_ID, CANARY_FIRST, CANARY_LAST, TOKEN):
            assert canary not in text


# -- the mapping, for any conforming JSON ----------------------------------------------------

_text = st.text(max_size=40)
_positions = st.lists(
    st.fixed_dictionaries(
        {"title": _text, "companyName": _text, "current": st.booleans()},
        optional={"companyDomain": st.none() | _text, "startedOn": st.none()},
    ),
    max_size=4,
)
_profiles = st.fixed_dictionaries(
    {
        "id": _text,
        "publicId": _text,
        "firstName": _text,
        "lastName": _text,
        "profileUrl": _text,
        "positions": _positions,
    },
    optional={"headline": st.none() | _text, "location": st.none() | _text},
)
_phone_types = st.sampled_from(["MOBILE", "WORK", "HOME", "OTHER"])
_contacts = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "emailAddress": st.none() | _text,
        "phoneNumbers": st.lists(
            st.fixed_dictionaries({"number": _text}, optional={"type": _phone_types}), max_size=3
        ),
    },
)


class TestMapping:
    """The mapping turns any JSON of the documented shape into a Person or Message."""

    @given(profile_json=_profiles, contact=_contacts)
    def test_any_profile_maps(self, profile_json: Profile, contact: Any) -> None:
        """Names survive (stripped), empties become None, company comes from a current job."""
        person = to_person(profile_json, contact)
        assert person.first_name == profile_json["firstName"].strip()
        assert person.last_name == profile_json["lastName"].strip()
        current = [p for p in profile_json["positions"] if p["current"]]
        assert person.company == (current[0]["companyName"].strip() or None if current else None)
        numbers = [n["number"].strip() for n in (contact or {}).get("phoneNumbers", [])]
        assert person.phone is None or person.phone in numbers
        for value in (person.email, person.phone, person.company, person.title, person.headline):
            assert value is None or (value and value == value.strip())

    @pytest.mark.parametrize(
        ("change", "accepted"),
        [
            pytest.param({"sentAt": "2025-01-02T03:04:05"}, True, id="naive-time-is-utc"),
            pytest.param({"sender": "someone"}, False, id="unknown-sender"),
            pytest.param({"sentAt": "yesterday"}, False, id="bad-time"),
            pytest.param({"text": None}, False, id="no-text"),
        ],
    )
    def test_message_shapes(self, change: dict[str, object], accepted: bool) -> None:
        """A message maps with an aware time, or raises ShapeError naming no value."""
        message = {**messages_for(1, 1)[0], **change}
        if accepted:
            assert to_message(message).sent_at.tzinfo is not None  # type: ignore[arg-type]
        else:
            with pytest.raises(ShapeError) as caught:
                to_message(message)  # type: ignore[arg-type]
            assert str(change) not in str(caught.value)
