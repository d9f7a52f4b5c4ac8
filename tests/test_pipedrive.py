"""Pipedrive: the shared CRM contract, then what only Pipedrive does, against the sandbox
in-process over ASGI (and the sandbox against Pipedrive's published OpenAPI files)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from connectors._ratelimit import Limiter, RateLimiter, Unlimited
from connectors.base import ConnectorSettings, Contact, OverwritePolicy
from connectors.pipedrive import ratelimit
from connectors.pipedrive.client import PipedriveCRM
from connectors.pipedrive.mapping import BODY_LIMIT, SYNCED_AT_FIELD
from connectors.pipedrive.sandbox.app import PROFILE_FIELD, PipedriveSandbox
from connectors.pipedrive.sandbox.http import TOKEN_COST
from sync.errors import AuthError, FatalConnectorError
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, CRMContract, with_fields
from tests.doubles import FakeClock, RecordingTransport

BASE = "http://sandbox.test"
PERSONS = "/api/v2/persons"
SPECS = Path(__file__).resolve().parents[1] / "specs" / "pipedrive"
MEMBER_FIELD = "syncd member id"
OAUTH = {"refresh-canary-5c1d": ("client-canary-9a2e", "secret-canary-3b7f")}


def oauth_json(refresh: str = "refresh-canary-5c1d") -> str:
    client_id, secret = OAUTH["refresh-canary-5c1d"]
    return json.dumps({"client_id": client_id, "client_secret": secret, "refresh_token": refresh})


class TestPipedriveContract(CRMContract):
    """The shared CRM contract, run against the Pipedrive client and sandbox."""

    type_name = "pipedrive"

    def make_sandbox(self) -> PipedriveSandbox:
        return PipedriveSandbox(tokens=[TOKEN], oauth_clients=OAUTH)

    def record_count(self, sandbox: Any) -> int:
        count: int = sandbox.contact_count()
        return count

    def edit_in_crm(self, sandbox: Any, crm_id: str, field: str, value: str) -> None:
        sandbox.edit(crm_id, field, value)

    def crm_class(self) -> Any:
        return PipedriveCRM

    def write_path_prefix(self) -> str:
        return PERSONS

    def seed_in_crm(self, sandbox: Any, fields: dict[str, str]) -> str:
        seeded: str = sandbox.seed(fields)
        return seeded

    def company_of(self, sandbox: Any, crm_id: str) -> str | None:
        company: str | None = sandbox.company_of(crm_id)
        return company

    def company_count(self, sandbox: Any) -> int:
        return len(sandbox.snapshot()["organizations"])

    def oauth_credential(self, *, valid: bool = True) -> str:
        return oauth_json() if valid else oauth_json("refresh-unknown")

    def options(self) -> dict[str, object]:
        return {"oauth_url": BASE}

    def synced_at_of(self, sandbox: Any, crm_id: str) -> str | None:
        key = custom_key(sandbox, SYNCED_AT_FIELD)
        value: str | None = sandbox.store.person(int(crm_id))["custom_fields"].get(key)
        return value

    retention = "purged by Pipedrive after 30 days"

    body_limit = BODY_LIMIT

    def logged(self, sandbox: Any, crm_id: str) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = sandbox.logged(crm_id)
        return views

    def seed_human_activity(self, sandbox: Any, crm_id: str) -> None:
        sandbox.seed_note(crm_id, "<p>Called her; wants a demo in May.</p>")


# -- helpers --------------------------------------------------------------------------


def paced(clock: FakeClock) -> RateLimiter:
    """The client's burst-window limiter, on the fake clock the sandbox counts with."""
    return RateLimiter(
        ratelimit.BURST_LIMIT,
        ratelimit.BURST_INTERVAL,
        parse=ratelimit.parse,
        sleep=clock.sleep,
        clock=clock.monotonic,
    )


def make_crm(
    sandbox: PipedriveSandbox,
    *,
    credential: str = TOKEN,
    clock: FakeClock | None = None,
    overwrite: OverwritePolicy = "empty-only",
    options: dict[str, object] | None = None,
    strict: bool = False,
    limiter: Limiter | None = None,
) -> PipedriveCRM:
    settings = ConnectorSettings(
        "pipedrive",
        "pipedrive",
        BASE,
        overwrite=overwrite,
        options={"oauth_url": BASE, **(options or {})},
        strict_match=strict,
    )
    return PipedriveCRM(
        settings,
        credential,
        transport=httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=4, sleep=(clock or FakeClock()).sleep),
        limiter=limiter,
    )


