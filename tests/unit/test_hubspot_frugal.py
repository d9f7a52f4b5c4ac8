"""HubSpot in bulk: requests per person (counts, not timings), and a limiter that reads the
app's remaining requests and slows down before the portal answers 429."""

from __future__ import annotations

import itertools
import random
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest

from connectors._ratelimit import Unlimited
from connectors.base import ConnectorSettings, Contact
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.ratelimit import SearchPace, SharedWindow, search_limited
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

    async def test_our_own_requests_side_by_side_are_not_others(self) -> None:
        """Four requests of ours in flight at once (a lone add's lookups): the window counts
        all four before the first answer arrives, and that is no reason to pause."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        async with window.slot():  # the first answer tells the limits (one at a time till then)
            window.observe(answer(99))
        async with AsyncExitStack() as stack:
            for _ in range(4):
                await stack.enter_async_context(window.slot())
            for _ in range(4):
                window.observe(answer(95))  # the server counted all four on arrival
        async with window.slot():
            pass
        assert window.waits == []
        assert window.share == 1.0

    async def test_others_filling_the_window_slow_it_down(self) -> None:
        """With others' requests in the window, pauses grow as the remaining count falls,
        and no request goes out into an empty window."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep, rng=NoJitter())
        pauses = []
        for remaining in (80, 40, 20, 12, 3):
            async with window.slot():
                window.observe(answer(remaining))
            before = clock.now
            async with window.slot():
                pass
            pauses.append(clock.now - before)
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(pauses))  # float noise aside
        assert pauses[0] < 1.0 < pauses[2]
        assert pauses[-1] >= 5.0

    async def test_a_crowded_window_keeps_a_request_free_per_client(self) -> None:
        """23 left, 76 of the 77 used are others': many clients, each of which may send one
        more before it sees the window fill. The brake keeps one request free per client it
        can tell is there (capped at half the window), so we wait a whole window; with only
        the fixed reserve of 10 we would go again after 3 s and meet a full window."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep, rng=NoJitter())
        async with window.slot():
            window.observe(answer(23))
        before = clock.now
        async with window.slot():
            pass
        assert clock.now - before == pytest.approx(10.0)


class NoJitter(random.Random):
    """Jitter's lowest draw every time: the brake's own pauses, without the random stretch
    that keeps a team out of step (tested apart, below)."""

    def uniform(self, a: float, b: float) -> float:
        return a


def search_429() -> httpx.Response:
    """The search limit's 429: no window headers, on a search path."""
    request = httpx.Request("POST", "https://api.hubapi.com/crm/v3/objects/contacts/search")
    return httpx.Response(429, request=request)


class TestTeamPacing:
    """Jittered pauses and searches keep a team that starts together out of step."""

    async def test_the_first_request_waits_for_an_answer_before_a_second(self) -> None:
        """Before the first answer has told the window, only one request is sent."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        sent = []

        async def one() -> None:
            async with window.slot():
                sent.append(clock.now)
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
            await anyio.sleep(0.005)
            assert len(sent) == 1
            window.observe(answer(99))
        assert len(sent) == 2

    async def test_a_pause_is_never_shorter_than_the_brake(self) -> None:
        """Jitter only stretches a pause: a nearly empty window still waits a whole one."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep, rng=random.Random(1))  # noqa: S311 -- a seeded jitter
        async with window.slot():
            window.observe(answer(5))
        async with window.slot():
            pass
        assert 10.0 <= window.waits[0] <= 12.5

    async def test_a_teams_first_search_goes_out_at_a_random_moment_of_its_gap(self) -> None:
        """With a twentieth of the window, our first search waits a random part of our gap."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        window.share = 0.05
        pace = SearchPace(window, clock=clock.monotonic, sleep=clock.sleep, rng=random.Random(2))  # noqa: S311 -- a seeded jitter
        async with pace.slot():
            pass
        async with pace.slot():
            pass
        assert pace.gap() == pytest.approx(1 / (4 * 0.5 * 0.05))
        assert 0 < pace.waits[0] < pace.gap()
        assert pace.waits[1] == pytest.approx(pace.gap())

    async def test_a_search_429_backs_off_searches_not_the_window(self) -> None:
        """A 429 of the search limit pushes our next search back and leaves the window open."""
        clock = FakeClock()
        window = SharedWindow(clock=clock.monotonic, sleep=clock.sleep)
        pace = SearchPace(window, clock=clock.monotonic, sleep=clock.sleep)
        assert search_limited(search_429())
        window.observe(search_429())
        pace.observe(search_429())
        async with window.slot():
            pass
        assert window.waits == []
        async with pace.slot():
            pass
        assert pace.waits
        assert pace.waits[0] > 0
