"""Salesforce: the shared CRM contract, then what only Salesforce does, against the sandbox
in-process over ASGI."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connectors._ratelimit import Limiter, Unlimited
from connectors.base import ConnectorSettings, Contact, OverwritePolicy
from connectors.salesforce import soql
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.mapping import (
    BODY_LIMIT,
    EXTERNAL_ID_FIELD,
    FIELD_OF,
    LEAD_COMPANY_FALLBACK,
    MESSAGE_ID_FIELD,
    PROFILE_URL_FIELD,
    SYNCED_AT_FIELD,
)
from connectors.salesforce.sandbox import soql as sandbox_soql
from connectors.salesforce.sandbox.app import SalesforceSandbox
from sync.errors import AuthError, FatalConnectorError, RetryableError
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, CRMContract, with_fields
from tests.doubles import FakeClock, RecordingTransport

#: A loopback root: the client sends its token over plain http to nothing else.
BASE = "http://127.0.0.1:8765"
VERSION = "v62.0"
DATA = f"/services/data/{VERSION}"
EXT = EXTERNAL_ID_FIELD
#: The Subject syncd gives a Task: direction and the message's time (UTC, to the second).
SUBJECT = re.compile(r"^LinkedIn message (sent|received) (\S+ \S+) UTC$")


class TestSalesforceContract(CRMContract):
    """The shared CRM contract, run against the Salesforce client and sandbox."""

    type_name = "salesforce"
    retention = "kept in Salesforce's Recycle Bin for 15 days"

    def make_sandbox(self) -> SalesforceSandbox:
        return SalesforceSandbox(tokens=[TOKEN])

    def credential(self) -> str:
        return SalesforceSandbox().credential(TOKEN)

    def rejected_credential(self) -> str:
        return SalesforceSandbox().credential("not-a-valid-refresh-token")

    def oauth_credential(self, *, valid: bool = True) -> str:
        return SalesforceSandbox().credential(TOKEN if valid else "revoked-refresh-token")

    def options(self) -> dict[str, object]:
        return {"login_url": BASE}

    def record_count(self, sandbox: Any) -> int:
        count: int = sandbox.contact_count()
        return count

    def edit_in_crm(self, sandbox: Any, crm_id: str, field: str, value: str) -> None:
        sandbox.edit(crm_id, FIELD_OF["Contact"][field], value)

    def crm_class(self) -> Any:
        return SalesforceCRM

    def seed_in_crm(self, sandbox: Any, fields: dict[str, str]) -> str:
        values = {FIELD_OF["Contact"][k]: v for k, v in fields.items() if k != "company"}
        seeded: str = sandbox.seed("Contact", values, account=fields.get("company"))
        return seeded

    def company_of(self, sandbox: Any, crm_id: str) -> str | None:
        company: str | None = sandbox.company_of(crm_id)
        return company

    def company_count(self, sandbox: Any) -> int:
        return len(sandbox.org.records["Account"])

    def write_path_prefix(self) -> str:
        return f"{DATA}/sobjects/Contact"

    def synced_at_of(self, sandbox: Any, crm_id: str) -> str | None:
        held = sandbox.org.find("Contact", crm_id)
        return None if held is None else held[SYNCED_AT_FIELD]

    body_limit = BODY_LIMIT

    def logged(self, sandbox: Any, crm_id: str) -> list[dict[str, Any]]:
        out = []
        for task in sandbox.org.rows("Task"):
            if task["WhoId"] != crm_id or not task[MESSAGE_ID_FIELD]:
                continue
            found = SUBJECT.match(task["Subject"])
            assert found is not None, "syncd's Task has a Subject of another shape"
            assert (task["Status"], task["IsClosed"]) == ("Completed", "true")
            at = datetime.fromisoformat(found.group(2)).replace(tzinfo=UTC)
            assert task["ActivityDate"] == at.date().isoformat()
            out.append(
                {
                    "key": task[MESSAGE_ID_FIELD],
                    "body": task["Description"],
                    "direction": found.group(1),
                    "at": at,
                }
            )
        return out

    def seed_human_activity(self, sandbox: Any, crm_id: str) -> None:
        values = {"WhoId": crm_id, "Subject": "Call", "Status": "Completed"}
        sandbox.seed("Task", values | {"Description": "Talked about the engine."})


# -- helpers --------------------------------------------------------------------------


def writes(recorder: RecordingTransport) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of every request that could change the org (a Composite
    request of GET subrequests only reads)."""
    return [
        (s.method, s.path, s.json())
        for s in recorder.sent
        if s.method in ("POST", "PATCH", "DELETE")
        and "oauth2" not in s.path
        and not reads_only(s.path, s.json() if s.method == "POST" else None)
    ]


