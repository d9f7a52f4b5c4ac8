"""Salesforce at a fraction of a request per person: how many requests a bulk costs (a count,
never a time), the shape of the batched calls, and the org's limits kept, against the
sandbox in process."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.lowlevel
import httpx
import pytest

from connectors._ratelimit import Limiter, Unlimited
from connectors.base import ConnectorSettings, Contact
from connectors.salesforce import ratelimit, soql
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.mapping import EXTERNAL_ID_FIELD, PROFILE_URL_FIELD
from connectors.salesforce.sandbox import soql as sandbox_soql
from connectors.salesforce.sandbox.app import MAX_URI_BYTES, SalesforceSandbox
from sync.retry import RetryPolicy
from tests.doubles import FakeClock, RecordingTransport

TOKEN = "sandbox-token-frugal"
BASE = "http://127.0.0.1:8765"
DATA = "/services/data/v62.0"
#: Issue 13's targets, in requests per person of a bulk.
NEW_TARGET, UNCHANGED_TARGET = 0.05, 0.02


def people(count: int, *, first: int = 1000, companies: int = 97) -> list[Contact]:
    """``count`` new people, each with every field a match can use."""
    return [
        Contact(
            f"urn:li:member:{2000 + n}",
            {
                "first_name": f"First{n}",
                "last_name": f"Last{n}",
                "email": f"person.{n}@company-{n % companies}.example",
                "company": f"Company {n % companies}",
                "title": "Buyer",
                "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
            },
        )
        for n in range(first, first + count)
    ]


def make_crm(
    sandbox: SalesforceSandbox,
    transport: httpx.AsyncBaseTransport | None = None,
    limiter: Limiter | None = None,
) -> SalesforceCRM:
    settings = ConnectorSettings(
        "salesforce", "salesforce", "https://login.salesforce.com", options={"login_url": BASE}
    )
    return SalesforceCRM(
        settings,
        sandbox.credential(TOKEN),
        transport=transport or httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=2, sleep=FakeClock().sleep),
        limiter=limiter,
    )


async def bulk(crm: SalesforceCRM, contacts: Sequence[Contact], batch: int) -> list[str]:
    """Every outcome of ``contacts`` sent ``batch`` a call, as the relay's batcher does."""
    out: list[str] = []
    for start in range(0, len(contacts), batch):
        out += [o.outcome for o in await crm.upsert_contacts(contacts[start : start + batch])]
    return out


def kinds(sandbox: SalesforceSandbox, since: int = 0) -> Counter[str]:
    """The requests the sandbox saw, by method and path without the API version."""
    return Counter(f"{r.method} {r.path.removeprefix(DATA)}" for r in sandbox.core.requests[since:])


