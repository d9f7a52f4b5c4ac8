"""Scenario 1: a bulk import, then the same people again, at the small plans' limits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import naive
from bench.plans import Traffic, apply_small_plan, tokens_spent, traffic
from connectors.linkedin.sandbox.samples import generated_people
from rig.stack import Stack, throwaway_stack

FIRST = 1000


@dataclass(slots=True)
class Phase:
    """One CLI import of every ref: wall time and what each CRM saw."""

    people: int
    seconds: float
    failed: int
    crms: dict[str, Traffic] = field(default_factory=dict)


@dataclass(slots=True)
class BulkRun:
    """New people, then the same again, into ``crms``; with the naive baseline when alone."""

    crms: list[str]
    new: Phase
    again: Phase
    naive: dict[str, naive.NaiveRun] = field(default_factory=dict)
    unenforced: list[str] = field(default_factory=list)


async def _phase(stack: Stack, refs_file: Path, people: int) -> Phase:
    before = {n: (len(sb.sandbox.core.requests), tokens_spent(sb)) for n, sb in stack.crms.items()}
    for sb in stack.crms.values():
        sb.sandbox.core.peak_in_flight = 0
    started, wall = time.perf_counter(), time.time()
    output, _, _ = await stack.cli("add-contact", "--from-file", str(refs_file))
    seconds = time.perf_counter() - started
    phase = Phase(people, seconds, output.count(": failed"))
    for name, sb in stack.crms.items():
        phase.crms[name] = traffic(sb, before[name][0], wall, before[name][1])
    return phase


async def bulk(
    root: Path, crms: Sequence[str], people: int, naive_people: int, latency_ms: int
) -> BulkRun:
    """Run scenario 1 on a fresh stack of ``crms`` (the naive baseline only with one CRM)."""
    async with throwaway_stack(root, crms=list(crms), separate=True) as stack:
        unenforced = apply_small_plan(stack.running, latency_ms)
        source = stack.source.as_source
        source.set_rate_limit(1_000_000, 1.0)
        seeded = generated_people(people + naive_people, first_index=FIRST)
        source.add_people(seeded)
        ids = [p["profile"]["publicId"] for p in seeded]
        refs_file = root / "refs.txt"
        refs_file.write_text("".join(f"{pid}\n" for pid in ids[:people]), encoding="utf-8")
        new = await _phase(stack, refs_file, people)
        again = await _phase(stack, refs_file, people)
        run = BulkRun(list(crms), new, again, unenforced=unenforced)
        if len(crms) == 1 and naive_people:
            crm = stack.crms[crms[0]]
            run.naive[crms[0]] = await naive.relay(stack.source, crm, ids[people:])
    return run
