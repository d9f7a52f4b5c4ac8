"""HubSpot in bulk: requests per person (counts, not timings), and a limiter that reads the
app's remaining requests and slows down before the portal answers 429."""

from __future__ import annotations

import itertools

import httpx

from connectors._ratelimit import Unlimited
from connectors.base import ConnectorSettings, Contact
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.ratelimit import SharedWindow
from connectors.hubspot.sandbox.app import HubSpotSandbox
from tests.doubles import FakeClock, RecordingTransport

TOKEN = "tok-frugal"


def bulk(count: int) -> list[Contact]:
    out = []
    for n in range(1000, 1000 + count):
        fields = {
            "first_name": f"First{n}",
            "last_name": f"Last{n}",
            "email": f"person.{n}@company-{n % 7}.example",
            "company": f"Company {n % 7}",
            "title": "Buyer",
            "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
        }
        out.append(Contact(f"urn:li:member:{n}", fields))
    return out


async def relay(crm: HubSpotCRM, people: list[Contact]) -> list[str]:
    outcomes: list[str] = []
    for start in range(0, len(people), 100):
        outcomes += [o.outcome for o in await crm.upsert_contacts(people[start : start + 100])]
    return outcomes


class TestRequestsPerPerson:
    """Bulks of 100 cost a few requests per batch, not per person."""

    async def test_new_and_unchanged_bulks(self) -> None:
        """200 new people take at most 0.1 requests each; the same 200 again at most 0.02."""
        sandbox = HubSpotSandbox(tokens=[TOKEN])
        wire = RecordingTransport.over(sandbox.app)
        settings = ConnectorSettings("hubspot", "hubspot", "http://sandbox.test")
        crm = HubSpotCRM(settings, TOKEN, transport=wire, limiter=Unlimited())
        people = bulk(200)
        assert await relay(crm, people) == ["created"] * 200
        new = len(wire.sent)
        wire.sent.clear()
        assert await relay(crm, people) == ["unchanged"] * 200
        unchanged = len(wire.sent)
        await crm.aclose()
        assert new / 200 <= 0.1
        assert unchanged / 200 <= 0.02
        assert len(wire.to("/crm/v3/objects/contacts/search")) == 0

    async def test_a_hand_entered_url_is_still_found_by_one_search(self) -> None:
        """A record someone made with only the profile URL is matched by it, not duplicated."""
        sandbox = HubSpotSandbox(tokens=[TOKEN])
        wire = RecordingTransport.over(sandbox.app)
        settings = ConnectorSettings("hubspot", "hubspot", "http://sandbox.test")
        crm = HubSpotCRM(settings, TOKEN, transport=wire, limiter=Unlimited())
        people = bulk(100)
        await crm.upsert_contacts(people[:1])  # syncd's properties now exist
        made = sandbox.store.create(
            sandbox.store.validate(
                {"syncd_linkedin_url": "linkedin.com/in/PERSON-1050/", "firstname": "P"}
            )
        )
        wire.sent.clear()
        outcomes = await crm.upsert_contacts(people[1:])
        await crm.aclose()
        assert outcomes[49].outcome == "updated"
        assert outcomes[49].id == made.id
        assert len(wire.to("/crm/v3/objects/contacts/search")) == 1


def answer(remaining: int, limit: int = 100) -> httpx.Response:
    headers = {
        "X-HubSpot-RateLimit-Max": str(limit),
        "X-HubSpot-RateLimit-Remaining": str(remaining),
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    return httpx.Response(200, headers=headers)


class TestSharedWindow:
    """The limiter sees the rest of the team in -Remaining and brakes before a 429."""

    async def test_alone_it_does_not_pause(self) -> None:
        """When the window holds only our own requests, nothing waits."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        for used in range(1, 51):
            async with window.slot():
                window.observe(answer(100 - used))
        assert window.waits == []

    async def test_others_filling_the_window_slow_it_down(self) -> None:
        """With others' requests in the window, pauses grow as the remaining count falls,
        and no request goes out into an empty window."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        pauses = []
        for remaining in (80, 40, 20, 12, 3):
            async with window.slot():
                window.observe(answer(remaining))
            before = clock.now
            async with window.slot():
                pass
            pauses.append(clock.now - before)
        assert all(b >= a for a, b in itertools.pairwise(pauses))
        assert pauses[0] < 1.0 < pauses[2]
        assert pauses[-1] >= 5.0
