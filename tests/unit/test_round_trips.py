"""A lone person costs few round trips: what does not wait for an answer goes side by side.

Each sandbox answers after 50 ms; two requests were sent side by side when each started
before the other's answer was complete (their answering spans overlap).
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from connectors._concurrent import both, gather
from connectors._ratelimit import Unlimited
from connectors.base import ConnectorSettings, Contact
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.sandbox.app import HubSpotSandbox
from connectors.linkedin.client import LinkedInSource
from connectors.linkedin.sandbox.app import LinkedInSandbox
from connectors.pipedrive.client import PipedriveCRM
from connectors.pipedrive.sandbox.app import PipedriveSandbox
from rig.sandbox import RecordedRequest
from tests.doubles import RecordingTransport

TOKEN = "tok-round-trips"
LATENCY_MS = 50


def side_by_side(records: list[RecordedRequest]) -> bool:
    """Whether every one of ``records`` was taken up before any of them was answered."""
    return max(r.started for r in records) < min(r.at for r in records)


def person(n: int) -> Contact:
    return Contact(
        f"urn:li:member:{n}",
        {
            "first_name": f"First{n}",
            "last_name": f"Last{n}",
            "email": f"person.{n}@company-{n}.example",
            "company": f"Company {n}",
            "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
        },
    )


async def lone_add(
    crm: HubSpotCRM | PipedriveCRM, sandbox: HubSpotSandbox | PipedriveSandbox, n: int
) -> list[RecordedRequest]:
    """Add new person ``n`` alone, the sandbox answering in LATENCY_MS; what it was sent."""
    sandbox.core.latency_ms = LATENCY_MS
    seen = len(sandbox.core.requests)
    (outcome,) = await crm.upsert_contacts([person(n)])
    await crm.aclose()
    assert outcome.outcome == "created"
    return sandbox.core.requests[seen:]


class TestHubSpotLoneAdd:
    async def test_lookups_and_the_company_search_go_in_one_round_trip(self) -> None:
        """A new lone person: identity read, email read, contact search and company search
        side by side, then the company and the contact created: three round trips."""
        sandbox = HubSpotSandbox(tokens=[TOKEN])
        settings = ConnectorSettings("hubspot", "hubspot", "http://sandbox.test")
        wire = RecordingTransport.over(sandbox.app)
        crm = HubSpotCRM(settings, TOKEN, transport=wire, limiter=Unlimited())
        await crm.upsert_contacts([person(1)])  # syncd's properties made, account known
        sent = await lone_add(crm, sandbox, 2)
        lookups = [r for r in sent if r.path.endswith(("/batch/read", "/search"))]
        writes = [r for r in sent if r.path.endswith("/batch/create")]
        assert len(lookups) == 4, [r.path for r in sent]
        assert side_by_side(lookups)
        assert [r.path.split("/")[4] for r in writes] == ["companies", "contacts"]
        assert min(w.started for w in writes) >= max(r.at for r in lookups)

    async def test_a_bulk_still_asks_only_about_who_the_identity_read_missed(self) -> None:
        """In a batch, people syncd wrote before cost the identity read alone."""
        sandbox = HubSpotSandbox(tokens=[TOKEN])
        settings = ConnectorSettings("hubspot", "hubspot", "http://sandbox.test")
        wire = RecordingTransport.over(sandbox.app)
        crm = HubSpotCRM(settings, TOKEN, transport=wire, limiter=Unlimited())
        people = [person(n) for n in range(10, 20)]
        await crm.upsert_contacts(people)
        wire.sent.clear()
        outcomes = await crm.upsert_contacts(people)
        await crm.aclose()
        assert {o.outcome for o in outcomes} == {"unchanged"}
        assert len(wire.sent) == 1


class TestPipedriveLoneAdd:
    async def test_the_person_and_organisation_refreshes_go_side_by_side(self) -> None:
        """A new lone person once the listings exist: persons and organisations refreshed
        side by side, then the organisation and the person created: three round trips."""
        sandbox = PipedriveSandbox(tokens=[TOKEN])
        base = "http://sandbox.test"
        settings = ConnectorSettings("pipedrive", "pipedrive", base, options={"oauth_url": base})
        crm = PipedriveCRM(settings, TOKEN, transport=httpx.ASGITransport(app=sandbox.app))
        await crm.upsert_contacts([person(1)])  # fields made, listings started
        await crm.upsert_contacts([person(2)])
        sent = await lone_add(crm, sandbox, 3)
        assert [(r.method, r.path) for r in sent[2:]] == [
            ("POST", "/api/v2/organizations"),
            ("POST", "/api/v2/persons"),
        ]
        refreshes = sent[:2]
        assert {r.path for r in refreshes} == {"/api/v2/persons", "/api/v2/organizations"}
        assert side_by_side(refreshes)


class TestSourceRead:
    async def test_profile_and_contact_info_go_side_by_side(self) -> None:
        sandbox = LinkedInSandbox(tokens=[TOKEN])
        public_id = sandbox.public_ids()[0]
        settings = ConnectorSettings("source", "linkedin", "http://sandbox.test/api")
        source = LinkedInSource(settings, TOKEN, transport=RecordingTransport.over(sandbox.app))
        await source.fetch_person(public_id)  # the first answer tells the source's limits
        sandbox.core.latency_ms = LATENCY_MS
        seen = len(sandbox.core.requests)
        await source.fetch_person(public_id)
        await source.aclose()
        reads = sandbox.core.requests[seen:]
        assert len(reads) == 2
        assert side_by_side(reads)


class TestGather:
    async def test_results_come_in_call_order(self) -> None:
        async def slow() -> int:
            await anyio.sleep(0.02)
            return 1

        async def fast() -> int:
            return 2

        assert await gather([slow, fast]) == [1, 2]
        assert await both(fast, slow) == (2, 1)

    async def test_the_first_error_comes_out_unwrapped_and_stops_the_others(self) -> None:
        finished: list[str] = []

        async def fails() -> int:
            raise KeyError("the first")

        async def waits() -> int:
            await anyio.sleep(5)
            finished.append("waits")
            return 0

        with anyio.fail_after(2), pytest.raises(KeyError, match="the first"):
            await gather([waits, fails])
        assert finished == []
