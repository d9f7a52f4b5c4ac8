"""The whole benchmark in one run: scenarios 1 to 5, one table, one JSON summary."""

from __future__ import annotations

import importlib
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio

from bench import idle, interactive
from bench.bulk import BulkRun, bulk
from bench.plans import PIPEDRIVE_DAILY_TOKENS

CRMS = ("hubspot", "pipedrive", "salesforce")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Config:
    """How big each scenario is."""

    people: int  # scenario 1, per run
    naive_people: int
    latency_ms: int
    add_runs: int  # scenario 2 and 3
    idle_seconds: float  # scenario 4
    drain: int
    drain_patience: float
    team_daemons: int  # scenario 5
    team_people: int  # per daemon
    quick: bool
    add_spacing: float = interactive.SPACING  # scenario 2: from one add's start to the next


FULL = Config(2000, 200, 25, 50, 60.0, 50_000, 1800.0, 20, 100, False)
QUICK = Config(150, 20, 25, 20, 10.0, 1000, 30.0, 20, 10, True)
#: The smallest configuration, for the test that keeps the harness from rotting.
SMOKE = Config(20, 3, 0, 4, 1.0, 20, 15.0, 2, 10, True, add_spacing=0.0)


def _in_tmp(measure: Callable[[Path], Awaitable[T]]) -> T:
    root = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    try:
        return anyio.run(measure, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _bulk(config: Config, crms: list[str], root: Path) -> BulkRun:
    return await bulk(root, crms, config.people, config.naive_people, config.latency_ms)


def _team(config: Config) -> dict[str, Any] | None:
    try:
        run_team = importlib.import_module("bench.team").run_team
    except (ImportError, AttributeError):
        return None
    result: dict[str, Any] = run_team(config.team_daemons, config.team_people, config.quick)
    return result


@dataclass(slots=True)
class Results:
    config: Config
    bulk: dict[str, BulkRun]
    add: interactive.Interactive
    idle: idle.IdleFigures
    team: dict[str, Any] | None
    seconds: float


def run_suite(config: Config) -> Results:
    """Every scenario, one after the other, each on a fresh stack."""
    started = time.perf_counter()
    runs: dict[str, BulkRun] = {}
    for crms in [[c] for c in CRMS] + [list(CRMS)]:
        label = crms[0] if len(crms) == 1 else "all three"
        runs[label] = _in_tmp(partial(_bulk, config, crms))
    add = _in_tmp(
        lambda root: interactive.measure(
            root, config.add_runs, config.latency_ms, config.add_spacing
        )
    )
    figures = _in_tmp(
        lambda root: idle.measure(root, config.idle_seconds, config.drain, config.drain_patience)
    )
    team = _team(config)
    return Results(config, runs, add, figures, team, time.perf_counter() - started)


def _team_figure(team: dict[str, Any] | None, key: str) -> float | None:
    value = (team or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def summary(r: Results) -> dict[str, Any]:
    """The JSON object of ``--json``."""
    every = r.bulk["all three"]
    pipedrive_new = r.bulk["pipedrive"].new
    tokens = pipedrive_new.crms["pipedrive"].tokens / pipedrive_new.people
    return {
        "ceiling_ratio": {n: round(t.ceiling_ratio(n), 3) for n, t in every.new.crms.items()},
        "requests_per_person": {
            n: round(r.bulk[n].new.crms[n].requests / r.bulk[n].new.people, 3) for n in CRMS
        },
        "requests_per_unchanged_person": {
            n: round(r.bulk[n].again.crms[n].requests / r.bulk[n].again.people, 3) for n in CRMS
        },
        "pipedrive_tokens_per_person": round(tokens, 2),
        "pipedrive_lite_new_people_per_day": int(PIPEDRIVE_DAILY_TOKENS / tokens) if tokens else 0,
        "throttled": {
            n: r.bulk[n].new.crms[n].throttled + r.bulk[n].again.crms[n].throttled for n in CRMS
        },
        "people_per_s": {k: round(v.new.people / v.new.seconds, 2) for k, v in r.bulk.items()},
        "naive_people_per_s": {
            n: round(r.bulk[n].naive[n].people / r.bulk[n].naive[n].seconds, 2) for n in CRMS
        },
        "add_overhead_ms_p50": round(r.add.overhead_ms, 1),
        "add_round_trips_deep": round(r.add.depth, 1),
        "status_vs_bare": round(r.add.status_ratio, 2),
        "no_wait_vs_bare": round(r.add.no_wait_ratio, 2),
        "idle_rss_mb": round(r.idle.idle_rss_mb, 1),
        "idle_wakeups_per_s": round(r.idle.wakeups_per_s, 2),
        "peak_rss_mb": round(r.idle.peak_rss_mb, 1),
        "team_429_share": _team_figure(r.team, "team_429_share"),
        "team_utilisation": _team_figure(r.team, "team_utilisation"),
        "seconds": round(r.seconds, 1),
    }


def _per(n: float, d: float) -> str:
    return f"{n / d:.2f}" if d else "n/a"


def table(r: Results) -> str:
    """The human table: one line per bulk run and CRM, then the other scenarios."""
    c = r.config
    lines = [
        f"syncd bench ({'quick' if c.quick else 'full'}): {c.people} people per bulk run, "
        f"{c.latency_ms} ms per request, small-plan limits; {platform.node()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}",
        "",
        "1. bulk: new then unchanged",
        "| run | CRM | people/s | req/new person | req/unchanged | tokens/person | 429s "
        "| ceiling ratio | naive people/s | naive req/person | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in r.bulk.items():
        for name, t in run.new.crms.items():
            again = run.again.crms[name]
            nv = run.naive.get(name)
            rate = run.new.people / run.new.seconds
            naive_rate = nv.people / nv.seconds if nv and nv.seconds else 0.0
            tokens = _per(t.tokens, run.new.people) if name == "pipedrive" else "-"
            lines.append(
                f"| {label} | {name} | {rate:.2f} | {_per(t.requests, run.new.people)} | "
                f"{_per(again.requests, run.again.people)} | {tokens} | "
                f"{t.throttled + again.throttled} | {t.ceiling_ratio(name):.2f} | "
                + (f"{naive_rate:.2f} | {_per(nv.requests, nv.people)} | "
                   f"{rate / naive_rate:.1f}x |" if nv and naive_rate else "- | - | - |")
            )  # fmt: skip
    s = summary(r)
    unenforced = sorted({m for run in r.bulk.values() for m in run.unenforced})
    a, i = r.add, r.idle
    lines += [
        "ceiling ratio: the request rate over the binding limit (HubSpot 100/10 s or search "
        "5/s; Pipedrive 20/2 s or search 10/2 s; Salesforce: peak concurrent requests / 25)",
        f"pipedrive: {s['pipedrive_tokens_per_person']} tokens per new person -> "
        f"{s['pipedrive_lite_new_people_per_day']} new people/day on one Lite seat (30 000)",
        "limits not enforced by a sandbox: " + ("; ".join(unenforced) or "none"),
        "",
        f"2. one add-contact (new person, every CRM), {a.runs} runs "
        f"{c.add_spacing:.0f} s apart",
        f"   instant CRMs p50/p95 {a.instant_p50 * 1000:.0f}/{a.instant_p95 * 1000:.0f} ms; "
        f"{a.latency_ms} ms per request p50/p95 {a.latent_p50 * 1000:.0f}/"
        f"{a.latent_p95 * 1000:.0f} ms",
        f"   syncd's own time beyond `syncd status` and the sandboxes' answering p50 "
        f"{a.overhead_ms:.0f} ms; "
        f"round trips deep {a.depth:.1f}"
        if a.latency_ms else f"   syncd's own time beyond `syncd status` and the sandboxes' "
        f"answering p50 {a.overhead_ms:.0f} ms",
        "3. CLI wall time (median)",
        f"   python -c pass {a.bare_p50 * 1000:.0f} ms; status {a.status_p50 * 1000:.0f} ms "
        f"({a.status_ratio:.2f}x); add-contact --no-wait {a.no_wait_p50 * 1000:.0f} ms "
        f"({a.no_wait_ratio:.2f}x)",
        "   top of `python -X importtime` (status): "
        + ", ".join(f"{m} {us / 1000:.1f} ms" for m, us in a.importtime[:6]),
        f"4. daemon alone: idle RSS {i.idle_rss_mb:.1f} MiB, {i.wakeups_per_s:.2f} wake-ups/s "
        f"over {i.idle_seconds:.0f} s; peak RSS {i.peak_rss_mb:.1f} MiB while "
        f"{i.drained}/{i.drain_selections} selections drained in {i.drain_seconds:.0f} s",
        "5. team on one portal: "
        + ("n/a (bench/team.py not there yet)" if r.team is None else
           f"{r.config.team_daemons} daemons, 429 share {s['team_429_share']:.3f}, "
           f"utilisation {s['team_utilisation']:.2f}, lowest daemon "
           f"{_team_figure(r.team, 'team_fair_min') or 0:.2f} of its fair share"),
        "",
        f"took {r.seconds:.0f} s",
    ]  # fmt: skip
    return "\n".join(lines)
