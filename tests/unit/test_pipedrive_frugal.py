"""Pipedrive's frugality in bulk: requests and API tokens per person for new and unchanged
people (counts, never timings), the directory's correctness against a human's edits between
batches, and the sandbox's token and search limits with their headers.

Run with ``-s`` to print the figures (requests and tokens per person)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from connectors.base import ConnectorSettings, Contact
from connectors.pipedrive.client import PipedriveCRM
from connectors.pipedrive.directory import FRESH_FOR
from connectors.pipedrive.sandbox.app import PipedriveSandbox
from sync.retry import RetryPolicy
from tests.contract import TOKEN
from tests.doubles import FakeClock
from tests.test_pipedrive import BASE

BULK = 200
BATCH = 100  # the relay's batch size (sync/batcher.py)


def people(count: int, *, start: int = 0, companies: int = 20) -> list[Contact]:
    """``count`` fictional people as the bench's sample source makes them."""
    return [
        Contact(
            f"urn:li:member:{n}",
            {
                "first_name": f"First{n}",
                "last_name": f"Last{n}",
                "email": f"person.{n}@company-{n % companies}.example",
                "company": f"Company {n % companies}",
                "title": "Buyer",
                "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
            },
        )
        for n in range(start, start + count)
    ]


async def batches(crm: PipedriveCRM, contacts: Sequence[Contact]) -> list[str]:
    """Upsert ``contacts`` in the relay's batches; every outcome."""
    out: list[str] = []
    for i in range(0, len(contacts), BATCH):
        out += [o.outcome for o in await crm.upsert_contacts(contacts[i : i + BATCH])]
    return out


class Meter:
    """Requests, tokens and 429s the sandbox counted since the last reading."""

    def __init__(self, sandbox: PipedriveSandbox) -> None:
        self.sandbox = sandbox
        self.requests = 0
        self.tokens = 0

    def read(self) -> tuple[int, int, int]:
        requests = [r for r in self.sandbox.core.requests if r.path.startswith("/api/")]
        spent = self.sandbox.limits.spent
        out = (len(requests) - self.requests, spent - self.tokens)
        self.requests, self.tokens = len(requests), spent
        throttled = sum(r.status == 429 for r in requests)
        return (*out, throttled)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def sandbox(clock: FakeClock) -> PipedriveSandbox:
    """Lite with an API token: 20 requests per 2 s, search 10 per 2 s, and (for 400 people
    at most) 30 000 tokens a day; its windows on the test's clock."""
    made = PipedriveSandbox(tokens=[TOKEN], burst=20, search_burst=10, daily_budget=30_000)
    made.limits.clock = clock.monotonic
    return made


def make_crm(sandbox: PipedriveSandbox, clock: FakeClock, *, strict: bool = False) -> PipedriveCRM:
    """A client whose limiter paces itself on the sandbox's clock."""
    settings = ConnectorSettings(
        "pipedrive", "pipedrive", BASE, options={"oauth_url": BASE}, strict_match=strict
    )
    return PipedriveCRM(
        settings,
        TOKEN,
        transport=httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=4, sleep=clock.sleep),
        clock=clock.monotonic,
    )


