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