class TestRequestsPerPerson:
    """A bulk costs a few requests per batch, not per person."""

    @pytest.mark.parametrize(
        ("count", "batch"),
        [pytest.param(300, 100, id="300-by-100"), pytest.param(400, 200, id="400-by-200")],
    )
    async def test_new_then_unchanged_bulk(self, count: int, batch: int) -> None:
        """New people cost at most 0.05 requests each, the same people again 0.02."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=1_000_000)
        crm = make_crm(sandbox)
        contacts = people(count)
        assert await bulk(crm, contacts, batch) == ["created"] * count
        new = len(sandbox.core.requests)
        assert await bulk(crm, contacts, batch) == ["unchanged"] * count
        again = kinds(sandbox, new)
        await crm.aclose()
        assert sandbox.contact_count() == count
        assert len(sandbox.org.records["Account"]) == 97
        assert new / count <= NEW_TARGET
        assert sum(again.values()) / count <= UNCHANGED_TARGET
        # An unchanged person costs only its share of its batch's one lookup.
        assert again == Counter({"POST /composite": count // batch})

    async def test_where_the_requests_of_a_new_bulk_go(self) -> None:
        """Per batch one lookup and one upsert; the token once; Accounts made in one call."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        crm = make_crm(sandbox)
        await bulk(crm, people(300), 100)
        await crm.aclose()
        assert kinds(sandbox) == Counter(
            {
                "POST /services/oauth2/token": 1,
                "POST /composite": 3,
                "POST /composite/sobjects": 1,
                f"PATCH /composite/sobjects/Contact/{EXTERNAL_ID_FIELD}": 3,
            }
        )

    async def test_one_person_alone_costs_no_more_than_before(self) -> None:
        """A single new person: one lookup (candidates and Account together), the Account,
        the upsert."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        crm = make_crm(sandbox)
        (outcome,) = await crm.upsert_contacts(people(1))
        (again,) = await crm.upsert_contacts(people(1))
        await crm.aclose()
        assert (outcome.outcome, again.outcome) == ("created", "unchanged")
        assert kinds(sandbox) == Counter(
            {
                "POST /services/oauth2/token": 1,
                "POST /composite": 1,
                "POST /sobjects/Account": 1,
                f"PATCH /sobjects/Contact/{EXTERNAL_ID_FIELD}/urn:li:member:3000": 1,
                "GET /query": 1,
            }
        )


class TestMatchingInBulk:
    """Every matching step still decides inside a batch's one query."""

    async def test_each_step_finds_its_record(self) -> None:
        """Member id, profile URL, email and name-within-company each find the record a
        person already has; two records fitting one person stay ambiguous."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        contacts = people(150)
        by_member = sandbox.seed(
            "Contact", {"LastName": "Someone", EXTERNAL_ID_FIELD: contacts[10].member_id}
        )
        by_url = sandbox.seed(
            "Contact",
            {"LastName": "Else", PROFILE_URL_FIELD: "https://linkedin.com/in/PERSON-1020/"},
        )
        by_email = sandbox.seed(
            "Contact", {"LastName": "Other", "Email": contacts[30].fields["email"].upper()}
        )
        by_name = sandbox.seed(
            "Contact", {"FirstName": "First1040", "LastName": "Last1040"}, account="Company 70"
        )
        twins = {
            sandbox.seed("Contact", {"FirstName": "First1050", "LastName": "Last1050"},
                         account="Company 80")
            for _ in range(2)
        }  # fmt: skip
        crm = make_crm(sandbox)
        outcomes = await crm.upsert_contacts(contacts)
        await crm.aclose()
        found = {i: (outcomes[i].outcome, outcomes[i].id) for i in (10, 20, 30, 40)}
        assert found == {
            10: ("updated", by_member),
            20: ("updated", by_url),
            30: ("updated", by_email),
            40: ("updated", by_name),
        }
        assert outcomes[50].outcome == "ambiguous"
        assert set(outcomes[50].candidates) == twins
        assert Counter(o.outcome for o in outcomes)["created"] == 145
        assert kinds(sandbox)["POST /composite"] == 1

    def test_statements_split_by_length_and_cover_everyone(self) -> None:
        """Past the statement budget a batch's conditions go in several statements, each
        within it, that together name every person."""
        contacts = people(200)
        queries = list(
            soql.candidate_queries("Contact", contacts, EXTERNAL_ID_FIELD, strict=False,
                                   max_chars=6_000)
        )  # fmt: skip
        assert len(queries) > 1
        assert all(len(q) <= 6_000 for q in queries)
        joined = " ".join(queries)
        assert all(soql.literal(c.member_id) in joined for c in contacts)
        assert all(soql.literal(c.fields["email"]) in joined for c in contacts)
        (whole,) = soql.candidate_queries("Contact", contacts, EXTERNAL_ID_FIELD, strict=False)
        assert len(whole) <= soql.MAX_STATEMENT_CHARS

    def test_in_lists_match_as_equality_does(self) -> None:
        """The sandbox's ``IN`` ignores case, as ``=`` does, and takes escaped literals."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        ada = sandbox.seed("Contact", {"LastName": "O'Brien", "Email": "Ada@X.example"})
        sandbox.seed("Contact", {"LastName": "Other", "Email": "other@x.example"})
        text = (
            "SELECT Id FROM Contact WHERE Email IN ('ada@x.example', 'nobody@x.example') "
            "OR LastName IN ('o\\'brien')"
        )
        rows = sandbox_soql.run(sandbox.org, sandbox_soql.parse(text), "v62.0")
        assert [r["Id"] for r in rows] == [ada]


