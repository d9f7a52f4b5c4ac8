"""Each CRM client paces itself under its sandbox's rate limit: more requests than the limit
allows go through the real client, concurrently, and the sandbox answers no 429 (no 403
``REQUEST_LIMIT_EXCEEDED`` for Salesforce) while every person is written exactly once.

Each case also runs the same work without a limiter, which must draw refusals: that is
what makes the paced run's "zero" mean something.
HubSpot: https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
Pipedrive: https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting
Salesforce: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from connectors._ratelimit import Limiter, Unlimited
from connectors.base import ConnectorSettings, Contact, TargetOutcome
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.sandbox.app import HubSpotSandbox
from connectors.pipedrive.client import PipedriveCRM
from connectors.pipedrive.sandbox.app import PipedriveSandbox
from connectors.salesforce import ratelimit as salesforce_ratelimit
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.sandbox.app import SalesforceSandbox
from rig.sandbox import SandboxCore
from sync.errors import RetryableError
from sync.retry import RetryPolicy

BASE = "http://sandbox.test"
#: Salesforce sends its token over plain http only to a loopback root.
LOOPBACK = "http://127.0.0.1:8765"
TOKEN = "sandbox-token-ratelimit"
#: Concurrent batches after a warm-up call, and people per batch.
BATCHES, PER_BATCH = 3, 3


class CRMClient:
    """The part of the CRM protocol these tests drive."""

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


@dataclass
class Case:
    """A sandbox with a small limit, and how to point a client at it."""

    sandbox: Any
    core: SandboxCore
    make: Callable[[Limiter | None, RetryPolicy], Any]
    #: The status the vendor refuses an over-limit request with.
    refusal: int


def hubspot() -> Case:
    sandbox = HubSpotSandbox(tokens=[TOKEN], rate_limit=5, rate_interval=0.5)

    def make(limiter: Limiter | None, retry: RetryPolicy) -> HubSpotCRM:
        settings = ConnectorSettings("hubspot", "hubspot", BASE)
        transport = httpx.ASGITransport(app=sandbox.app)
        return HubSpotCRM(settings, TOKEN, transport=transport, retry=retry, limiter=limiter)

    return Case(sandbox, sandbox.core, make, 429)


def pipedrive() -> Case:
    sandbox = PipedriveSandbox(tokens=[TOKEN], burst=15)  # per 2 s, below the default 20

    def make(limiter: Limiter | None, retry: RetryPolicy) -> PipedriveCRM:
        settings = ConnectorSettings("pipedrive", "pipedrive", BASE, options={"oauth_url": BASE})
        transport = httpx.ASGITransport(app=sandbox.app)
        return PipedriveCRM(settings, TOKEN, transport=transport, retry=retry, limiter=limiter)

    return Case(sandbox, sandbox.core, make, 429)


def salesforce() -> Case:
    sandbox = SalesforceSandbox(tokens=[TOKEN], api_limit=8)
    sandbox.usage.window = 1.0  # the org's rolling 24 hours, shrunk to a second

    def make(limiter: Limiter | None, retry: RetryPolicy) -> SalesforceCRM:
        settings = ConnectorSettings(
            "salesforce",
            "salesforce",
            "https://login.salesforce.com",
            options={"login_url": LOOPBACK},
        )
        return SalesforceCRM(
            settings,
            sandbox.credential(TOKEN),
            transport=httpx.ASGITransport(app=sandbox.app),
            retry=retry,
            # The documented limiter, over the shrunk window (a day would hold for a day).
            limiter=limiter or salesforce_ratelimit.limiter(retry.sleep, window=1.0),
        )

    return Case(sandbox, sandbox.core, make, 403)


CASES = [
    pytest.param(hubspot, id="hubspot"),
    pytest.param(pipedrive, id="pipedrive"),
    pytest.param(salesforce, id="salesforce"),
]


def person(n: int) -> Contact:
    return Contact(
        f"urn:li:member:{n}",
        {
            "first_name": f"First{n}",
            "last_name": f"Last{n}",
            "email": f"p{n}@corp.example",
            "company": f"Company {n % 2}",
        },
    )


async def push(crm: CRMClient) -> list[TargetOutcome | BaseException]:
    """A warm-up call, then several batches in flight at once; each batch's outcomes (or
    the error it raised), in order."""
    results: list[TargetOutcome | BaseException] = []

    async def batch(people: Sequence[Contact]) -> None:
        try:
            results.extend(await crm.upsert_contacts(people))
        except RetryableError as error:
            results.append(error)

    await batch([person(0)])
    async with anyio.create_task_group() as group:
        for b in range(BATCHES):
            group.start_soon(batch, [person(1 + b * PER_BATCH + i) for i in range(PER_BATCH)])
    return results


def statuses(core: SandboxCore) -> list[int]:
    return [r.status for r in core.requests]


class TestPacedUnderTheSandboxLimit:
    """More requests than the limit allows, no refusal, every person written once."""

    @pytest.mark.parametrize("build", CASES)
    async def test_no_refusal_and_every_person_once(
        self, build: Callable[[], Case], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The real client against its sandbox draws zero 429s (403s) and writes each once."""
        case = build()
        crm = case.make(None, RetryPolicy())
        started = time.monotonic()
        results = await push(crm)
        elapsed = time.monotonic() - started
        await crm.aclose()
        seen = statuses(case.core)
        with capsys.disabled():
            print(f"\n{case.core.name}: {len(seen)} requests, {seen.count(case.refusal)} "
                  f"refused, {elapsed:.2f} s")  # fmt: skip
        assert case.refusal not in seen
        assert [getattr(r, "outcome", r) for r in results] == ["created"] * len(results)
        assert len(results) == 1 + BATCHES * PER_BATCH
        assert case.sandbox.contact_count() == 1 + BATCHES * PER_BATCH

    @pytest.mark.parametrize("build", CASES)
    async def test_the_same_work_unpaced_is_refused(self, build: Callable[[], Case]) -> None:
        """Without a limiter the same work goes over the limit (so the test above can fail)."""
        case = build()
        crm = case.make(Unlimited(), RetryPolicy(attempts=1))
        await push(crm)
        await crm.aclose()
        assert case.refusal in statuses(case.core)