def reads_only(path: str, body: Any) -> bool:
    """Whether a request is a Composite request whose every subrequest is a GET."""
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    return (
        path.endswith("/composite")
        and isinstance(subrequests, list)
        and all(r.get("method") == "GET" for r in subrequests)
    )


def make_crm(
    sandbox: SalesforceSandbox,
    *,
    credential: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: FakeClock | None = None,
    overwrite: OverwritePolicy = "empty-only",
    attempts: int = 4,
    limiter: Limiter | None = None,
    **options: object,
) -> SalesforceCRM:
    settings = ConnectorSettings(
        "salesforce",
        "salesforce",
        "https://login.salesforce.com",
        overwrite=overwrite,
        options={"login_url": BASE, **options},
    )
    return SalesforceCRM(
        settings,
        credential if credential is not None else sandbox.credential(TOKEN),
        transport=transport or httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=attempts, sleep=(clock or FakeClock()).sleep),
        limiter=limiter,
    )


def person(n: int, **fields: str) -> Contact:
    base = {"first_name": f"First{n}", "last_name": f"Last{n}", "email": f"p{n}@corp.example"}
    return Contact(f"urn:li:member:{n}", {**base, **fields})


def statuses(sandbox: SalesforceSandbox, method: str, path: str) -> list[int]:
    """The statuses of the requests the sandbox saw for ``method`` on paths starting ``path``."""
    return [
        r.status for r in sandbox.core.requests if r.method == method and r.path.startswith(path)
    ]


@pytest.fixture
def sandbox() -> SalesforceSandbox:
    return SalesforceSandbox(tokens=[TOKEN])