class TestBatchedCallShapes:
    """The batched calls have the shapes Salesforce documents."""

    async def test_collections_upsert_body(self) -> None:
        """``PATCH …/composite/sobjects/{SObject}/{ExternalIdField}`` with ``allOrNone`` and
        at most 200 ``records``, each with ``attributes.type`` of the URI's object, its
        external id and no record Id (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html)."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, recorder)
        contacts = people(250)
        await bulk(crm, contacts, 250)
        await crm.aclose()
        upserts = recorder.to(f"{DATA}/composite/sobjects/Contact/{EXTERNAL_ID_FIELD}", "PATCH")
        assert [len(u.json()["records"]) for u in upserts] == [200, 50]
        sent: list[dict[str, Any]] = []
        for upsert in upserts:
            body = upsert.json()
            assert set(body) == {"allOrNone", "records"}
            assert body["allOrNone"] is False
            sent += body["records"]
        assert all(r["attributes"] == {"type": "Contact"} for r in sent)
        assert not any(k.lower() == "id" for r in sent for k in r)
        assert [r[EXTERNAL_ID_FIELD] for r in sent] == [c.member_id for c in contacts]
        assert all(r["LastName"] and r["AccountId"] for r in sent)

    async def test_accounts_made_by_collections_create(self) -> None:
        """Missing Accounts are made by one ``POST …/composite/sobjects`` of ``Account``
        records, 200 a call; one refused fails only the people of that company."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, recorder)
        contacts = people(150, companies=150)
        too_long = Contact(
            "urn:li:member:1", {**contacts[0].fields, "company": "C" * 300, "email": "x@y.example"}
        )
        outcomes = await crm.upsert_contacts([*contacts, too_long])
        await crm.aclose()
        (made,) = recorder.to(f"{DATA}/composite/sobjects", "POST")
        records = made.json()["records"]
        assert len(records) == 151
        assert all(set(r) == {"attributes", "Name"} for r in records)
        assert all(r["attributes"] == {"type": "Account"} for r in records)
        assert [o.outcome for o in outcomes] == ["created"] * 150 + ["failed"]
        assert "account of the record" in outcomes[-1].detail
        assert len(sandbox.org.records["Account"]) == 150

    async def test_long_lookup_goes_in_a_composite_body(self) -> None:
        """A lookup too long for a URL goes as query subrequests of one Composite request
        (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html);
        sent as a GET it would be refused 414."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, recorder)
        await crm.upsert_contacts(people(200))
        await crm.aclose()
        (composite,) = recorder.to(f"{DATA}/composite", "POST")[:1]
        subrequests = composite.json()["compositeRequest"]
        assert 1 <= len(subrequests) <= 5
        assert all(set(s) == {"method", "url", "referenceId"} for s in subrequests)
        assert all(s["method"] == "GET" for s in subrequests)
        queries = [dict(parse_qsl(urlsplit(s["url"]).query))["q"] for s in subrequests]
        assert all(urlsplit(s["url"]).path == f"{DATA}/query" for s in subrequests)
        assert not soql.fits_url(queries[0])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE
        ) as api:
            answer = await api.get(f"{DATA}/query", params={"q": queries[0]})
        assert len(str(answer.request.url)) > MAX_URI_BYTES
        assert answer.status_code == 414


class _Counting(httpx.AsyncBaseTransport):
    """Counts the requests in flight at once, each yielding a few times before it answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


class TestOrgLimits:
    """The org's concurrency and daily budget, as the client keeps and reports them."""

    @pytest.mark.parametrize(
        ("limited", "within"),
        [pytest.param(True, True, id="limiter"), pytest.param(False, False, id="unlimited")],
    )
    async def test_never_more_than_25_in_flight(self, limited: bool, within: bool) -> None:
        """Sixty lookups at once keep at most 25 calls in flight (without the limiter,
        more go out: the bound is the limiter's doing)."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=1_000_000)
        counting = _Counting(httpx.ASGITransport(app=sandbox.app))
        budget = ratelimit.limiter(FakeClock().sleep)
        crm = make_crm(sandbox, counting, budget if limited else Unlimited())
        await crm.check_auth()
        async with anyio.create_task_group() as tg:
            for contact in people(60):
                tg.start_soon(crm.find, contact)
        await crm.aclose()
        assert (counting.peak <= ratelimit.CONCURRENT_LIMIT) is within
        if limited:
            assert budget.in_flight.peak == ratelimit.CONCURRENT_LIMIT

    async def test_the_daily_budget_is_read_and_reported(self) -> None:
        """``Sforce-Limit-Info: api-usage=N/M`` of the last answer is the client's
        ``api_usage``, and the limiter takes M as the org's daily allocation."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=40_000)
        budget = ratelimit.limiter(FakeClock().sleep)
        crm = make_crm(sandbox, limiter=budget)
        await bulk(crm, people(300), 100)
        await crm.aclose()
        api_calls = [r for r in sandbox.core.requests if r.path.startswith(DATA)]
        assert crm.api_usage == (len(api_calls), 40_000)
        assert budget.daily.limit == 40_000
