"""HubSpot: the shared CRM contract, then what only HubSpot does, against the sandbox
in-process over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors._ratelimit import Limiter, Unlimited
from connectors.base import SYNCED_AT, ConnectorSettings, Contact, OverwritePolicy
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.mapping import (
    BODY_LIMIT,
    BODY_PROPERTY,
    CUSTOM_PROPERTIES,
    IDENTITY_PROPERTY,
    MESSAGE_ID_PROPERTY,
    PROPERTY_OF,
    TIMESTAMP_PROPERTY,
    read_body,
)
from connectors.hubspot.sandbox.app import HubSpotSandbox
from sync.errors import AuthError, FatalConnectorError
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, CRMContract, with_fields
from tests.doubles import FakeClock, RecordingTransport

BASE = "http://sandbox.test"
CONTACTS = "/crm/v3/objects/contacts"
INVALID = "VALIDATION_ERROR"
OAUTH = {"refresh-canary-5c1d": ("client-canary-9a2e", "secret-canary-3b7f")}


class TestHubSpotContract(CRMContract):
    """The shared CRM contract, run against the HubSpot client and sandbox."""

    type_name = "hubspot"

    def make_sandbox(self) -> HubSpotSandbox:
        return HubSpotSandbox(tokens=[TOKEN], oauth_clients=OAUTH)

    def record_count(self, sandbox: Any) -> int:
        count: int = sandbox.contact_count()
        return count

    def edit_in_crm(self, sandbox: Any, crm_id: str, field: str, value: str) -> None:
        sandbox.edit(crm_id, PROPERTY_OF[field], value)

    def crm_class(self) -> Any:
        return HubSpotCRM

    def write_path_prefix(self) -> str:
        return f"{CONTACTS}/batch/create"

    def seed_in_crm(self, sandbox: Any, fields: dict[str, str]) -> str:
        # syncd's properties exist once it has run; a colleague fills them in by hand.
        for definition in CUSTOM_PROPERTIES:
            if definition["name"] not in sandbox.store.properties:
                sandbox.store.add_property(definition)
        props = {PROPERTY_OF[k]: v for k, v in fields.items()}
        return str(sandbox.store.create(sandbox.store.validate(props)).id)

    def company_of(self, sandbox: Any, crm_id: str) -> str | None:
        names: list[str] = sandbox.company_names(crm_id)
        return names[0] if len(names) == 1 else None

    def company_count(self, sandbox: Any) -> int:
        return len(sandbox.companies.companies)

    #: HubSpot's GDPR delete is permanent at once.
    retention = ""

    def synced_at_of(self, sandbox: Any, crm_id: str) -> str | None:
        value: str | None = sandbox.store.contacts[crm_id].properties.get(SYNCED_AT)
        return value

    def oauth_credential(self, *, valid: bool = True) -> str:
        refresh = "refresh-canary-5c1d" if valid else "refresh-unknown"
        client_id, secret = OAUTH["refresh-canary-5c1d"]
        return json.dumps(
            {"client_id": client_id, "client_secret": secret, "refresh_token": refresh}
        )

    body_limit = BODY_LIMIT

    def logged(self, sandbox: Any, crm_id: str) -> list[dict[str, Any]]:
        return logged(sandbox, crm_id)

    def seed_human_activity(self, sandbox: Any, crm_id: str) -> None:
        store = sandbox.communications
        props = {
            "hs_communication_channel_type": "LINKEDIN_MESSAGE",
            "hs_communication_logged_from": "CRM",
            BODY_PROPERTY: "Called her back about the fair, see notes.",
            TIMESTAMP_PROPERTY: "2026-03-01T08:00:00.000Z",
        }
        store.create(store.validate(props), [crm_id])


# -- helpers ---------------------------------------------------------------------------


def logged(sandbox: HubSpotSandbox, crm_id: str) -> list[dict[str, Any]]:
    """The communications syncd wrote on a contact, oldest first (creation order breaks
    ties): key, body without the direction, direction, time."""
    out: list[tuple[datetime, int, dict[str, Any]]] = []
    for made in sandbox.communications.of(crm_id):
        key = made.properties.get(MESSAGE_ID_PROPERTY)
        if not key:
            continue
        direction, body = read_body(made.properties.get(BODY_PROPERTY, ""))
        at = datetime.fromisoformat(made.properties[TIMESTAMP_PROPERTY].replace("Z", "+00:00"))
        item = {"key": key, "body": body, "direction": direction, "at": at.astimezone(UTC)}
        out.append((at, int(made.id), item))
    return [item for _, _, item in sorted(out, key=lambda t: (t[0], t[1]))]


def make_crm(
    sandbox: HubSpotSandbox,
    *,
    credential: str = TOKEN,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: FakeClock | None = None,
    overwrite: OverwritePolicy = "empty-only",
    limiter: Limiter | None = None,
) -> HubSpotCRM:
    settings = ConnectorSettings("hubspot", "hubspot", BASE, overwrite=overwrite)
    return HubSpotCRM(
        settings,
        credential,
        transport=transport or httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=4, sleep=(clock or FakeClock()).sleep),
        limiter=limiter,
    )


def person(n: int, **fields: str) -> Contact:
    base = {"first_name": f"First{n}", "last_name": f"Last{n}", "email": f"p{n}@corp.example"}
    return Contact(f"urn:li:member:{n}", {**base, **fields})


def seed(sandbox: HubSpotSandbox, **props: str) -> str:
    """A contact created by a person in HubSpot's UI; its id."""
    return sandbox.store.create(sandbox.store.validate(props)).id


