"""P5 under fault injection: every CRM down, throttled, cut mid-request, its answer lost after
the write, its tokens expired — and still exactly one record per person in every CRM, or a
clear failure. The real CLI in a subprocess, the daemon in this process, every sandbox
behind a loopback fault proxy (see rig/faultnet.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from connectors.linkedin.sandbox.samples import generated_people
from rig.stack import Stack, throwaway_stack
from sync.retry import RetryPolicy

pytestmark = pytest.mark.slow

#: Fast retries, and a budget long enough to wait out a few-second outage.
RETRY = RetryPolicy(attempts=400, initial_delay=0.05, max_delay=0.5, deadline=150)


def people(stack: Stack, count: int) -> list[str]:
    """``count`` fresh people in the source; their refs."""
    extra = generated_people(count)
    stack.source.as_source.add_people(extra)
    stack.source.as_source.set_rate_limit(100_000, 1.0)
    return [p["profile"]["publicId"] for p in extra]


def identities(stack: Stack) -> dict[str, int]:
    """Per CRM: how many records carry a member id more than once (duplicates)."""
    out = {}
    for name, sb in stack.crms.items():
        rows = sb.as_crm.rows()
        emails = [r["email"] for r in rows if r["email"]]
        out[name] = len(emails) - len(set(emails))
    return out


def journal_files(stack: Stack) -> list[Path]:
    return sorted((stack.root / "state" / "journal").glob("*.sj"))


async def relay_through(
    tmp_path: Path, count: int, fault: Callable[[Stack], None]
) -> tuple[Stack, str, int]:
    """Open a stack, inject ``fault``, add ``count`` people, return (stack, output, code).

    The stack is closed when this returns; its sandboxes keep their records for counting.
    """
    async with throwaway_stack(tmp_path, retry=RETRY) as stack:
        refs = people(stack, count)
        fault(stack)
        output, code, _ = await stack.cli("add-contact", *refs)
        assert not journal_files(stack), "a delivered selection left its journal entry"
    return stack, output, code


def assert_exactly_once(stack: Stack, count: int) -> None:
    assert stack.record_counts() == dict.fromkeys(stack.crms, count)
    assert identities(stack) == dict.fromkeys(stack.crms, 0)


async def test_every_crm_down_for_two_seconds(tmp_path: Path) -> None:
    """Connections refused for 2 s, then back: everyone arrives once."""

    def outage(stack: Stack) -> None:
        for sb in stack.crms.values():
            sb.sandbox.core.network.outage(2.0)

    stack, output, code = await relay_through(tmp_path, 12, outage)
    assert code == 0, output
    assert all(sb.sandbox.core.network.outages == 1 for sb in stack.crms.values())
    assert_exactly_once(stack, 12)


async def test_a_429_storm(tmp_path: Path) -> None:
    """Twenty 429s with Retry-After on every CRM: waited out, nothing doubled."""

    def storm(stack: Stack) -> None:
        for sb in stack.crms.values():
            sb.sandbox.core.fail_next(429, retry_after=0, count=20)

    stack, output, code = await relay_through(tmp_path, 12, storm)
    assert code == 0, output
    for sb in stack.crms.values():
        assert [r.status for r in sb.sandbox.core.requests].count(429) == 20
    assert_exactly_once(stack, 12)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("reset", id="reset-before-the-write"),
        pytest.param("lose_response", id="answer-lost-after-the-write"),
    ],
)
async def test_a_cut_connection_neither_loses_nor_doubles(tmp_path: Path, kind: str) -> None:
    """The connection is cut before the CRM sees the write (sent again), or after the CRM
    applied it and before the answer arrived (found again by identity): written once."""

    def cut(stack: Stack) -> None:
        for sb in stack.crms.values():
            method, prefix = sb.as_crm.WRITE_REQUEST
            sb.sandbox.core.break_next(kind, count=3, path_prefix=prefix, method=method)

    stack, output, code = await relay_through(tmp_path, 12, cut)
    assert code == 0, output
    assert_exactly_once(stack, 12)


async def test_salesforce_api_limit_is_throttling(tmp_path: Path) -> None:
    """403 REQUEST_LIMIT_EXCEEDED is waited out like a 429, never taken for a bad token."""

    def limit(stack: Stack) -> None:
        stack.crms["salesforce"].sandbox.core.fail_next(403, count=5, path_prefix="/services/data/")

    stack, output, code = await relay_through(tmp_path, 6, limit)
    assert code == 0, output
    assert_exactly_once(stack, 6)


async def test_tokens_expire_mid_run(tmp_path: Path) -> None:
    """Salesforce's session expires (refreshed, delivered); HubSpot's private-app token is
    revoked (no refresh possible: a clear auth failure, exit 4, status says so)."""
    async with throwaway_stack(tmp_path, retry=RETRY) as stack:
        refs = people(stack, 8)
        output, code, _ = await stack.cli("add-contact", *refs[:4])
        assert code == 0, output
        stack.crms["salesforce"].sandbox.core.expire_tokens()
        stack.crms["hubspot"].sandbox.core.expire_tokens()
        output, code, _ = await stack.cli("add-contact", *refs[4:], "--to", "salesforce")
        assert code == 0, output
        output, code, _ = await stack.cli("add-contact", refs[4], "--to", "hubspot")
        assert code == 4, output
        assert "syncd auth set hubspot" in output
        status, _, _ = await stack.cli("status", "--json")
        assert json.loads(status)["crms"]["hubspot"]["health"] == "auth"
    assert stack.record_counts()["salesforce"] == 8
    assert stack.record_counts()["hubspot"] == 4


@pytest.mark.timeout(600)
async def test_many_selections_through_every_fault_at_once(tmp_path: Path) -> None:
    """1 000 people while every CRM goes down, throttles, resets and loses answers."""

    def everything(stack: Stack) -> None:
        for sb in stack.crms.values():
            core = sb.sandbox.core
            method, prefix = sb.as_crm.WRITE_REQUEST
            core.fail_next(429, retry_after=0, count=10)
            core.fail_next(503, count=5)
            core.break_next("reset", count=3)
            core.break_next("lose_response", count=3, path_prefix=prefix, method=method)
            core.latency_ms = 5

    async def outage_later(stack: Stack) -> None:
        await anyio.sleep(1.0)
        for sb in stack.crms.values():
            sb.sandbox.core.network.outage(1.0)

    async with throwaway_stack(tmp_path, retry=RETRY) as stack:
        refs = people(stack, 1000)
        everything(stack)
        async with anyio.create_task_group() as tg:
            tg.start_soon(outage_later, stack)
            output, code, _ = await stack.cli("add-contact", *refs)
        assert code == 0, "\n".join(ln for ln in output.splitlines() if ": created " not in ln)
        assert not journal_files(stack)
    assert_exactly_once(stack, 1000)