class TestBulkCosts:
    async def test_new_then_unchanged_people_cost_little(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """200 new people cost at most 1.5 requests and 15 tokens each; the same people
        again cost at most 0.1 request each, and nothing is throttled."""
        crm = make_crm(sandbox, clock)
        meter = Meter(sandbox)
        contacts = people(BULK)
        assert await batches(crm, contacts) == ["created"] * BULK
        new_requests, new_tokens, _ = meter.read()
        assert await batches(crm, contacts) == ["unchanged"] * BULK
        same_requests, same_tokens, throttled = meter.read()
        await crm.aclose()
        print(
            f"\npipedrive per new person: {new_requests / BULK:.3f} requests, "
            f"{new_tokens / BULK:.2f} tokens; per unchanged person: "
            f"{same_requests / BULK:.3f} requests, {same_tokens / BULK:.2f} tokens; "
            f"429s: {throttled}"
        )
        assert sandbox.contact_count() == BULK
        assert new_requests <= 1.5 * BULK
        assert new_tokens <= 15 * BULK
        assert same_requests <= 0.1 * BULK
        assert throttled == 0

    async def test_a_bulk_sends_no_person_search_once_listed(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """Once the company is listed, bulk batches decide every step without a search."""
        crm = make_crm(sandbox, clock)
        await batches(crm, people(BULK))
        await batches(crm, people(BULK))
        await crm.aclose()
        searches = [r for r in sandbox.core.requests if r.path == "/api/v2/persons/search"]
        assert searches == []


def seeded(sandbox: PipedriveSandbox, n: int, **fields: str) -> str:
    """A person someone made in the web UI with contact ``n``'s fields (and ``fields``)."""
    (contact,) = people(1, start=n)
    return sandbox.seed({k: v for k, v in {**contact.fields, **fields}.items() if v})


def paths(sandbox: PipedriveSandbox, since: int = 0) -> list[tuple[str, str]]:
    """Method and path of every API request the sandbox saw from the ``since``-th on."""
    return [(r.method, r.path) for r in sandbox.core.requests[since:] if r.path.startswith("/api/")]


class TestLoneAdds:
    async def test_a_lone_add_after_a_first_sends_no_search(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """In a small company a lone add costs a refresh of persons and of organizations
        and the creates: no search, no read by id when nothing could match."""
        crm = make_crm(sandbox, clock)
        first, second = people(2, companies=2)
        assert [o.outcome for o in await crm.upsert_contacts([first])] == ["created"]
        since = len(sandbox.core.requests)
        assert [o.outcome for o in await crm.upsert_contacts([second])] == ["created"]
        await crm.aclose()
        assert not any(path.endswith("/search") for _, path in paths(sandbox))
        assert paths(sandbox, since) == [
            ("GET", "/api/v2/persons"),
            ("GET", "/api/v2/organizations"),
            ("POST", "/api/v2/organizations"),
            ("POST", "/api/v2/persons"),
        ]

    async def test_a_person_made_by_hand_between_lone_adds_is_found(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """A person a human made after the listing is found by the refresh and updated."""
        crm = make_crm(sandbox, clock)
        await crm.upsert_contacts(people(1))
        human = seeded(sandbox, 1, linkedin_url="")
        (outcome,) = await crm.upsert_contacts(people(1, start=1))
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", human)
        assert sandbox.contact_count() == 2

    async def test_an_organization_made_by_hand_between_lone_adds_is_used(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """An organization a human made after the listing is found by name, not doubled."""
        crm = make_crm(sandbox, clock)
        await crm.upsert_contacts(people(1))
        org = sandbox.store.create_organization({"name": "company 1"})
        (outcome,) = await crm.upsert_contacts(people(1, start=1))
        await crm.aclose()
        assert outcome.outcome == "created"
        assert sandbox.store.person(int(outcome.id or 0))["org_id"] == org["id"]
        assert len(sandbox.store.organizations) == 2

    async def test_two_records_with_the_email_are_ambiguous_alone(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """A lone add whose email two records carry is ambiguous, nothing written."""
        crm = make_crm(sandbox, clock)
        await crm.upsert_contacts(people(1))
        first = seeded(sandbox, 3, linkedin_url="", company="Elsewhere")
        second = seeded(sandbox, 3, linkedin_url="", company="Other")
        (outcome,) = await crm.upsert_contacts(people(1, start=3))
        await crm.aclose()
        assert outcome.outcome == "ambiguous"
        assert set(outcome.candidates) == {first, second}

    async def test_a_big_company_keeps_searching_lone_adds(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """When the persons do not fit the first call's listing pages, lone adds search as
        before and list no further."""
        for n in range(100, 104):
            seeded(sandbox, n)
        sandbox.page_cap = 1
        crm = make_crm(sandbox, clock)
        await crm.upsert_contacts(people(1))
        since = len(sandbox.core.requests)
        (outcome,) = await crm.upsert_contacts(people(1, start=1))
        await crm.aclose()
        assert outcome.outcome == "created"
        later = paths(sandbox, since)
        assert ("GET", "/api/v2/persons/search") in later
        assert ("GET", "/api/v2/persons") not in later


class TestDirectoryFindsWhatSearchesFound:
    async def test_a_person_made_by_hand_between_batches_is_found_by_email(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """A person a human adds between two batches is updated, never doubled."""
        crm = make_crm(sandbox, clock)
        await batches(crm, people(20))
        human = seeded(sandbox, 25, linkedin_url="")
        outcomes = await crm.upsert_contacts(people(20, start=20))
        await crm.aclose()
        assert outcomes[5].outcome == "updated"
        assert outcomes[5].id == human
        assert sandbox.contact_count() == 40

    async def test_an_email_a_human_changed_between_batches_is_seen(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """A record edited by hand after the listing is matched by its new email."""
        human = sandbox.seed({"first_name": "Grace", "last_name": "Hopper"})
        crm = make_crm(sandbox, clock)
        await batches(crm, people(20))
        (wanted,) = people(1, start=30)
        sandbox.edit(human, "email", wanted.fields["email"])
        outcomes = await crm.upsert_contacts(people(20, start=20))
        await crm.aclose()
        assert outcomes[10].id == human
        assert sandbox.contact_count() == 1 + 20 + 19

    async def test_two_records_with_the_email_are_ambiguous(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """Two records carrying a contact's email: ambiguous, nothing written for it."""
        first = seeded(sandbox, 3, linkedin_url="", company="Elsewhere")
        second = seeded(sandbox, 3, linkedin_url="", company="Other")
        crm = make_crm(sandbox, clock)
        outcomes = await crm.upsert_contacts(people(20))
        await crm.aclose()
        assert outcomes[3].outcome == "ambiguous"
        assert set(outcomes[3].candidates) == {first, second}
        assert sandbox.contact_count() == 2 + 19

    @pytest.mark.parametrize(
        ("strict", "expected"),
        [
            pytest.param(False, "updated", id="name-matches"),
            pytest.param(True, "created", id="strict"),
        ],
    )
    async def test_name_within_the_company_matches_unless_strict(
        self, sandbox: PipedriveSandbox, clock: FakeClock, strict: bool, expected: str
    ) -> None:
        """A record with only the same name and company is the person, unless strict."""
        human = seeded(sandbox, 7, email="", linkedin_url="")
        crm = make_crm(sandbox, clock, strict=strict)
        outcomes = await crm.upsert_contacts(people(20))
        await crm.aclose()
        assert outcomes[7].outcome == expected
        assert (outcomes[7].id == human) is not strict

    async def test_a_person_deleted_between_batches_is_made_again(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """A person deleted by hand since the listing is not matched: it is created anew."""
        crm = make_crm(sandbox, clock)
        first = await crm.upsert_contacts(people(20))
        sandbox.store.delete_person(int(first[4].id or 0))
        again = await crm.upsert_contacts(people(20))
        await crm.aclose()
        assert again[4].outcome == "created"
        assert [o.outcome for i, o in enumerate(again) if i != 4] == ["unchanged"] * 19

    async def test_a_reimport_of_known_people_reads_them_without_a_listing(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """People the index knows by identity, again within FRESH_FOR of the last listing:
        one read by id per 100 and no listing; once the listing is older, the next batch
        lists again."""
        crm = make_crm(sandbox, clock)
        contacts = people(BULK)
        await batches(crm, contacts)
        await crm.upsert_contacts(contacts[:2])  # two known people: a listing, now fresh
        seen = len(sandbox.core.requests)
        assert await batches(crm, contacts) == ["unchanged"] * BULK
        again = sandbox.core.requests[seen:]
        assert [(r.method, r.path) for r in again] == [("GET", "/api/v2/persons")] * 2
        assert all("ids=" in r.query and "updated_since" not in r.query for r in again)
        await clock.sleep(FRESH_FOR)
        seen = len(sandbox.core.requests)
        assert await batches(crm, contacts[:BATCH]) == ["unchanged"] * BATCH
        await crm.aclose()
        assert any("updated_since" in r.query for r in sandbox.core.requests[seen:])

    async def test_a_known_person_gone_makes_the_batch_list_again(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """Between two batches a human deletes a person syncd wrote and makes another with
        its email: the read by id misses the first, so the batch lists the company again
        and updates the human's record instead of making a double."""
        crm = make_crm(sandbox, clock)
        first = await crm.upsert_contacts(people(20))
        sandbox.store.delete_person(int(first[4].id or 0))
        human = seeded(sandbox, 4, linkedin_url="")
        again = await crm.upsert_contacts(people(20))
        await crm.aclose()
        assert again[4].outcome == "updated"
        assert again[4].id == human
        assert sandbox.contact_count() == 20

    async def test_the_directory_holds_no_ones_data(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """The index keeps keyed hashes only: no email or name is in it."""
        crm = make_crm(sandbox, clock)
        await crm.upsert_contacts(people(20))
        directory = crm._people.directory
        await crm.aclose()
        held = repr(vars(directory))
        assert "company-" not in held
        assert "First" not in held
        assert directory.complete


class TestSandboxLimits:
    async def test_the_search_api_has_its_own_window(self, sandbox: PipedriveSandbox) -> None:
        """The 11th search in 2 s is refused with the search window's headers; a list is not."""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE
        ) as http:
            headers = {"x-api-token": TOKEN}
            params = {"term": "x@y.example", "fields": "email", "exact_match": "true"}
            answers = [
                await http.get("/api/v2/persons/search", params=params, headers=headers)
                for _ in range(11)
            ]
            listed = await http.get("/api/v2/persons", headers=headers)
        assert [a.status_code for a in answers] == [200] * 10 + [429]
        assert answers[-1].headers["x-ratelimit-limit"] == "10"
        assert answers[0].headers["x-token-cost"] == "20"
        assert listed.status_code == 200
        assert listed.headers["x-ratelimit-limit"] == "20"
        assert listed.headers["x-token-cost"] == "10"

    async def test_persons_are_listed_by_update_time_since(self, sandbox: PipedriveSandbox) -> None:
        """``updated_since`` keeps persons updated at or after it; a bad time is a 400."""
        old = sandbox.seed({"first_name": "Old", "last_name": "One"})
        sandbox.store.person(int(old))["update_time"] = "2020-01-01T00:00:00Z"
        new = sandbox.seed({"first_name": "New", "last_name": "One"})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE
        ) as http:
            headers = {"x-api-token": TOKEN}
            since = {"updated_since": "2021-01-01T00:00:00Z", "sort_by": "update_time"}
            listed = await http.get("/api/v2/persons", params=since, headers=headers)
            bad = await http.get(
                "/api/v2/persons", params={"updated_since": "yesterday"}, headers=headers
            )
        assert [p["id"] for p in listed.json()["data"]] == [int(new)]
        assert bad.status_code == 400

    async def test_a_bulk_spends_within_a_lite_days_budget(
        self, sandbox: PipedriveSandbox, clock: FakeClock
    ) -> None:
        """What 200 new people spent leaves a one-seat Lite day room for 1 500 more."""
        crm = make_crm(sandbox, clock)
        await batches(crm, people(BULK))
        await crm.aclose()
        assert sandbox.limits.spent * (1500 + BULK) / BULK <= sandbox.limits.daily_budget