@pytest.fixture
async def api(sandbox: SalesforceSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the sandbox holding a fresh access token."""
    async with httpx.AsyncClient(
        base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
    ) as client:
        grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
        token = (await client.post("/services/oauth2/token", data=grant)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


# -- tokens ---------------------------------------------------------------------------


class TestTokens:
    """The refresh-token flow: the access token in memory, one refresh per expiry."""

    async def test_token_answer_shape(self, sandbox: SalesforceSandbox) -> None:
        """The token endpoint answers a Bearer token and the instance it was reached at.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm
        """
        grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as client:
            answer = await client.post("http://org.test/services/oauth2/token", data=grant)
        body = answer.json()
        assert answer.status_code == 200
        assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at"}
        assert (body["instance_url"], body["token_type"]) == ("http://org.test", "Bearer")
        assert body["access_token"] in sandbox.core.tokens
        assert TOKEN not in sandbox.core.tokens  # the refresh token is no session

    async def test_invalid_session_refreshes_once(self, sandbox: SalesforceSandbox) -> None:
        """A 401 INVALID_SESSION_ID trades the refresh token once more, then goes on."""
        crm = make_crm(sandbox)
        (first,) = await crm.upsert_contacts([ADA])
        sandbox.core.expire_tokens()
        (second,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0000")])
        await crm.aclose()
        assert (first.outcome, second.outcome) == ("created", "updated")
        assert statuses(sandbox, "POST", "/services/oauth2/token") == [200, 200]
        assert statuses(sandbox, "GET", f"{DATA}/query").count(401) == 1

    async def test_401_after_a_refresh_is_auth_error(self, sandbox: SalesforceSandbox) -> None:
        """A session refused again right after a refresh is AuthError, not a refresh loop."""
        crm = make_crm(sandbox)
        await crm.check_auth()
        sandbox.core.fail_next(401, count=5, path_prefix=DATA)
        with pytest.raises(AuthError, match="syncd auth set salesforce"):
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert statuses(sandbox, "POST", "/services/oauth2/token") == [200, 200]
        assert sandbox.contact_count() == 0

    async def test_401_body_is_salesforce_shaped(self, sandbox: SalesforceSandbox) -> None:
        """An expired session answers 401 with a one-entry error list."""
        async with httpx.AsyncClient(
            base_url=BASE,
            transport=httpx.ASGITransport(app=sandbox.app),
            headers={"Authorization": "Bearer stale"},
        ) as client:
            answer = await client.get(f"{DATA}/limits")
        assert answer.status_code == 401
        assert answer.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]

    @pytest.mark.parametrize(
        ("refresh", "client_secret", "error"),
        [
            pytest.param("revoked-canary-71c2", None, "invalid_grant", id="revoked-refresh-token"),
            pytest.param(TOKEN, "wrong-canary-03b9", "invalid_client", id="wrong-secret"),
        ],
    )
    async def test_refused_refresh_is_auth_error(
        self, sandbox: SalesforceSandbox, refresh: str, client_secret: str | None, error: str
    ) -> None:
        """A refresh the org refuses (400 invalid_grant/invalid_client) is AuthError with the
        code, naming neither token nor secret; nothing is written."""
        value = json.loads(sandbox.credential(refresh))
        if client_secret:
            value["client_secret"] = client_secret
        crm = make_crm(sandbox, credential=json.dumps(value))
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert error in str(caught.value)
        assert "syncd auth set salesforce" in str(caught.value)
        assert "canary" not in str(caught.value)
        assert statuses(sandbox, "POST", "/services/oauth2/token") == [400]
        assert sandbox.contact_count() == 0

    @pytest.mark.parametrize(
        "credential",
        [
            pytest.param("a-bare-canary-token", id="not-json"),
            pytest.param('{"client_id": "x", "refresh_token": "canary"}', id="no-secret"),
            pytest.param('["canary"]', id="not-an-object"),
        ],
    )
    async def test_malformed_credential(self, sandbox: SalesforceSandbox, credential: str) -> None:
        """A credential that is not the OAuth JSON is AuthError at first use; nothing is sent."""
        crm = make_crm(sandbox, credential=credential)  # the constructor does not raise
        with pytest.raises(AuthError) as caught:
            await crm.check_auth()
        await crm.aclose()
        assert "canary" not in str(caught.value)
        assert sandbox.core.requests == []

    async def test_set_tokens_replaces_refresh_tokens(self, sandbox: SalesforceSandbox) -> None:
        """PUT /_sandbox/tokens sets the refresh tokens the sandbox accepts and ends sessions."""
        crm = make_crm(sandbox)
        await crm.check_auth()
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as client:
            answer = await client.put("/_sandbox/tokens", json={"tokens": ["other"]})
        assert answer.status_code == 200
        with pytest.raises(AuthError):
            await crm.check_auth()
        await crm.aclose()
        other = make_crm(sandbox, credential=sandbox.credential("other"))
        await other.check_auth()
        await other.aclose()


# -- API limits -----------------------------------------------------------------------


class TestApiLimits:
    """The daily API limit: Sforce-Limit-Info on every answer, 403 REQUEST_LIMIT_EXCEEDED
    beyond it, which the client treats as throttling.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
    """

    async def test_limit_info_on_every_answer(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient
    ) -> None:
        """Successes, errors and injected faults all carry api-usage=N/M; N counts calls."""
        ok = await api.get(f"{DATA}/limits")
        bad = await api.get(f"{DATA}/query", params={"q": "SELECT Nope FROM Contact"})
        missing = await api.get(f"{DATA}/sobjects/Contact/003000000000000AAA")
        sandbox.core.fail_next(503)
        fault = await api.get(f"{DATA}/limits")
        assert [a.status_code for a in (ok, bad, missing, fault)] == [200, 400, 404, 503]
        assert ok.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
        assert missing.headers["Sforce-Limit-Info"] == "api-usage=3/15000"
        assert fault.headers["Sforce-Limit-Info"].startswith("api-usage=")
        assert bad.headers["Sforce-Limit-Info"] == "api-usage=2/15000"
        assert ok.json()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14999}

    async def test_client_reads_the_usage(self, sandbox: SalesforceSandbox) -> None:
        """The client keeps the org's usage from the last answer."""
        crm = make_crm(sandbox)
        await crm.upsert_contacts([ADA])
        await crm.aclose()
        api_calls = [r for r in sandbox.core.requests if r.path.startswith(DATA)]
        assert crm.api_usage == (len(api_calls), 15000)

    async def test_403_beyond_the_limit(self) -> None:
        """Past the daily limit the org answers 403 REQUEST_LIMIT_EXCEEDED, not 429."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=2)
        grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as client:
            token = (await client.post("/services/oauth2/token", data=grant)).json()
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            answers = [await client.get(f"{DATA}/limits") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 403]
        assert answers[2].json() == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert answers[2].headers["Sforce-Limit-Info"] == "api-usage=2/2"

    async def test_request_limit_is_retried_not_auth_error(self) -> None:
        """A 403 REQUEST_LIMIT_EXCEEDED waits and tries again; the upsert then succeeds."""
        clock = FakeClock()
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=2, clock=clock.monotonic)
        sandbox.usage.window = 0.1  # the org's rolling 24 hours pass during any retry's wait
        crm = make_crm(sandbox, clock=clock, limiter=Unlimited())  # no pacing: draw the 403
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert outcome.outcome == "created"
        assert 403 in [r.status for r in sandbox.core.requests]
        assert clock.waits
        assert statuses(sandbox, "POST", "/services/oauth2/token") == [200]  # no refresh
        assert sandbox.contact_count() == 1

    async def test_request_limit_exhausted_is_retryable(self) -> None:
        """When the limit stays used up, the call fails as retryable, never as AuthError."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=1)
        clock = FakeClock()
        crm = make_crm(sandbox, clock=clock, attempts=3, limiter=Unlimited())
        with pytest.raises(RetryableError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert "REQUEST_LIMIT_EXCEEDED" in str(caught.value)
        assert caught.value.status == 403
        assert len(clock.waits) == 2
        assert statuses(sandbox, "POST", "/services/oauth2/token") == [200]


# -- writing --------------------------------------------------------------------------


class TestUpsert:
    """Matching before writing; upsert by external id, updates by Id, collections of 200."""

    async def test_unchanged_sends_nothing(self, sandbox: SalesforceSandbox) -> None:
        """A person already as syncd would write them costs reads only."""
        crm = make_crm(sandbox)
        await crm.upsert_contacts([ADA])
        recorder = RecordingTransport.over(sandbox.app)
        again = make_crm(sandbox, transport=recorder)
        (outcome,) = await again.upsert_contacts([ADA])
        await crm.aclose()
        await again.aclose()
        assert outcome.outcome == "unchanged"
        assert writes(recorder) == []

    async def test_new_person_is_upserted_by_external_id(self, sandbox: SalesforceSandbox) -> None:
        """One new person is one PATCH on the external id path, without the id in the body."""
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        method, path, body = writes(recorder)[-1]
        assert (method, path) == ("PATCH", f"{DATA}/sobjects/Contact/{EXT}/{ADA.member_id}")
        assert EXT not in body
        assert (
            body["AccountId"]
            == sandbox.org.by_value("Account", "Name", "Analytical Engines")[0]["Id"]
        )
        assert outcome.outcome == "created"
        held = sandbox.org.find("Contact", str(outcome.id))
        assert held is not None
        assert (held[EXT], held[PROFILE_URL_FIELD]) == (ADA.member_id, ADA.fields["linkedin_url"])

    async def test_300_for_several_external_id_matches_is_ambiguous(self) -> None:
        """Two records holding the member id (made meanwhile) answer 300; nothing is written.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
        """
        sandbox = SalesforceSandbox(tokens=[TOKEN], external_id_unique=False)
        crm = make_crm(sandbox)
        (first,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        made: list[str] = []

        def colleague(request: httpx.Request) -> None:
            if request.method == "PATCH" and not made:
                made.append(sandbox.seed("Contact", {"LastName": "Copy", EXT: ADA.member_id}))

        crm = make_crm(sandbox, transport=RecordingTransport.over(sandbox.app, colleague))
        (outcome,) = await crm.upsert_contacts([with_fields(ADA, phone="+33 1 23 45 67 89")])
        await crm.aclose()
        assert statuses(sandbox, "PATCH", f"{DATA}/sobjects/Contact/{EXT}") == [201, 300]
        assert outcome.outcome == "ambiguous"
        assert set(outcome.candidates) == {first.id, made[0]}
        held = sandbox.org.find("Contact", str(first.id))
        assert held is not None
        assert held["Phone"] is None

    async def test_300_body_lists_record_urls(self) -> None:
        """The sandbox's 300 body is the list of the matching records' URLs."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], external_id_unique=False)
        ids = [sandbox.seed("Contact", {"LastName": f"L{n}", EXT: "m-1"}) for n in range(2)]
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
        ) as client:
            grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
            token = (await client.post("/services/oauth2/token", data=grant)).json()
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            answer = await client.patch(f"{DATA}/sobjects/Contact/{EXT}/m-1", json={"Title": "x"})
        assert answer.status_code == 300
        assert answer.json() == [f"{DATA}/sobjects/Contact/{i}" for i in ids]

    async def test_more_than_200_go_in_collections_of_200(self, sandbox: SalesforceSandbox) -> None:
        """250 new people take one collections upsert of 200 and one of 50."""
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        outcomes = await crm.upsert_contacts([person(n) for n in range(250)])
        await crm.aclose()
        collections = [
            b for m, p, b in writes(recorder) if p == f"{DATA}/composite/sobjects/Contact/{EXT}"
        ]
        assert [len(b["records"]) for b in collections] == [200, 50]
        assert all(b["allOrNone"] is False for b in collections)
        assert collections[0]["records"][0]["attributes"] == {"type": "Contact"}
        assert [o.outcome for o in outcomes] == ["created"] * 250
        assert len({o.id for o in outcomes}) == 250
        assert sandbox.contact_count() == 250

    async def test_collections_refuse_201_records(self, api: httpx.AsyncClient) -> None:
        """The sandbox refuses a collection of more than 200 records, as Salesforce does."""
        records = [
            {"attributes": {"type": "Contact"}, EXT: f"m{n}", "LastName": "x"} for n in range(201)
        ]
        answer = await api.patch(
            f"{DATA}/composite/sobjects/Contact/{EXT}",
            json={"allOrNone": False, "records": records},
        )
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"

    async def test_human_records_are_updated_by_id(self, sandbox: SalesforceSandbox) -> None:
        """Records a human made are updated by Id (a collection for several) and get the
        member id; new people in the same call are upserted by external id."""
        one = sandbox.seed("Contact", {"LastName": "Last1", "Email": "p1@corp.example"})
        two = sandbox.seed("Contact", {"LastName": "Last2", "Email": "P2@corp.example"})
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        outcomes = await crm.upsert_contacts([person(1), person(2), person(3)])
        await crm.aclose()
        assert [(o.outcome, o.id) for o in outcomes[:2]] == [("updated", one), ("updated", two)]
        assert outcomes[2].outcome == "created"
        (update,) = [b for m, p, b in writes(recorder) if p == f"{DATA}/composite/sobjects"]
        assert [r["id"] for r in update["records"]] == [one, two]
        assert [r[EXT] for r in update["records"]] == ["urn:li:member:1", "urn:li:member:2"]
        assert "LastName" not in update["records"][0]  # empty-only: the human's value stays
        held = sandbox.org.find("Contact", two)
        assert held is not None
        assert (held["FirstName"], held["Email"]) == ("First2", "P2@corp.example")

    async def test_one_record_fits_two_people_once(self, sandbox: SalesforceSandbox) -> None:
        """A human record two people of one call both fit is claimed by the first only."""
        seeded = sandbox.seed("Contact", {"LastName": "Twin", "Email": "twin@corp.example"})
        a = Contact("urn:li:member:71", {"last_name": "Twin", "email": "twin@corp.example"})
        b = Contact("urn:li:member:72", {"last_name": "Twin", "email": "twin@corp.example"})
        crm = make_crm(sandbox)
        first, second = await crm.upsert_contacts([a, b])
        await crm.aclose()
        assert (first.outcome, first.id) == ("updated", seeded)
        assert second.outcome == "failed"
        assert "DUPLICATES_DETECTED" in second.detail

    async def test_duplicates_detected_is_a_failed_outcome(
        self, sandbox: SalesforceSandbox
    ) -> None:
        """A duplicate rule refusing a create is a rejected record, not a forced save; the
        other people of the call are written."""
        taken = sandbox.seed(
            "Contact",
            {"LastName": "Other", "Email": "ada@analytical.example", EXT: "urn:li:member:1"},
        )
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        alone = await crm.upsert_contacts([ADA])
        batch = await crm.upsert_contacts([person(5), ADA])
        await crm.aclose()
        for outcome in (alone[0], batch[1]):
            assert (outcome.outcome, outcome.reason) == ("failed", "rejected")
            assert "DUPLICATES_DETECTED" in outcome.detail
            assert "ada@" not in outcome.detail
        assert batch[0].outcome == "created"
        assert sandbox.contact_count() == 2
        assert taken not in {o.id for o in [*alone, *batch]}
        assert all("Sforce-Duplicate-Rule-Header" not in s.headers for s in recorder.sent)

    async def test_duplicate_rule_answer_shape(
        self, api: httpx.AsyncClient, sandbox: SalesforceSandbox
    ) -> None:
        """DUPLICATES_DETECTED names the rule and the matching records; allowSave=true saves.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_duplicaterules.htm
        """
        existing = sandbox.seed("Contact", {"LastName": "A", "Email": "a@x.example"})
        refused = await api.post(
            f"{DATA}/sobjects/Contact", json={"LastName": "B", "Email": "A@x.example"}
        )
        saved = await api.post(
            f"{DATA}/sobjects/Contact",
            json={"LastName": "B", "Email": "A@x.example"},
            headers={"Sforce-Duplicate-Rule-Header": "allowSave=true; runAsCurrentUser=true"},
        )
        (error,) = refused.json()
        assert refused.status_code == 400
        assert error["errorCode"] == "DUPLICATES_DETECTED"
        match = error["duplicateResult"]["matchResults"][0]
        assert match["matchRecords"][0]["record"]["Id"] == existing
        assert saved.status_code == 201
        assert saved.json()["success"] is True


class TestNames:
    """LastName is required: one name goes there; no name at all is refused before sending."""

    async def test_a_single_name_is_the_last_name(self, sandbox: SalesforceSandbox) -> None:
        """A person known by one name is filed under LastName, FirstName empty, and reads
        back unchanged."""
        cher = Contact("urn:li:member:61", {"first_name": "Cher", "email": "cher@x.example"})
        crm = make_crm(sandbox)
        (made,) = await crm.upsert_contacts([cher])
        (again,) = await crm.upsert_contacts([cher])
        await crm.aclose()
        held = sandbox.org.find("Contact", str(made.id))
        assert held is not None
        assert (held["FirstName"], held["LastName"]) == (None, "Cher")
        assert (made.outcome, again.outcome) == ("created", "unchanged")

    async def test_no_name_is_refused_and_nothing_sent(self, sandbox: SalesforceSandbox) -> None:
        """A person without any name fails as rejected; no write reaches Salesforce."""
        nameless = Contact("urn:li:member:62", {"email": "nobody@x.example"})
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        outcomes = await crm.upsert_contacts([nameless, ADA])
        await crm.aclose()
        assert (outcomes[0].outcome, outcomes[0].reason) == ("failed", "rejected")
        assert "LastName" in outcomes[0].detail
        assert outcomes[1].outcome == "created"
        assert all(nameless.member_id not in p for _, p, _ in writes(recorder))
        assert sandbox.contact_count() == 1

    async def test_sandbox_requires_last_name(self, api: httpx.AsyncClient) -> None:
        """A Contact without LastName is 400 REQUIRED_FIELD_MISSING naming the field."""
        answer = await api.post(f"{DATA}/sobjects/Contact", json={"FirstName": "Ada"})
        assert answer.status_code == 400
        assert answer.json() == [
            {
                "message": "Required fields are missing: [LastName]",
                "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": ["LastName"],
            }
        ]


class TestLead:
    """With object = "Lead", people are Leads and the company is the Company field."""

    async def test_lead_with_company(self, sandbox: SalesforceSandbox) -> None:
        """A Lead carries Company; no Account is made; find links to the Lead."""
        crm = make_crm(sandbox, object="Lead")
        (made,) = await crm.upsert_contacts([ADA])
        presence = await crm.find(ADA)
        await crm.aclose()
        assert made.outcome == "created"
        assert str(made.id).startswith("00Q")
        held = sandbox.org.find("Lead", str(made.id))
        assert held is not None
        assert (held["Company"], held["Status"]) == ("Analytical Engines", "Open - Not Contacted")
        assert sandbox.org.records["Account"] == {}
        assert presence.url == f"{BASE}/lightning/r/Lead/{made.id}/view"
        assert presence.owner == sandbox.org.user_id

    async def test_lead_without_company_gets_the_fallback(self, sandbox: SalesforceSandbox) -> None:
        """A Lead without a company gets the documented placeholder, filled in later."""
        bare = Contact("urn:li:member:63", {"first_name": "Grace", "last_name": "Hopper"})
        crm = make_crm(sandbox, object="Lead")
        (made,) = await crm.upsert_contacts([bare])
        placeholder = sandbox.company_of(str(made.id))
        (later,) = await crm.upsert_contacts([with_fields(bare, company="Navy")])
        await crm.aclose()
        assert placeholder == LEAD_COMPANY_FALLBACK == "[not provided]"
        assert sandbox.company_of(str(made.id)) == "Navy"
        assert (made.outcome, later.outcome) == ("created", "updated")

    async def test_lead_matches_by_name_and_company(self, sandbox: SalesforceSandbox) -> None:
        """A Lead a human made with the same name and Company is the person."""
        seeded = sandbox.seed(
            "Lead", {"FirstName": "Ada", "LastName": "Lovelace", "Company": "analytical engines"}
        )
        crm = make_crm(sandbox, object="Lead")
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", seeded)
        assert sandbox.contact_count() == 1


# -- SOQL -----------------------------------------------------------------------------


class TestSoql:
    """Queries escape every literal; the sandbox parses SOQL as strictly as Salesforce.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
    """

    @pytest.mark.parametrize(
        ("value", "quoted"),
        [
            pytest.param("O'Brien", "'O\\'Brien'", id="apostrophe"),
            pytest.param("back\\slash", "'back\\\\slash'", id="backslash"),
            pytest.param("two\nlines", "'two\\nlines'", id="newline"),
            pytest.param('say "hi"', "'say \\\"hi\\\"'", id="double-quote"),
        ],
    )
    def test_literal_escapes(self, value: str, quoted: str) -> None:
        """Quotes, backslashes and control characters are backslash-escaped."""
        assert soql.literal(value) == quoted

    @given(
        st.text(
            st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
            min_size=1,
            max_size=80,
        )
    )
    def test_any_value_round_trips(self, value: str) -> None:
        """Whatever a name holds, its escaped literal finds exactly it, with = and LIKE."""
        assume(value.casefold() != "decoy")
        sandbox = SalesforceSandbox()
        wanted = sandbox.seed("Contact", {"LastName": value})
        sandbox.seed("Contact", {"LastName": "decoy"})
        for where in (f"= {soql.literal(value)}", f"LIKE {soql.like_literal(value)}"):
            text = f"SELECT Id FROM Contact WHERE LastName {where}"  # noqa: S608 - escaped
            query = sandbox_soql.parse(text)
            found = [r["Id"] for r in sandbox_soql.run(sandbox.org, query, VERSION)]
            assert found[0] == wanted
            assert where.startswith("LIKE") or found == [wanted]

    def test_like_pattern_takes_wildcards_literally(self) -> None:
        """In a LIKE pattern, % and _ of the value are escaped; the pattern matches anywhere."""
        assert soql.like_literal("/in/ada_l%") == "'%/in/ada\\_l\\%%'"

    async def test_apostrophes_match_by_name(self, sandbox: SalesforceSandbox) -> None:
        """O'Brien at Bob's BBQ is found by name and company, not refused as a bad query."""
        seeded = sandbox.seed(
            "Contact", {"FirstName": "Pat", "LastName": "O'Brien"}, account="Bob's BBQ"
        )
        pat = Contact(
            "urn:li:member:81",
            {
                "first_name": "Pat",
                "last_name": "O'Brien",
                "company": "Bob's BBQ",
                "email": "pat@bbq.example",
            },
        )
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([pat])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", seeded)
        assert len(sandbox.org.records["Account"]) == 1

    async def test_unescaped_quote_is_malformed(self, api: httpx.AsyncClient) -> None:
        """A quote left unescaped is 400 MALFORMED_QUERY."""
        answer = await api.get(
            f"{DATA}/query", params={"q": "SELECT Id FROM Contact WHERE LastName = 'O'Brien'"}
        )
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "MALFORMED_QUERY"

    @pytest.mark.parametrize(
        ("query", "code"),
        [
            pytest.param(
                "SELECT Id FROM Contact WHERE LastName = 'a\\qb'",
                "MALFORMED_QUERY",
                id="bad-escape",
            ),
            pytest.param(
                "SELECT Id FROM Contact WHERE (LastName = 'a'", "MALFORMED_QUERY", id="open-paren"
            ),
            pytest.param("SELECT Nope__c FROM Contact", "INVALID_FIELD", id="unknown-field"),
            pytest.param(
                "SELECT Id FROM Lead WHERE Account.Name = 'x'",
                "INVALID_FIELD",
                id="bad-relationship",
            ),
            pytest.param("SELECT Id FROM Widget__c", "INVALID_TYPE", id="unknown-object"),
        ],
    )
    async def test_sandbox_refuses_bad_queries(
        self, api: httpx.AsyncClient, query: str, code: str
    ) -> None:
        """Bad escapes, syntax, fields and objects answer Salesforce's error codes."""
        answer = await api.get(f"{DATA}/query", params={"q": query})
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == code

    async def test_sandbox_query_subset(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient
    ) -> None:
        """AND, OR, parentheses, LIKE, LIMIT and Account.Name answer Salesforce's shape."""
        ada = sandbox.seed("Contact", {"FirstName": "Ada", "LastName": "King"}, account="Engines")
        sandbox.seed("Contact", {"FirstName": "Ada", "LastName": "Byron"})
        sandbox.seed(
            "Contact", {"FirstName": "Bob", "LastName": "King", PROFILE_URL_FIELD: "x/in/b_b"}
        )
        query = (
            "select Id, FirstName, Account.Name from contact where (firstname = 'ADA' and "
            "Account.Name = 'engines') or LinkedIn_Profile_URL__c like '%/in/b\\_b%' limit 5"
        )
        answer = await api.get(f"{DATA}/query", params={"q": query})
        body = answer.json()
        assert (body["totalSize"], body["done"]) == (2, True)
        first = body["records"][0]
        assert first["attributes"] == {"type": "Contact", "url": f"{DATA}/sobjects/Contact/{ada}"}
        assert first["Account"]["Name"] == "Engines"
        assert first["Account"]["attributes"]["type"] == "Account"
        assert body["records"][1]["Account"] is None
        assert set(first) == {"attributes", "Id", "FirstName", "Account"}

    async def test_client_follows_next_records_url(self) -> None:
        """Candidates past the first page are fetched: three twins are all ambiguous."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], query_batch_size=2)
        twins = {
            sandbox.seed(
                "Contact",
                {"FirstName": "Ada", "LastName": "Lovelace"},
                account="Analytical Engines",
            )
            for _ in range(3)
        }
        crm = make_crm(sandbox)
        presence = await crm.find(ADA)
        await crm.aclose()
        assert set(presence.candidates) == twins
        assert len(statuses(sandbox, "GET", f"{DATA}/query/")) == 1

    async def test_missing_custom_field_stops_with_a_hint(self) -> None:
        """An org without the external id field is a fatal error naming the field to create."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], external_id_field="Other_Id__c")
        crm = make_crm(sandbox)
        with pytest.raises(FatalConnectorError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert EXT in str(caught.value)
        assert "INVALID_FIELD" in str(caught.value)
        assert sandbox.contact_count() == 0


class TestPrivacy:
    """Outcome details name statuses, codes and fields, never a person's data."""

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            pytest.param(
                {"email": "zq-canary-4411@@nowhere"},
                "INVALID_EMAIL_ADDRESS (Email)",
                id="bad-email",
            ),
            pytest.param({"title": "Quillonwy " * 20}, "STRING_TOO_LONG (Title)", id="too-long"),
        ],
    )
    async def test_details_carry_no_canary(
        self, sandbox: SalesforceSandbox, fields: dict[str, str], code: str
    ) -> None:
        """A record Salesforce refuses fails with status, code and field only."""
        contact = Contact(
            "urn:li:member:77", {"first_name": "Quillonwy", "last_name": "Zed", **fields}
        )
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts([contact])
        await crm.aclose()
        assert outcome.outcome == "failed"
        assert f"HTTP 400 {code}" in outcome.detail
        for secret in ("Quillonwy", "zq-canary"):
            assert secret not in outcome.detail
