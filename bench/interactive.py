"""Scenario 2 and 3: one interactive add, and the thin CLI's wall time against the floor.

The add is timed from outside (a fresh `syncd add-contact REF` process that waits for the
outcome) with every sandbox answering at once, then with the injected latency: the
difference over the latency is how many sequential round trips are on the critical path.
What syncd adds beyond the sandboxes is, per instant add, its wall time less `syncd status`
(the same CLI and socket round trip, no relay) less the time at least one sandbox was
answering one of its requests (they share the bench's process, so that time is theirs).

Adds start :data:`SPACING` apart, as a person adds people one at a time: each finds the
CRMs' windows as a lone add would. Back to back they would measure the vendors' search
limits instead (HubSpot allows 5 searches a second, a new person takes two), which is the
bulk scenario's business.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from connectors.linkedin.sandbox.samples import generated_people
from rig.sandbox import RecordedRequest
from rig.stack import Stack, syncd_argv, throwaway_stack

FIRST = 1000
#: Seconds from the start of one add to the start of the next: one search window.
SPACING = 1.0


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(slots=True)
class Interactive:
    runs: int
    instant_p50: float
    instant_p95: float
    latent_p50: float
    latent_p95: float
    status_p50: float
    latency_ms: int
    bare_p50: float = 0.0
    status_ratio: float = 0.0
    no_wait_p50: float = 0.0
    no_wait_ratio: float = 0.0
    importtime: list[tuple[str, int]] = field(default_factory=list)
    #: Per instant add: seconds during which some sandbox was answering it.
    answering: list[float] = field(default_factory=list)
    #: Per instant add: its wall time.
    instant: list[float] = field(default_factory=list)

    @property
    def overhead_ms(self) -> float:
        """p50 of what syncd adds: wall less the CLI's floor less the sandboxes' answering."""
        if not self.answering:
            return (self.instant_p50 - self.status_p50) * 1000
        spans = [w - a - self.status_p50 for w, a in zip(self.instant, self.answering, strict=True)]
        return quantile(spans, 0.5) * 1000

    @property
    def depth(self) -> float:
        if not self.latency_ms:
            return 0.0
        return (self.latent_p50 - self.instant_p50) / (self.latency_ms / 1000)


def answering(records: list[RecordedRequest]) -> float:
    """Seconds during which at least one of ``records`` was being answered."""
    total, reach = 0.0, -math.inf
    for r in sorted(records, key=lambda r: r.started):
        if r.at > reach:
            total += r.at - max(r.started, reach)
            reach = r.at
    return total


async def _adds(
    stack: Stack, ids: list[str], spacing: float = 0.0, busy: list[float] | None = None
) -> list[float]:
    """Each add's wall time; ``busy`` gets the sandboxes' answering time of each."""
    times = []
    cores = [sb.sandbox.core for sb in stack.running.values()]
    for public_id in ids:
        started = time.perf_counter()
        seen = [len(core.requests) for core in cores]
        output, code, seconds = await stack.cli("add-contact", public_id)
        if code != 0:
            raise SystemExit(f"`syncd add-contact` exited {code}: {output.strip()[-300:]}")
        times.append(seconds)
        if busy is not None:
            busy.append(
                answering([r for c, n in zip(cores, seen, strict=True) for r in c.requests[n:]])
            )
        await anyio.sleep(max(0.0, started + spacing - time.perf_counter()))
    return times


async def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    await anyio.run_process(argv, stdin=subprocess.DEVNULL, check=False, env=env)
    return time.perf_counter() - started


def importtime(stack: Stack, top: int = 8) -> list[tuple[str, int]]:
    """The modules `syncd status` imports that cost most (cumulative microseconds)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *syncd_argv("status", "--config",
                                                         str(stack.config_path))[1:]],
        capture_output=True, text=True, env=stack.env, check=False,
    )  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if found and len(found.group(3)) <= 2:  # top-level imports only
            rows.append((found.group(4), int(found.group(2))))
    return sorted(rows, key=lambda row: -row[1])[:top]


async def measure(root: Path, runs: int, latency_ms: int, spacing: float = SPACING) -> Interactive:
    """``runs`` adds of new people instant, ``runs`` with latency, and the CLI's floor."""
    async with throwaway_stack(root, separate=True) as stack:
        source = stack.source.as_source
        source.set_rate_limit(1_000_000, 1.0)
        people = generated_people(2 * runs + runs, first_index=FIRST)
        source.add_people(people)
        ids = [p["profile"]["publicId"] for p in people]
        await _adds(stack, ids[:2], spacing)  # first contact with each CRM (fields, tokens) aside
        busy: list[float] = []
        instant = await _adds(stack, ids[2:runs], spacing, busy)
        for sb in stack.running.values():
            sb.sandbox.core.latency_ms = latency_ms
        latent = await _adds(stack, ids[runs : 2 * runs], spacing)
        for sb in stack.running.values():
            sb.sandbox.core.latency_ms = 0
        bare, status, no_wait = [], [], []
        for public_id in ids[2 * runs :]:
            bare.append(await _wall([sys.executable, "-c", "pass"], stack.env))
            status.append((await stack.cli("status"))[2])
            no_wait.append((await stack.cli("add-contact", public_id, "--no-wait"))[2])
        result = Interactive(
            runs=runs,
            instant_p50=quantile(instant, 0.5), instant_p95=quantile(instant, 0.95),
            latent_p50=quantile(latent, 0.5), latent_p95=quantile(latent, 0.95),
            status_p50=statistics.median(status), latency_ms=latency_ms,
        )  # fmt: skip
        result.answering, result.instant = busy, instant
        result.bare_p50 = statistics.median(bare)
        result.status_ratio = result.status_p50 / result.bare_p50
        result.no_wait_p50 = statistics.median(no_wait)
        result.no_wait_ratio = result.no_wait_p50 / result.bare_p50
        result.importtime = importtime(stack)
    return result