def paths(sandbox: HubSpotSandbox, method: str, path: str) -> list[int]:
    """The statuses of the requests the sandbox saw for ``method path``."""
    return [r.status for r in sandbox.core.requests if (r.method, r.path) == (method, path)]


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(tokens=[TOKEN])


@pytest.fixture
async def api(sandbox: HubSpotSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the sandbox, holding the valid token."""
    async with httpx.AsyncClient(
        base_url=BASE,
        transport=httpx.ASGITransport(app=sandbox.app),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


# -- the client -----------------------------------------------------------------------


class TestCustomProperties:
    """syncd's identity property is made once, unique, and trusted only if unique."""

    async def test_identity_property_is_created_once(self, sandbox: HubSpotSandbox) -> None:
        """Two upserts by one client create syncd's properties once, the identity unique."""
        crm = make_crm(sandbox)
        await crm.upsert_contacts([ADA])
        await crm.upsert_contacts([person(2)])
        again = make_crm(sandbox)
        await again.upsert_contacts([person(3)])
        await crm.aclose()
        await again.aclose()
        assert paths(sandbox, "POST", "/crm/v3/properties/contacts") == [201] * len(
            CUSTOM_PROPERTIES
        )
        # Their definitions are read in one batch, once per client.
        assert len(paths(sandbox, "POST", "/crm/v3/properties/contacts/batch/read")) == 2
        assert sandbox.store.properties[IDENTITY_PROPERTY]["hasUniqueValue"] is True

    async def test_a_non_unique_identity_property_stops(self, sandbox: HubSpotSandbox) -> None:
        """An identity property someone made without unique values is a fatal error."""
        sandbox.store.add_property(
            {
                "name": IDENTITY_PROPERTY,
                "label": "x",
                "type": "string",
                "fieldType": "text",
                "groupName": "contactinformation",
            }
        )
        crm = make_crm(sandbox)
        with pytest.raises(FatalConnectorError, match=IDENTITY_PROPERTY):
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert sandbox.contact_count() == 0


class TestMatching:
    """A person already in HubSpot is found by member id, then by email; never doubled."""

    async def test_email_match_claims_the_record(self, sandbox: HubSpotSandbox) -> None:
        """A record with the person's email gets the member id instead of a duplicate."""
        existing = seed(sandbox, email="ADA@analytical.example", firstname="Ada")
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([ADA])
        (again,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", existing)
        assert (again.outcome, again.id) == ("unchanged", existing)
        assert sandbox.contact_count() == 1
        held = sandbox.store.contacts[existing].properties
        assert held[IDENTITY_PROPERTY] == ADA.member_id
        assert held["lastname"] == "Lovelace"

    async def test_another_members_record_is_not_taken(self, sandbox: HubSpotSandbox) -> None:
        """A record with the email but another member id is left alone and reported."""
        for definition in CUSTOM_PROPERTIES:  # another syncd set them up earlier
            sandbox.store.add_property(definition)
        existing = seed(sandbox, email=ADA.fields["email"], syncd_member_id="urn:li:member:1")
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert outcome.outcome == "failed"
        assert existing in outcome.detail
        assert "Lovelace" not in json.dumps(sandbox.snapshot())

    async def test_the_same_person_twice_is_written_once(self, sandbox: HubSpotSandbox) -> None:
        """A member id twice in one call is one record, and both get its outcome."""
        crm = make_crm(sandbox)
        first, second = await crm.upsert_contacts([ADA, ADA])
        await crm.aclose()
        assert first == second
        assert first.outcome == "created"
        assert sandbox.contact_count() == 1


class TestConflicts:
    """A record created behind the client's back between its read and its write."""

    async def test_409_on_create_updates_the_existing_record(self, sandbox: HubSpotSandbox) -> None:
        """HubSpot's 409 "Existing ID: N" turns the create into an update of N."""
        made: list[str] = []

        def colleague(request: httpx.Request) -> None:
            if request.url.path.endswith("/batch/create") and not made:
                made.append(seed(sandbox, email=ADA.fields["email"], jobtitle="Countess"))

        crm = make_crm(sandbox, transport=RecordingTransport.over(sandbox.app, colleague))
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", made[0])
        assert paths(sandbox, "POST", f"{CONTACTS}/batch/create") == [409]
        assert sandbox.contact_count() == 1
        held = sandbox.store.contacts[made[0]].properties
        assert (held["jobtitle"], held[IDENTITY_PROPERTY]) == ("Countess", ADA.member_id)

    async def test_a_conflict_in_a_batch_spares_the_others(self, sandbox: HubSpotSandbox) -> None:
        """A batch refused for one record is retried one by one; the others are created."""
        made: list[str] = []

        def colleague(request: httpx.Request) -> None:
            if request.url.path.endswith("/batch/create") and not made:
                made.append(seed(sandbox, email="p2@corp.example"))

        crm = make_crm(sandbox, transport=RecordingTransport.over(sandbox.app, colleague))
        outcomes = await crm.upsert_contacts([person(1), person(2), person(3)])
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created", "updated", "created"]
        assert outcomes[1].id == made[0]
        assert sandbox.contact_count() == 3


class TestBatching:
    """Batch endpoints carry at most 100 inputs."""

    async def test_150_contacts_go_in_batches_of_at_most_100(self, sandbox: HubSpotSandbox) -> None:
        """150 new people take two reads by member id, two by email and two creates."""
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        outcomes = await crm.upsert_contacts([person(n) for n in range(150)])
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created"] * 150
        assert len({o.id for o in outcomes}) == 150
        batches = [(s.path, s.json()) for s in recorder.sent if f"{CONTACTS}/batch/" in s.path]
        assert max(len(b["inputs"]) for _, b in batches) == 100
        assert [p.rsplit("/", 1)[1] for p, _ in batches] == ["read", "read", "create"] * 2
        assert sandbox.contact_count() == 150


class TestOAuth:
    """An OAuth credential is traded for an access token, again after a 401."""

    def oauth_credential(self, refresh: str = "refresh-canary-5c1d") -> str:
        client_id, secret = OAUTH["refresh-canary-5c1d"]
        return json.dumps(
            {"client_id": client_id, "client_secret": secret, "refresh_token": refresh}
        )

    async def test_refresh_then_again_on_401(self) -> None:
        """The client refreshes before its first call and once more when the token expires."""
        sandbox = HubSpotSandbox(oauth_clients=OAUTH)
        crm = make_crm(sandbox, credential=self.oauth_credential())
        await crm.check_auth()
        (first,) = await crm.upsert_contacts([ADA])
        sandbox.core.expire_tokens()
        (second,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0000")])
        await crm.aclose()
        assert (first.outcome, second.outcome) == ("created", "updated")
        assert paths(sandbox, "POST", "/oauth/v1/token") == [200, 200]
        assert 401 in [r.status for r in sandbox.core.requests]

    @pytest.mark.parametrize(
        "credential",
        [
            pytest.param("unknown", id="unknown-refresh-token"),
            pytest.param('{"client_id": "client-canary-9a2e"}', id="incomplete-json"),
        ],
    )
    async def test_refused_refresh_is_auth_error(self, credential: str) -> None:
        """A refused or malformed OAuth credential raises AuthError and writes nothing."""
        sandbox = HubSpotSandbox(oauth_clients=OAUTH)
        value = self.oauth_credential(credential) if credential == "unknown" else credential
        crm = make_crm(sandbox, credential=value)
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert "syncd auth set hubspot" in str(caught.value)
        assert "canary" not in str(caught.value)
        assert sandbox.contact_count() == 0


class TestRateLimit:
    """HubSpot's rolling window: its headers, its 429, and a client that waits it out."""

    async def test_429_body_and_headers(self, api: httpx.AsyncClient) -> None:
        """The 101st request in 10 s is a 429 shaped as HubSpot documents it.

        https://developers.hubspot.com/docs/api/usage-details
        """
        for _ in range(100):
            ok = await api.get(CONTACTS)
        throttled = await api.get(CONTACTS)
        body = throttled.json()
        assert ok.status_code == 200
        assert ok.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert throttled.status_code == 429
        assert set(body) == {
            "status",
            "message",
            "errorType",
            "correlationId",
            "policyName",
            "requestId",
        }
        assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
        assert throttled.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
        assert throttled.headers["X-HubSpot-RateLimit-Max"] == "100"
        assert throttled.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert int(throttled.headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0

    async def test_client_waits_a_window_when_throttled(self) -> None:
        """Without Retry-After, a rolling-window 429 waits Interval-Milliseconds (the
        client's own pacing is off here: it would avoid the 429)."""
        sandbox = HubSpotSandbox(tokens=[TOKEN], rate_limit=3, rate_interval=2.0)
        clock = FakeClock()
        sandbox.clock = clock.monotonic
        crm = make_crm(sandbox, clock=clock, limiter=Unlimited())
        outcomes = await crm.upsert_contacts([ADA, person(2)])
        await crm.aclose()
        assert [o.outcome for o in outcomes] == ["created", "created"]
        assert 429 in [r.status for r in sandbox.core.requests]
        assert max(clock.waits) >= 2.0


class TestPrivacy:
    """Outcome details and errors name statuses and codes, never a person's data."""

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            pytest.param({"email": "zq-canary-4411@@nowhere"}, "INVALID_EMAIL", id="bad-email"),
            pytest.param({"phone": "x" * 3}, None, id="unknown-property"),
        ],
    )
    async def test_details_carry_no_canary(
        self, sandbox: HubSpotSandbox, fields: dict[str, str], code: str | None
    ) -> None:
        """A record HubSpot refuses fails with status and codes only."""
        if code is None:  # make HubSpot refuse the phone: its property is gone
            del sandbox.store.properties["phone"]
        contact = Contact("urn:li:member:77", {"first_name": "Quillonwy", **fields})
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([contact])
        await crm.aclose()
        assert outcome.outcome == "failed"
        assert "HTTP 400 VALIDATION_ERROR" in outcome.detail
        assert (code or "PROPERTY_DOESNT_EXIST") in outcome.detail
        assert "request id" in outcome.detail
        for secret in ("Quillonwy", "zq-canary", "xxx"):
            assert secret not in outcome.detail


# -- the sandbox against HubSpot's documented shapes ------------------------------------


class TestSandboxShapes:
    """The sandbox answers in the shapes HubSpot documents."""

    async def test_contact_record_shape(self, api: httpx.AsyncClient) -> None:
        """A created contact has a numeric-string id, timestamps and default properties.

        https://developers.hubspot.com/docs/api/crm/contacts
        """
        made = await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})
        body = made.json()
        assert made.status_code == 201
        assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
        assert body["id"].isdigit()
        assert body["archived"] is False
        assert body["createdAt"].endswith("Z")
        props = body["properties"]
        assert props["hs_object_id"] == body["id"]
        assert {"createdate", "lastmodifieddate", "email"} <= set(props)
        assert made.headers["X-HubSpot-Correlation-Id"]

    async def test_batch_read_answers_207_for_missing_ids(self, api: httpx.AsyncClient) -> None:
        """Batch read by idProperty returns found records and an error naming the rest.

        https://developers.hubspot.com/docs/api-reference/error-handling (207 Multi-Status)
        """
        await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})
        answer = await api.post(
            f"{CONTACTS}/batch/read",
            json={
                "idProperty": "email",
                "inputs": [{"id": "a@b.example"}, {"id": "nobody@b.example"}],
                "properties": ["email"],
            },
        )
        body = answer.json()
        assert answer.status_code == 207
        assert body["status"] == "COMPLETE"
        assert body["numErrors"] == 1
        assert [r["properties"]["email"] for r in body["results"]] == ["a@b.example"]
        (error,) = body["errors"]
        assert error["category"] == "OBJECT_NOT_FOUND"
        assert error["context"] == {"ids": ["nobody@b.example"]}

    @pytest.mark.parametrize(
        ("properties", "status", "category", "code"),
        [
            pytest.param({"nope": "1"}, 400, INVALID, "PROPERTY_DOESNT_EXIST", id="unknown"),
            pytest.param({"email": "not-an-email"}, 400, INVALID, "INVALID_EMAIL", id="email"),
            pytest.param({"hs_object_id": "9"}, 400, INVALID, "READ_ONLY_VALUE", id="read-only"),
            pytest.param({"email": "a@b.example"}, 409, "CONFLICT", None, id="unique"),
        ],
    )
    async def test_error_bodies(
        self,
        api: httpx.AsyncClient,
        properties: dict[str, str],
        status: int,
        category: str,
        code: str | None,
    ) -> None:
        """Refusals carry status, message, correlationId and category (and errors[].code).

        https://developers.hubspot.com/docs/api-reference/error-handling; the 409 message
        shape ("Contact already exists. Existing ID: N") as reported in
        https://github.com/HubSpot/hubspot-api-nodejs/issues/545
        """
        first = await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})
        answer = await api.post(CONTACTS, json={"properties": properties})
        body = answer.json()
        assert (answer.status_code, body["status"], body["category"]) == (
            status,
            "error",
            category,
        )
        assert body["correlationId"] == answer.headers["X-HubSpot-Correlation-Id"]
        if code:
            assert body["errors"][0]["code"] == code
        else:
            assert body["message"].endswith(f"Existing ID: {first.json()['id']}")

    @pytest.mark.parametrize(
        ("headers", "category"),
        [
            pytest.param({}, "INVALID_AUTHENTICATION", id="missing"),
            pytest.param({"Authorization": f"Bearer {TOKEN}"}, "EXPIRED_AUTHENTICATION", id="old"),
        ],
    )
    async def test_401_categories(
        self, sandbox: HubSpotSandbox, headers: dict[str, str], category: str
    ) -> None:
        """A missing token and an expired one are told apart by category."""
        sandbox.core.expire_tokens()
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as raw:
            answer = await raw.get(CONTACTS, headers=headers)
        assert (answer.status_code, answer.json()["category"]) == (401, category)

    async def test_properties_api(self, api: httpx.AsyncClient) -> None:
        """A custom property is created with hasUniqueValue and then read back by name.

        https://developers.hubspot.com/docs/api/crm/properties
        """
        missing = await api.get("/crm/v3/properties/contacts/my_id")
        made = await api.post("/crm/v3/properties/contacts", json=CUSTOM_PROPERTIES[0])
        read = await api.get(f"/crm/v3/properties/contacts/{IDENTITY_PROPERTY}")
        twice = await api.post("/crm/v3/properties/contacts", json=CUSTOM_PROPERTIES[0])
        assert (missing.status_code, made.status_code, twice.status_code) == (404, 201, 409)
        assert read.json()["hasUniqueValue"] is True
        assert {"name", "label", "type", "fieldType", "groupName"} <= set(read.json())

    async def test_batches_take_at_most_100_inputs(self, api: httpx.AsyncClient) -> None:
        """A batch of 101 inputs is refused whole."""
        inputs = [{"properties": {"email": f"p{n}@b.example"}} for n in range(101)]
        answer = await api.post(f"{CONTACTS}/batch/create", json={"inputs": inputs})
        assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")

    async def test_batch_upsert_creates_then_updates(self, api: httpx.AsyncClient) -> None:
        """Upsert by a unique idProperty creates once, then updates the same record."""
        await api.post("/crm/v3/properties/contacts", json=CUSTOM_PROPERTIES[0])
        item = {"idProperty": IDENTITY_PROPERTY, "id": "urn:li:member:5"}
        first = await api.post(
            f"{CONTACTS}/batch/upsert",
            json={"inputs": [{**item, "properties": {"firstname": "A"}}]},
        )
        second = await api.post(
            f"{CONTACTS}/batch/upsert",
            json={"inputs": [{**item, "properties": {"firstname": "B"}}]},
        )
        (made,), (changed,) = first.json()["results"], second.json()["results"]
        assert made["id"] == changed["id"]
        assert (made["new"], changed["properties"]["firstname"]) == (True, "B")

    async def test_read_patch_archive_by_id_property(self, api: httpx.AsyncClient) -> None:
        """A contact is read and updated by email, archived by id, and then not found."""
        made = (await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})).json()
        by_email = f"{CONTACTS}/a@b.example"
        patched = await api.patch(
            by_email, params={"idProperty": "email"}, json={"properties": {"city": "Lyon"}}
        )
        read = await api.get(by_email, params={"idProperty": "email", "properties": "city"})
        gone = await api.delete(f"{CONTACTS}/{made['id']}")
        after = await api.get(f"{CONTACTS}/{made['id']}")
        assert patched.status_code == 200
        assert read.json()["properties"]["city"] == "Lyon"
        assert (gone.status_code, after.status_code) == (204, 404)
        assert after.json()["category"] == "OBJECT_NOT_FOUND"

    async def test_search_eq_and_index_lag(
        self, sandbox: HubSpotSandbox, api: httpx.AsyncClient
    ) -> None:
        """Search finds by EQ filter, but not a write newer than the index lag."""
        await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})
        query = {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "A@b.example"}]}
            ]
        }
        found = (await api.post(f"{CONTACTS}/search", json=query)).json()
        sandbox.store.search_lag = 60.0
        lagging = (await api.post(f"{CONTACTS}/search", json=query)).json()
        assert (found["total"], lagging["total"]) == (1, 0)

    async def test_injected_faults_are_hubspot_shaped(
        self, sandbox: HubSpotSandbox, api: httpx.AsyncClient
    ) -> None:
        """A fault from the sandbox's knobs has HubSpot's body and a correlation header."""
        sandbox.core.fail_next(429, retry_after=3)
        sandbox.core.fail_next(409)
        throttled = await api.get(CONTACTS)
        conflict = await api.get(CONTACTS)
        assert throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert throttled.headers["Retry-After"] == "3"
        assert conflict.json()["category"] == "CONFLICT"
        for answer in (throttled, conflict):
            assert answer.headers["X-HubSpot-Correlation-Id"] == answer.json()["correlationId"]

    async def test_oauth_token_grant(self) -> None:
        """The refresh-token grant issues an access token the API then accepts.

        https://developers.hubspot.com/docs/methods/OAuth2/refresh-access-token
        """
        sandbox = HubSpotSandbox(oauth_clients=OAUTH)
        client_id, secret = OAUTH["refresh-canary-5c1d"]
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": secret,
            "refresh_token": "refresh-canary-5c1d",
        }
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as raw:
            granted = await raw.post("/oauth/v1/token", data=form)
            token = granted.json()["access_token"]
            used = await raw.get(CONTACTS, headers={"Authorization": f"Bearer {token}"})
            refused = await raw.post("/oauth/v1/token", data={**form, "refresh_token": "x"})
        assert set(granted.json()) == {"access_token", "refresh_token", "expires_in", "token_type"}
        assert used.status_code == 200
        assert refused.status_code == 400
