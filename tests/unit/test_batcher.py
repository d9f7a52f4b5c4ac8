"""Coalescing: what piles up for one CRM leaves in one call; each waiter gets its outcome."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from connectors.base import Contact, TargetOutcome
from sync.batcher import Batcher
from sync.errors import RetryableError


def person(n: int) -> Contact:
    return Contact(f"urn:li:member:{n}", {"first_name": f"P{n}"})


class GatedCRM:
    """Upserts that wait for ``gate`` and record each call's size."""

    def __init__(self, error: Exception | None = None) -> None:
        self.gate = anyio.Event()
        self.calls: list[int] = []
        self.error = error

    async def upsert(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        self.calls.append(len(contacts))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return [TargetOutcome("created", id=c.member_id.rsplit(":", 1)[1]) for c in contacts]


async def _submit_all(batcher: Batcher, crm: GatedCRM, count: int) -> dict[int, object]:
    results: dict[int, object] = {}

    async def one(n: int) -> None:
        try:
            results[n] = await batcher.submit(person(n))
        except RetryableError as error:
            results[n] = error

    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        async with anyio.create_task_group() as submitters:
            submitters.start_soon(one, 0)
            await anyio.wait_all_tasks_blocked()  # the first call is in flight, at the gate
            for n in range(1, count):
                submitters.start_soon(one, n)
            await anyio.wait_all_tasks_blocked()  # every other contact waits in line
            crm.gate.set()
        tg.cancel_scope.cancel()
    return results


async def test_waiting_contacts_leave_in_one_call() -> None:
    """One call in flight; the seven that arrive meanwhile go out together, in order."""
    crm = GatedCRM()
    results = await _submit_all(Batcher(crm.upsert, in_flight=1), crm, 8)
    assert crm.calls == [1, 7]
    assert {n: r.id for n, r in results.items() if isinstance(r, TargetOutcome)} == {
        n: str(n) for n in range(8)
    }


async def test_batch_size_is_capped() -> None:
    """No call carries more than ``max_batch`` contacts."""
    crm = GatedCRM()
    await _submit_all(Batcher(crm.upsert, max_batch=3, in_flight=1), crm, 8)
    assert crm.calls == [1, 3, 3, 1]


async def test_an_error_reaches_every_waiter_of_its_batch() -> None:
    """What stops a call is raised to each selection in it, to be reported per selection."""
    crm = GatedCRM(error=RetryableError("hubspot", "hubspot is unavailable", status=503))
    results = await _submit_all(Batcher(crm.upsert, in_flight=1), crm, 3)
    assert all(isinstance(r, RetryableError) for r in results.values())
    assert len(results) == 3


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_lone_contact_is_sent_at_once(in_flight: int) -> None:
    """Nothing waits for company: one submission is one immediate call."""
    crm = GatedCRM()
    crm.gate.set()
    batcher = Batcher(crm.upsert, in_flight=in_flight)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        outcome = await batcher.submit(person(5))
        tg.cancel_scope.cancel()
    assert (outcome.outcome, outcome.id, crm.calls) == ("created", "5", [1])


class TestLinger:
    """A backlog lets a batch wait for company; a lone selection never waits."""

    async def test_a_backlog_is_gathered_into_one_call(self) -> None:
        """Five selections pending, arriving one by one: one call of five, not 1 + 4."""
        crm = GatedCRM()
        crm.gate.set()
        batcher = Batcher(crm.upsert, linger=30.0, backlog=lambda: 5)
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            async with anyio.create_task_group() as submitters:
                for n in range(5):
                    submitters.start_soon(batcher.submit, person(n))
                    await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        assert crm.calls == [5]

    async def test_a_lone_selection_goes_at_once(self) -> None:
        """Nothing else pending: the call is made without waiting out the linger."""
        crm = GatedCRM()
        crm.gate.set()
        batcher = Batcher(crm.upsert, linger=3600.0, backlog=lambda: 1)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                await tg.start(batcher.run)
                outcome = await batcher.submit(person(1))
                tg.cancel_scope.cancel()
        assert outcome.outcome == "created"
        assert crm.calls == [1]