def person(n: int, **fields: str) -> Contact:
    base = {"first_name": f"First{n}", "last_name": f"Last{n}", "email": f"p{n}@corp.example"}
    return Contact(f"urn:li:member:{n}", {**base, **fields})


def requests_to(sandbox: PipedriveSandbox, method: str, path: str) -> list[int]:
    """The statuses of the requests the sandbox saw for ``method path``."""
    return [r.status for r in sandbox.core.requests if (r.method, r.path) == (method, path)]


def stored(sandbox: PipedriveSandbox, person_id: str | None) -> dict[str, Any]:
    assert person_id is not None
    record: dict[str, Any] = dict(sandbox.store.person(int(person_id)))
    return record


def custom_key(sandbox: PipedriveSandbox, name: str) -> str:
    (key,) = [
        f["field_code"]
        for f in sandbox.store.fields
        if f["is_custom_field"] and f["field_name"] == name
    ]
    return key


@cache
def spec(version: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = (SPECS / f"{version}.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - safe loaders only
    return document


def drop_nulls(value: Any) -> Any:
    """``value`` without null members: the spec marks few fields nullable that Pipedrive
    sends as null (``picture_id``, ``org_id`` of a person without one)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def validate(version: str, path: str, method: str, body: Any, status: int = 200) -> None:
    """Raise unless ``body`` fits the response schema the spec documents."""
    answer = spec(version)["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(drop_nulls(body))


@pytest.fixture
def sandbox() -> PipedriveSandbox:
    return PipedriveSandbox(tokens=[TOKEN], oauth_clients=OAUTH)


@pytest.fixture
async def api(sandbox: PipedriveSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the sandbox, holding the valid API token."""
    async with httpx.AsyncClient(
        base_url=BASE,
        transport=httpx.ASGITransport(app=sandbox.app),
        headers={"x-api-token": TOKEN},
    ) as client:
        yield client


# -- the client -------------------------------------------------------------------------


class TestAuth:
    """The API token travels in the x-api-token header; OAuth refreshes with Basic auth."""

    async def test_token_is_sent_in_the_header_never_the_query(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Every request of an upsert and a find carries x-api-token and no api_token."""
        crm = make_crm(sandbox)
        await crm.upsert_contacts([ADA])
        await crm.find(ADA)
        await crm.aclose()
        assert sandbox.core.requests
        for request in sandbox.core.requests:
            assert "x-api-token" in request.header_names
            assert "authorization" not in request.header_names
            assert "api_token" not in request.query
            assert TOKEN not in request.query
        assert sandbox.core.violations == []

    async def test_sandbox_refuses_a_token_in_the_query(self, sandbox: PipedriveSandbox) -> None:
        """?api_token= is answered 401 with the envelope and recorded as a violation."""
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as raw:
            answer = await raw.get(PERSONS, params={"api_token": TOKEN})
        body = answer.json()
        assert answer.status_code == 401
        assert (body["success"], body["errorCode"]) == (False, 401)
        assert [v.path for v in sandbox.core.violations] == [PERSONS]
        assert TOKEN not in sandbox.core.violations[0].query

    async def test_bad_token_is_401_with_the_envelope(self, sandbox: PipedriveSandbox) -> None:
        """A wrong token answers Pipedrive's 401 body, and the client says what to do."""
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as raw:
            answer = await raw.get(PERSONS, headers={"x-api-token": "wrong"})
        assert answer.status_code == 401
        assert answer.json() == {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": answer.json()["error_info"],
            "data": None,
            "additional_data": None,
        }
        crm = make_crm(sandbox, credential="wrong-canary-token")
        with pytest.raises(AuthError) as caught:
            await crm.check_auth()
        await crm.aclose()
        assert "syncd auth set pipedrive" in str(caught.value)
        assert "canary" not in str(caught.value)

    async def test_oauth_refresh_uses_basic_auth_and_then_bearer(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """The refresh grant goes to <oauth_url>/oauth/token with HTTP Basic client auth and a
        form body; the access token is then sent as Bearer, and refreshed again on a 401."""
        recorder = RecordingTransport.over(sandbox.app)
        settings = ConnectorSettings(
            "pipedrive", "pipedrive", BASE, options={"oauth_url": "http://oauth.test"}
        )
        crm = PipedriveCRM(
            settings, oauth_json(), transport=recorder, retry=RetryPolicy(sleep=FakeClock().sleep)
        )
        (first,) = await crm.upsert_contacts([ADA])
        sandbox.core.expire_tokens()
        (second,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0000")])
        await crm.aclose()
        grants = recorder.to("/oauth/token")
        assert (first.outcome, second.outcome) == ("created", "updated")
        assert len(grants) == 2
        for grant in grants:
            assert grant.url.host == "oauth.test"
            assert grant.headers["authorization"].startswith("Basic ")
            assert grant.content == b"grant_type=refresh_token&refresh_token=refresh-canary-5c1d"
        api_calls = recorder.to("/api/")
        assert all(r.headers["authorization"].startswith("Bearer ") for r in api_calls)
        assert not any("x-api-token" in r.headers for r in api_calls)
        assert 401 in [r.status for r in sandbox.core.requests]

    @pytest.mark.parametrize(
        "credential",
        [
            pytest.param(oauth_json("refresh-unknown"), id="unknown-refresh-token"),
            pytest.param('{"client_id": "client-canary-9a2e"}', id="incomplete-json"),
            pytest.param(
                json.dumps(
                    {
                        "client_id": "client-canary-9a2e",
                        "client_secret": "wrong-canary",
                        "refresh_token": "refresh-canary-5c1d",
                    }
                ),
                id="wrong-secret",
            ),
        ],
    )
    async def test_refused_refresh_is_auth_error(
        self, sandbox: PipedriveSandbox, credential: str
    ) -> None:
        """A refused or malformed OAuth credential raises AuthError, names no secret, and
        writes nothing."""
        crm = make_crm(sandbox, credential=credential)
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert "syncd auth set pipedrive" in str(caught.value)
        assert "canary" not in str(caught.value)
        assert sandbox.contact_count() == 0


class TestRetiredV1Persons:
    """Persons live on API v2 only: v1 person routes answer as retired, and are never used."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", "/api/v1/persons", id="list"),
            pytest.param("POST", "/api/v1/persons", id="add"),
            pytest.param("PUT", "/api/v1/persons/1", id="update"),
            pytest.param("GET", "/api/v1/persons/search", id="search"),
            pytest.param("GET", "/v1/persons/1", id="api-host-path"),
        ],
    )
    async def test_v1_person_routes_are_gone(
        self, api: httpx.AsyncClient, method: str, path: str
    ) -> None:
        """Every v1 person route answers 410 with the envelope, even with a valid token."""
        answer = await api.request(method, path, json={"name": "x"})
        body = answer.json()
        assert answer.status_code == 410
        assert body["success"] is False
        assert "no longer available" in body["error"]
        assert (body["data"], body["additional_data"]) == (None, None)
        assert set(body) == {"success", "error", "error_info", "data", "additional_data"}

    async def test_client_uses_v2_for_persons(self, sandbox: PipedriveSandbox) -> None:
        """Upsert and find touch only /api/v2 (persons, organizations, person fields)."""
        crm = make_crm(sandbox)
        await crm.upsert_contacts([ADA, person(2)])
        await crm.upsert_contacts([with_fields(ADA, phone="+1 555 0100")])
        await crm.find(ADA)
        await crm.aclose()
        paths = {r.path for r in sandbox.core.requests}
        assert paths
        assert all(p.startswith("/api/v2/") for p in paths)
        assert 410 not in {r.status for r in sandbox.core.requests}


class TestCustomFields:
    """syncd's fields have hashed keys: found by name when they exist, created when not."""

    async def test_fields_are_created_once_with_hashed_keys(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A company without them gets syncd's three fields once (member id, profile URL,
        synced at, all text); later clients find them by name."""
        crm = make_crm(sandbox)
        (ada,) = await crm.upsert_contacts([ADA])
        await crm.upsert_contacts([person(2)])
        again = make_crm(sandbox)
        await again.upsert_contacts([person(3)])
        await crm.aclose()
        await again.aclose()
        assert requests_to(sandbox, "POST", "/api/v2/personFields") == [200, 200, 200]
        assert len(requests_to(sandbox, "GET", "/api/v2/personFields")) == 2
        member_key = custom_key(sandbox, MEMBER_FIELD)
        profile = custom_key(sandbox, PROFILE_FIELD)
        stamp = custom_key(sandbox, SYNCED_AT_FIELD)
        for key in (member_key, profile, stamp):
            assert len(key) == 40
            assert int(key, 16) >= 0
        kinds = {f["field_code"]: f["field_type"] for f in sandbox.store.fields}
        assert [kinds[k] for k in (member_key, profile, stamp)] == ["varchar"] * 3
        record = stored(sandbox, ada.id)
        assert record["custom_fields"][member_key] == ADA.member_id
        assert record["custom_fields"][profile] == ADA.fields["linkedin_url"]
        assert record["custom_fields"][stamp].endswith("Z")

    async def test_existing_fields_are_discovered_by_name(self, sandbox: PipedriveSandbox) -> None:
        """Fields someone already made (any case, own names via options) are used as they
        are: nothing is created, values go under their keys."""
        member = sandbox.store.add_field("Member ID (CRM sync)", "varchar")["field_code"]
        profile = sandbox.store.add_field("linkedin profile url", "text")["field_code"]
        sandbox.store.add_field("Syncd Synced At", "varchar")
        crm = make_crm(sandbox, options={"member_id_field": "member id (crm sync)"})
        (ada,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert requests_to(sandbox, "POST", "/api/v2/personFields") == []
        record = stored(sandbox, ada.id)
        assert record["custom_fields"][member] == ADA.member_id
        assert record["custom_fields"][profile] == ADA.fields["linkedin_url"]

    async def test_find_creates_no_field(self, sandbox: PipedriveSandbox) -> None:
        """find() in a company without syncd's fields writes nothing, not even a field."""
        crm = make_crm(sandbox)
        presence = await crm.find(ADA)
        await crm.aclose()
        assert not presence.found
        assert {r.method for r in sandbox.core.requests} == {"GET"}
        assert not any(f["is_custom_field"] for f in sandbox.store.fields)


class TestPersonShape:
    """Emails and phones are lists with a primary entry; names and organizations map."""

    async def test_emails_and_phones_are_lists_with_a_primary(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A created person carries its email and phone as primary list entries."""
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0000")])
        await crm.aclose()
        record = stored(sandbox, made.id)
        assert record["emails"] == [
            {"value": "ada@analytical.example", "primary": True, "label": "work"}
        ]
        assert record["phones"] == [{"value": "+44 20 7946 0000", "primary": True, "label": "work"}]
        assert (record["name"], record["first_name"], record["last_name"]) == (
            "Ada Lovelace",
            "Ada",
            "Lovelace",
        )
        assert record["job_title"] == "Analyst"

    async def test_new_email_becomes_primary_and_keeps_the_old(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """With overwrite = "always" a new email is the primary; the old one stays second."""
        crm = make_crm(sandbox, overwrite="always")
        (made,) = await crm.upsert_contacts([ADA])
        (changed,) = await crm.upsert_contacts([with_fields(ADA, email="ada@new.example")])
        await crm.aclose()
        assert (changed.outcome, changed.id) == ("updated", made.id)
        assert [(e["value"], e["primary"]) for e in stored(sandbox, made.id)["emails"]] == [
            ("ada@new.example", True),
            ("ada@analytical.example", False),
        ]

    async def test_a_secondary_email_matches(self, sandbox: PipedriveSandbox) -> None:
        """A person whose second email is the contact's is the contact."""
        seeded = sandbox.seed({"first_name": "Ada", "last_name": "K"})
        sandbox.store.update_person(
            int(seeded),
            {
                "emails": [
                    {"value": "home@else.example", "primary": True},
                    {"value": "ada@analytical.example", "primary": False},
                ]
            },
        )
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", seeded)
        assert sandbox.contact_count() == 1

    async def test_a_multi_word_first_name_is_unchanged_on_re_add(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Pipedrive splits "Mary Ann Smith" its own way; the same name is still unchanged."""
        mary = Contact("urn:li:member:77", {"first_name": "Mary Ann", "last_name": "Smith"})
        crm = make_crm(sandbox, overwrite="always")
        (made,) = await crm.upsert_contacts([mary])
        (again,) = await crm.upsert_contacts([mary])
        await crm.aclose()
        assert stored(sandbox, made.id)["first_name"] == "Mary"
        assert (again.outcome, again.id) == ("unchanged", made.id)

    async def test_without_contact_sync_title_is_not_sent(self) -> None:
        """A company without the contact-sync fields gets no job_title, and no 400."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], contact_sync=False)
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([with_fields(ADA, location="Lyon")])
        (again,) = await crm.upsert_contacts([with_fields(ADA, location="Lyon")])
        await crm.aclose()
        assert (made.outcome, again.outcome) == ("created", "unchanged")
        assert "job_title" not in stored(sandbox, made.id)

    async def test_a_nameless_contact_fails_without_a_request(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Pipedrive needs a name: a contact without one fails locally, nothing sent."""
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([Contact("urn:li:member:5", {"title": "CTO"})])
        await crm.aclose()
        assert (outcome.outcome, outcome.reason) == ("failed", "rejected")
        assert requests_to(sandbox, "POST", PERSONS) == []


class TestOrganizations:
    """The company is an organization linked by name: found, else created, then cached."""

    async def test_an_existing_organization_is_linked_not_doubled(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """An organization with the same name in another case is linked as it is."""
        org = sandbox.store.create_organization({"name": "analytical ENGINES"})
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert stored(sandbox, made.id)["org_id"] == org["id"]
        assert len(sandbox.store.organizations) == 1

    async def test_the_same_organization_spelled_otherwise_is_unchanged(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """With overwrite = "always", "ACME gmbh" for a person of "Acme GmbH" sends nothing."""
        seeded = sandbox.seed(
            {"first_name": "Ada", "last_name": "Lovelace", "company": "Acme GmbH"}
        )
        crm = make_crm(sandbox, overwrite="always")
        (first,) = await crm.upsert_contacts([with_fields(ADA, company="ACME gmbh")])
        (second,) = await crm.upsert_contacts([with_fields(ADA, company="ACME gmbh")])
        await crm.aclose()
        assert first.id == seeded
        assert (second.outcome, second.id) == ("unchanged", seeded)
        assert sandbox.company_of(seeded) == "Acme GmbH"
        assert len(sandbox.store.organizations) == 1

    async def test_organization_ids_are_cached_for_the_client_life(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """In a small company, three colleagues cost one organization listing and one
        create, and no search."""
        crm = make_crm(sandbox, strict=True)
        colleagues = [person(n, company="Difference Ltd") for n in (1, 2, 3)]
        outcomes = await crm.upsert_contacts(colleagues)
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created"] * 3
        assert requests_to(sandbox, "GET", "/api/v2/organizations/search") == []
        assert requests_to(sandbox, "GET", "/api/v2/organizations") == [200]
        assert requests_to(sandbox, "POST", "/api/v2/organizations") == [200]
        assert {sandbox.company_of(str(o.id)) for o in outcomes} == {"Difference Ltd"}

    async def test_a_big_company_searches_organizations_once_per_name(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """When the organizations do not fit the call's listing pages, three colleagues
        cost one organization search and one create."""
        for n in range(8):
            sandbox.store.create_organization({"name": f"Other {n}"})
        sandbox.page_cap = 1
        crm = make_crm(sandbox, strict=True)
        colleagues = [person(n, company="Difference Ltd") for n in (1, 2, 3)]
        outcomes = await crm.upsert_contacts(colleagues)
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created"] * 3
        assert len(requests_to(sandbox, "GET", "/api/v2/organizations/search")) == 1
        assert requests_to(sandbox, "POST", "/api/v2/organizations") == [200]
        assert {sandbox.company_of(str(o.id)) for o in outcomes} == {"Difference Ltd"}

    async def test_empty_only_keeps_a_human_chosen_organization(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A person someone linked to another organization stays linked to it."""
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([ADA])
        sandbox.edit(str(made.id), "company", "Babbage & Co")
        (again,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert again.outcome == "unchanged"
        assert sandbox.company_of(str(made.id)) == "Babbage & Co"


class TestMatchingDetails:
    """Identity survives a lagging search index; find() links to the web UI."""

    async def test_re_add_does_not_depend_on_the_search_index(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """With search minutes behind, a re-add still finds the record it just wrote."""
        sandbox.store.search_lag = 600.0
        crm = make_crm(sandbox)
        (first,) = await crm.upsert_contacts([ADA])
        (second,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (second.outcome, second.id) == ("unchanged", first.id)
        assert sandbox.contact_count() == 1

    async def test_find_gives_owner_and_link(self, sandbox: PipedriveSandbox) -> None:
        """find() answers the owner_id and <base_url>/person/<id>."""
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([ADA])
        other = make_crm(sandbox)  # a fresh client: found through search, not memory
        presence = await other.find(ADA)
        await crm.aclose()
        await other.aclose()
        assert presence.found
        assert (presence.id, presence.step) == (made.id, "identity")
        assert presence.url == f"{BASE}/person/{made.id}"
        assert presence.owner == str(stored(sandbox, made.id)["owner_id"])

    async def test_searches_ask_for_exact_matches_on_the_right_fields(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Identity, email and name searches are exact and field-scoped; the profile URL is
        searched by its public id inside custom fields; the name within the organization."""
        org = sandbox.store.create_organization({"name": "Analytical Engines"})
        crm = make_crm(sandbox)
        await crm.upsert_contacts([person(9)])  # makes syncd's person fields
        await crm.find(ADA)
        await crm.aclose()
        queries = [
            dict(httpx.QueryParams(r.query))
            for r in sandbox.core.requests
            if r.path == f"{PERSONS}/search"
        ]
        assert [(q["term"], q["fields"], q.get("exact_match")) for q in queries] == [
            (ADA.member_id, "custom_fields", "true"),
            ("ada-lovelace", "custom_fields", None),
            ("ada@analytical.example", "email", "true"),
            ("Ada Lovelace", "name", "true"),
        ]
        assert queries[-1]["organization_id"] == str(org["id"])

    async def test_once_identity_decides_nothing_else_is_searched(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A record found by its member id costs one search (20 tokens), not four."""
        writer = make_crm(sandbox)
        await writer.upsert_contacts([ADA])
        await writer.aclose()
        sandbox.core.reset()
        reader = make_crm(sandbox)
        presence = await reader.find(ADA)
        await reader.aclose()
        assert presence.step == "identity"
        assert len(requests_to(sandbox, "GET", f"{PERSONS}/search")) == 1

    async def test_a_record_of_another_member_is_not_taken_by_email(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A person syncd wrote for someone else is never claimed through a shared email."""
        crm = make_crm(sandbox)
        (other,) = await crm.upsert_contacts([Contact("urn:li:member:1", dict(ADA.fields))])
        (ada,) = await crm.upsert_contacts([with_fields(ADA, linkedin_url="")])
        await crm.aclose()
        assert ada.outcome == "created"
        assert ada.id != other.id


class TestRateLimits:
    """Token costs, burst windows and the daily budget, as Pipedrive counts them."""

    def test_token_costs_match_the_openapi_files(self) -> None:
        """Each emulated endpoint costs the x-token-cost its OpenAPI file gives it."""
        for (method, path), cost in TOKEN_COST.items():
            version, _, rest = path.removeprefix("/api/").partition("/")
            assert spec(version)["paths"]["/" + rest][method.lower()]["x-token-cost"] == cost

    async def test_every_answer_carries_cost_and_burst_headers(
        self, api: httpx.AsyncClient
    ) -> None:
        """x-token-cost is the endpoint's cost; x-ratelimit-* count down the 2-second window."""
        listed = await api.get(PERSONS)
        made = await api.post(PERSONS, json={"name": "Ada Lovelace"})
        search = await api.get(f"{PERSONS}/search", params={"term": "ada"})
        assert [a.headers["x-token-cost"] for a in (listed, made, search)] == ["10", "5", "20"]
        assert listed.headers["x-ratelimit-limit"] == "120"
        assert int(made.headers["x-ratelimit-remaining"]) == 118
        assert 1 <= int(made.headers["x-ratelimit-reset"]) <= 2
        assert listed.headers["x-correlation-id"]

    async def test_burst_429_body_and_headers(self) -> None:
        """Past the burst limit Pipedrive answers 429 "Request over limit" with the envelope."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], burst=2)
        async with httpx.AsyncClient(
            base_url=BASE,
            transport=httpx.ASGITransport(app=sandbox.app),
            headers={"x-api-token": TOKEN},
        ) as raw:
            answers = [await raw.get(PERSONS) for _ in range(3)]
        throttled = answers[-1]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert throttled.json() == {
            "success": False,
            "error": "Request over limit",
            "errorCode": 429,
            "error_info": throttled.json()["error_info"],
            "data": None,
            "additional_data": None,
        }
        assert throttled.headers["x-ratelimit-remaining"] == "0"
        assert int(throttled.headers["x-ratelimit-reset"]) >= 1

    async def test_client_waits_for_x_ratelimit_reset(self) -> None:
        """Without Retry-After, the client waits the seconds x-ratelimit-reset gives, and
        waits out an exhausted window before it is refused at all."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], burst=3, search_burst=2)
        clock = FakeClock()
        sandbox.limits.clock = clock.monotonic
        crm = make_crm(sandbox, clock=clock, limiter=Unlimited())  # no pacing: draw the 429
        outcomes = await crm.upsert_contacts([ADA, person(2)])
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created", "created"]
        assert 429 in [r.status for r in sandbox.core.requests]
        assert clock.waits
        assert min(clock.waits) >= 1.0
        assert sandbox.contact_count() == 2

    async def test_client_waits_out_a_spent_window_before_a_429(self) -> None:
        """When x-ratelimit-remaining reaches 0 the client waits x-ratelimit-reset first."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], burst=3)
        clock = FakeClock()
        sandbox.limits.clock = clock.monotonic
        crm = make_crm(sandbox, clock=clock, limiter=paced(clock))
        outcomes = await crm.upsert_contacts([ADA, person(2)])
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created", "created"]
        assert 429 not in [r.status for r in sandbox.core.requests]
        assert clock.waits
        assert min(clock.waits) >= 1.0

    async def test_spent_daily_budget_is_fatal_without_retries(self) -> None:
        """When the day's tokens are spent, the client stops at once and says why."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], daily_budget=40)
        clock = FakeClock()
        crm = make_crm(sandbox, clock=clock)
        with pytest.raises(FatalConnectorError, match="daily API token budget") as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert caught.value.status == 429
        assert clock.waits == []
        # Nothing retried: each refused request was sent once (a lone add refreshes persons
        # and organisations side by side, so both may be refused).
        refused = [r.path for r in sandbox.core.requests if r.status == 429]
        assert 1 <= len(refused) == len(set(refused)) <= 2
        assert sandbox.core.requests[-1].status == 429


class TestPrivacy:
    """Outcome details carry status, code and request id, never a person's data."""

    async def test_refused_email_detail_has_no_canary(self, sandbox: PipedriveSandbox) -> None:
        """Pipedrive's 400 quotes the bad email; the outcome does not."""
        contact = Contact(
            "urn:li:member:78", {"first_name": "Quillonwy", "email": "zq-canary-4411@@nowhere"}
        )
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([contact])
        await crm.aclose()
        assert outcome.outcome == "failed"
        assert "HTTP 400 ERR_SCHEMA_VALIDATION_FAILED" in outcome.detail
        assert "request id" in outcome.detail
        for secret in ("Quillonwy", "zq-canary"):
            assert secret not in outcome.detail


# -- the sandbox against Pipedrive's documented shapes -------------------------------------


class TestSandboxShapes:
    """The sandbox answers in the shapes of Pipedrive's OpenAPI files."""

    async def test_person_answers_fit_the_v2_spec(self, api: httpx.AsyncClient) -> None:
        """Create, read, update and list answers validate against v2.yaml."""
        made = await api.post(
            PERSONS,
            json={"name": "Ada Lovelace", "emails": [{"value": "a@b.example", "primary": True}]},
        )
        person_id = made.json()["data"]["id"]
        read = await api.get(f"{PERSONS}/{person_id}")
        patched = await api.patch(f"{PERSONS}/{person_id}", json={"job_title": "Countess"})
        listed = await api.get(PERSONS)
        validate("v2", "/persons", "post", made.json())
        validate("v2", "/persons/{id}", "get", read.json())
        validate("v2", "/persons/{id}", "patch", patched.json())
        validate("v2", "/persons", "get", listed.json())
        assert patched.json()["data"]["job_title"] == "Countess"
        assert listed.json()["additional_data"] == {"next_cursor": None}

    async def test_search_answers_fit_the_v2_spec(self, api: httpx.AsyncClient) -> None:
        """Person and organization search answer items of {result_score, item}."""
        org = (await api.post("/api/v2/organizations", json={"name": "Acme"})).json()["data"]
        await api.post(
            PERSONS,
            json={
                "name": "Ada Lovelace",
                "org_id": org["id"],
                "emails": [{"value": "ada@acme.example"}],
            },
        )
        exact = await api.get(
            f"{PERSONS}/search",
            params={"term": "ADA@acme.example", "fields": "email", "exact_match": "true"},
        )
        partial = await api.get(f"{PERSONS}/search", params={"term": "ada@acme", "fields": "email"})
        not_exact = await api.get(
            f"{PERSONS}/search",
            params={"term": "ada@acme", "fields": "email", "exact_match": "true"},
        )
        orgs = await api.get(
            "/api/v2/organizations/search",
            params={"term": "acme", "fields": "name", "exact_match": "true"},
        )
        validate("v2", "/persons/search", "get", exact.json())
        validate("v2", "/organizations/search", "get", orgs.json())
        (hit,) = exact.json()["data"]["items"]
        assert hit["item"]["organization"]["name"] == "Acme"
        assert hit["item"]["emails"] == ["ada@acme.example"]
        assert len(partial.json()["data"]["items"]) == 1
        assert not_exact.json()["data"]["items"] == []
        assert [i["item"]["id"] for i in orgs.json()["data"]["items"]] == [org["id"]]

    async def test_person_fields_fit_the_v2_spec(self, api: httpx.AsyncClient) -> None:
        """A created custom field gets a 40-hex field_code and is listed."""
        made = await api.post(
            "/api/v2/personFields", json={"field_name": MEMBER_FIELD, "field_type": "varchar"}
        )
        listed = await api.get("/api/v2/personFields")
        validate("v2", "/personFields", "post", made.json())
        validate("v2", "/personFields", "get", listed.json())
        code = made.json()["data"]["field_code"]
        assert len(code) == 40
        assert int(code, 16) >= 0
        assert code in [f["field_code"] for f in listed.json()["data"]]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param({}, "name is required", id="no-name"),
            pytest.param(
                {"name": "A", "emails": [{"value": "not-an-email"}]}, "valid email", id="email"
            ),
            pytest.param(
                {"name": "A", "custom_fields": {"f" * 40: "x"}}, "does not exist", id="cf"
            ),
            pytest.param({"name": "A", "org_id": 999}, "Organization not found", id="org"),
        ],
    )
    async def test_validation_errors_are_400_with_the_envelope(
        self, api: httpx.AsyncClient, body: dict[str, object], message: str
    ) -> None:
        """A body Pipedrive refuses is a 400 with success false, error, code and error_info."""
        answer = await api.post(PERSONS, json=body)
        payload = answer.json()
        assert answer.status_code == 400
        assert payload["success"] is False
        assert message in payload["error"]
        assert payload["code"] == "ERR_SCHEMA_VALIDATION_FAILED" or message.startswith("Org")
        assert (payload["data"], payload["additional_data"]) == (None, None)
        assert payload["error_info"]

    async def test_missing_person_is_404_with_the_envelope(self, api: httpx.AsyncClient) -> None:
        """Reading a person that is not there answers 404 in the envelope."""
        answer = await api.get(f"{PERSONS}/4242")
        assert answer.status_code == 404
        assert answer.json()["success"] is False

    async def test_notes_stay_on_v1(self, api: httpx.AsyncClient) -> None:
        """A note is added to a person on /api/v1/notes and listed by person_id."""
        made = (await api.post(PERSONS, json={"name": "Ada Lovelace"})).json()["data"]
        note = await api.post("/api/v1/notes", json={"content": "Hello", "person_id": made["id"]})
        loose = await api.post("/api/v1/notes", json={"content": "Nowhere"})
        listed = await api.get("/api/v1/notes", params={"person_id": str(made["id"])})
        validate("v1", "/notes", "post", note.json())
        validate("v1", "/notes", "get", listed.json())
        assert note.headers["x-token-cost"] == "10"
        assert loose.status_code == 400
        assert [n["content"] for n in listed.json()["data"]] == ["Hello"]
        assert listed.json()["data"][0]["person"] == {"name": "Ada Lovelace"}
        assert listed.json()["additional_data"]["pagination"]["more_items_in_collection"] is False

    async def test_oauth_token_grant(self, sandbox: PipedriveSandbox) -> None:
        """The refresh grant needs Basic client auth and issues a token the API accepts.

        https://pipedrive.readme.io/docs/marketplace-oauth-and-api-proxy-status-codes
        """
        client_id, secret = OAUTH["refresh-canary-5c1d"]
        form = {"grant_type": "refresh_token", "refresh_token": "refresh-canary-5c1d"}
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as raw:
            granted = await raw.post("/oauth/token", data=form, auth=(client_id, secret))
            token = granted.json()["access_token"]
            used = await raw.get(PERSONS, headers={"Authorization": f"Bearer {token}"})
            no_client = await raw.post("/oauth/token", data=form)
            wrong = await raw.post("/oauth/token", data=form, auth=(client_id, "nope"))
        assert granted.status_code == 200
        assert {"access_token", "token_type", "expires_in", "refresh_token", "scope"} <= set(
            granted.json()
        )
        assert used.status_code == 200
        assert used.headers["x-ratelimit-limit"] == "480"
        assert no_client.json()["message"].startswith("Invalid client")
        assert (wrong.status_code, no_client.status_code) == (400, 400)

    async def test_injected_faults_are_pipedrive_shaped(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """A fault from the sandbox's knobs has Pipedrive's envelope."""
        sandbox.core.fail_next(429, retry_after=3)
        sandbox.core.fail_next(500)
        throttled = await api.get(PERSONS)
        broken = await api.get(PERSONS)
        assert throttled.json()["error"] == "Request over limit"
        assert throttled.headers["Retry-After"] == "3"
        assert (broken.status_code, broken.json()["success"]) == (500, False)

    def test_sandbox_helpers_for_the_demo(self, sandbox: PipedriveSandbox) -> None:
        """rows, snapshot, edit and config_table serve the demo and `syncd sandbox`."""
        seeded = sandbox.seed({"first_name": "Ada", "last_name": "L", "company": "Acme"})
        sandbox.edit(seeded, "title", "Countess")
        sandbox.edit(seeded, "email", "ada@acme.example")
        (row,) = sandbox.rows()
        assert row == {
            "id": seeded,
            "name": "Ada L",
            "email": "ada@acme.example",
            "company": "Acme",
            "title": "Countess",
        }
        assert json.dumps(sandbox.snapshot())
        assert sandbox.config_table("http://127.0.0.1:9") == {
            "type": "pipedrive",
            "base_url": "http://127.0.0.1:9",
            "oauth_url": "http://127.0.0.1:9",
        }
        assert sandbox.credential("tok") == "tok"
