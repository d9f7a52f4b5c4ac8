"""A burst of selections: accepted at once, memory per selection, journal size, then a drain.

    python -m bench.burst [--count 50000] [--drain 1000] [--drain-timeout 600] [--trace]

One run on a throwaway stack (every CRM): the daemon is paused, one `syncd add-contact
--from-file F --no-wait` process submits ``--count`` refs (the CLI sends them in chunks of
1 000; each chunk is one journal segment, fsynced before its 202), and we measure the wall
time to accept them all, the daemon's RSS (the daemon runs in this process: current RSS from
``/proc/self/statm`` sampled every 100 ms, and the lifetime peak from ``getrusage``) before,
at peak and after, and the journal on disk, which must hold no plaintext publicId. Then the
daemon resumes until ``--drain`` selections have left the queue; delivered per second is
compared with what the slowest documented CRM limit allows, given the requests each CRM's
sandbox saw per delivered person. Figures are ratios inside this run. ``--trace`` adds
tracemalloc's count of Python heap growth per selection and its largest allocation sites
(slower; RSS then includes tracemalloc's own bookkeeping).

The source sandbox holds only the people the drain can reach (``--drain`` plus a margin):
accepting a selection never reads the source, and seeding is quadratic in the number of
people the sandbox already holds (``LinkedInSandbox.add_people`` scans them all per person).
The CRM sandboxes live in this process too, so RSS during the drain includes the records
and request logs they keep; RSS during acceptance is the daemon's alone (and this driver's).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from connectors.hubspot import ratelimit as hubspot_limits
from connectors.linkedin.sandbox.samples import generated_people
from connectors.pipedrive import ratelimit as pipedrive_limits
from rig.stack import Stack, throwaway_stack
from sync.state import DaemonState

#: generated_people's first index: publicIds are person-<n> from here on.
FIRST = 1000
#: People seeded beyond --drain: what is in flight when the drain target is reached.
SEED_MARGIN = 500
SAMPLE_SECONDS = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024

#: Documented request ceilings per CRM type (requests, seconds): the lowest plan's burst
#: window. Salesforce has no per-second limit, only a rolling 24-hour count.
CEILINGS: dict[str, tuple[int, float]] = {
    "hubspot": (hubspot_limits.BURST_LIMIT, hubspot_limits.BURST_INTERVAL),
    "pipedrive": (pipedrive_limits.BURST_LIMIT, pipedrive_limits.BURST_INTERVAL),
}


def rss_now() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


def rss_max() -> int:
    """The largest resident set this process has had, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss() -> int:
    """RSS after a full collection, so garbage waiting for the collector is not counted."""
    gc.collect()
    return rss_now()


class Sampler:
    """Every 100 ms: current RSS (keeping the peak of the phase) and the daemon's queue;
    sets :attr:`reached` the first time the queue is at or below :attr:`target`."""

    def __init__(self, state: DaemonState) -> None:
        self._state = state
        self.peak = rss_now()
        self.target: int | None = None
        self.reached = anyio.Event()
        self.reached_at = 0.0

    def pending(self) -> int:
        return self._state.pending()

    def new_phase(self) -> None:
        """Start a new peak from the current RSS."""
        self.peak = rss_now()

    def watch_queue(self, target: int) -> anyio.Event:
        """An event set once the queue holds at most ``target`` selections."""
        self.target, self.reached = target, anyio.Event()
        return self.reached

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_now())
            target = self.target
            if target is not None and not self.reached.is_set() and self.pending() <= target:
                self.reached_at = time.perf_counter()
                self.reached.set()
            await anyio.sleep(SAMPLE_SECONDS)


@dataclass(slots=True)
class Figures:
    """Everything one run measured."""

    count: int
    accept_seconds: float = 0.0
    rss_before: int = 0
    rss_peak_accept: int = 0
    rss_after_accept: int = 0
    maxrss_after_accept: int = 0
    tracked: int = 0
    backlog: int = 0
    journal_files: int = 0
    journal_bytes: int = 0
    drain_target: int = 0
    drained: int = 0
    drain_seconds: float = 0.0
    queue_seen: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    rss_peak_drain: int = 0
    rss_after_drain: int = 0
    top_allocations: list[str] = field(default_factory=list)
    traced_growth: int = 0


async def _cli(stack: Stack, *args: str) -> str:
    output, code, _ = await stack.cli(*args)
    if code != 0:
        raise SystemExit(f"`syncd {' '.join(args)}` exited {code}: {output.strip()[-500:]}")
    return output


def _journal(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def _assert_no_plaintext(files: list[Path], public_ids: list[str]) -> None:
    """No journal file holds any of ``public_ids`` (nor any ref prefix) in the clear."""
    needles = [pid.encode() for pid in public_ids] + [b"person-", b"linkedin"]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            if needle in data:
                raise SystemExit(f"journal file {path.name} holds {needle!r} in plaintext")


async def measure(count: int, drain: int, patience: float, trace: bool, root: Path) -> Figures:
    figures = Figures(count)
    public_ids = [f"person-{n}" for n in range(FIRST, FIRST + count)]
    refs_file = root / "refs.txt"
    refs_file.write_text(
        "".join(f"https://www.linkedin.example/in/{pid}\n" for pid in public_ids),
        encoding="utf-8",
    )
    async with throwaway_stack(root) as stack, anyio.create_task_group() as tg:
        assert stack.daemon is not None  # in process: its state is read directly
        state = stack.daemon.state
        journal_dir = root / "state" / "journal"
        source = stack.source.as_source
        source.set_rate_limit(1_000_000, 1.0)
        source.add_people(generated_people(min(count, drain + SEED_MARGIN), first_index=FIRST))
        await _cli(stack, "pause")
        sampler = Sampler(state)
        tg.start_soon(sampler.run)

        # -- acceptance ----------------------------------------------------------------
        figures.rss_before = settled_rss()
        if trace:
            tracemalloc.start()
        before_trace = tracemalloc.take_snapshot() if trace else None
        sampler.new_phase()
        started = time.perf_counter()
        output = await _cli(stack, "add-contact", "--from-file", str(refs_file), "--no-wait")
        figures.accept_seconds = time.perf_counter() - started
        accepted = sum(1 for line in output.splitlines() if line.startswith("sel_"))
        if accepted != count or state.pending() != count:
            raise SystemExit(f"accepted {accepted}, daemon holds {state.pending()} of {count}")
        figures.rss_peak_accept = max(sampler.peak, rss_now())
        figures.rss_after_accept = settled_rss()
        figures.maxrss_after_accept = rss_max()
        if before_trace is not None:
            diff = tracemalloc.take_snapshot().compare_to(before_trace, "lineno")
            figures.top_allocations = [str(stat) for stat in diff[:10]]
            figures.traced_growth = sum(stat.size_diff for stat in diff)
            tracemalloc.stop()
        figures.tracked, figures.backlog = len(state.tracked), len(state.backlog)
        files = _journal(journal_dir)
        figures.journal_files = len(files)
        figures.journal_bytes = sum(p.stat().st_size for p in files)
        sample = [public_ids[0], public_ids[-1], *random.sample(public_ids, min(20, count))]
        _assert_no_plaintext(files, sample)

        # -- drain ---------------------------------------------------------------------
        crms = stack.crms
        requests_before = {n: len(sb.sandbox.core.requests) for n, sb in crms.items()}
        contacts_before = {n: sb.as_crm.contact_count() for n, sb in crms.items()}
        figures.drain_target = min(drain, count)
        reached = sampler.watch_queue(count - figures.drain_target)
        sampler.new_phase()
        started = time.perf_counter()
        await _cli(stack, "resume")
        with anyio.move_on_after(patience):
            await reached.wait()
        ended = sampler.reached_at if reached.is_set() else time.perf_counter()
        figures.drain_seconds = ended - started
        figures.drained = count - state.pending()
        figures.delivered = {
            n: sb.as_crm.contact_count() - contacts_before[n] for n, sb in crms.items()
        }
        figures.requests = {
            n: len(sb.sandbox.core.requests) - requests_before[n] for n, sb in crms.items()
        }
        status = json.loads(await _cli(stack, "status", "--json"))
        figures.queue_seen = int(status["queue"])
        await _cli(stack, "pause")  # what is in flight finishes; the rest stays queued
        figures.rss_peak_drain = max(sampler.peak, rss_now())
        figures.rss_after_drain = settled_rss()
        tg.cancel_scope.cancel()
    return figures


def report(f: Figures) -> None:
    grown = f.rss_after_accept - f.rss_before
    rows: list[tuple[str, str]] = [
        ("selections accepted", f"{f.count}"),
        ("wall time to accept (CLI process)", f"{f.accept_seconds:.2f} s"),
        ("accept rate", f"{f.count / f.accept_seconds:,.0f} selections/s"),
        ("daemon: tracked / backlog", f"{f.tracked} / {f.backlog}"),
        ("RSS before", f"{f.rss_before / MIB:.1f} MiB"),
        ("RSS peak while accepting", f"{f.rss_peak_accept / MIB:.1f} MiB"),
        ("RSS after accepting (after gc)", f"{f.rss_after_accept / MIB:.1f} MiB"),
        ("max RSS of the process so far", f"{f.maxrss_after_accept / MIB:.1f} MiB"),
        ("RSS growth per accepted selection", f"{grown / f.count:,.0f} bytes"),
        ("RSS growth per 1 000 selections", f"{grown / f.count * 1000 / MIB:.2f} MiB"),
        ("peak over before, per selection",
         f"{(f.rss_peak_accept - f.rss_before) / f.count:,.0f} bytes"),
        ("journal on disk", f"{f.journal_files} files, {f.journal_bytes / MIB:.2f} MiB"),
        ("journal bytes per selection", f"{f.journal_bytes / f.count:.0f} bytes"),
        ("journal plaintext publicIds", "none (checked 22 refs and the ref prefix)"),
    ]  # fmt: skip
    rate = f.drained / f.drain_seconds if f.drain_seconds else 0.0
    rows += [
        ("drain target / left the queue", f"{f.drain_target} / {f.drained}"),
        ("queue (`syncd status --json`)", f"{f.queue_seen}"),
        ("drain time to target", f"{f.drain_seconds:.1f} s"),
        ("delivered rate", f"{rate:.2f} selections/s"),
    ]
    bounds: dict[str, float] = {}
    for name, delivered in sorted(f.delivered.items()):
        per_person = f.requests[name] / delivered if delivered else float("nan")
        line = f"{f.requests[name]} requests / {delivered} people = {per_person:.2f} per person"
        if name in CEILINGS and delivered:
            limit, interval = CEILINGS[name]
            bounds[name] = limit / interval / per_person
            line += f"; {limit} per {interval:g} s allows {bounds[name]:.1f} people/s"
        rows.append((f"{name}", line))
    for name, people_per_s in sorted(bounds.items(), key=lambda item: item[1]):
        rows.append((f"delivered rate / {name} ceiling", f"{rate / people_per_s:.2f}"))
    rows += [
        ("RSS peak during drain", f"{f.rss_peak_drain / MIB:.1f} MiB"),
        ("RSS after drain (after gc)", f"{f.rss_after_drain / MIB:.1f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if f.top_allocations:
        per = f.traced_growth / f.count
        print(f"\nPython heap growth while accepting (tracemalloc): {per:,.0f} bytes per selection")
        print("largest allocation growth while accepting:")
        for line in f.top_allocations:
            print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="selections in the burst")
    parser.add_argument("--drain", type=int, default=1000, help="selections to let through")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="give up after (s)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc while accepting")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    try:
        figures = anyio.run(measure, args.count, args.drain, args.drain_timeout, args.trace, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(figures)


if __name__ == "__main__":
    main()
