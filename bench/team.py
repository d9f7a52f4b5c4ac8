"""A team on one portal: several daemons relaying new people into one HubSpot app.

    python -m bench.team [--daemons 20] [--people 50] [--quick] [--json]

One HubSpot sandbox on loopback enforces one app-wide window (100 requests per 10 s, the
search endpoints' 5 per second) across every token; each daemon has its own token, its own
real :class:`~connectors.hubspot.client.HubSpotCRM` (default limiter, reading the
``X-HubSpot-RateLimit-*`` headers) and the daemon's own per-CRM :class:`~sync.batcher.Batcher`,
and relays ``--people`` new people of its own, all selected at once. Figures, all from the
sandbox's counts in this run:

- ``team_429_share``: 429 answers / requests the portal received;
- ``team_utilisation``: requests the portal accepted per second while every daemon still had
  work, over the app's limit per second (1.0 = exactly at the ceiling);
- ``team_fair_min`` / ``team_fair_max``: each daemon's requests in that same span over a fair
  share (the span's requests / daemons), lowest and highest.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import anyio

from connectors.base import ConnectorSettings, Contact
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.sandbox.app import HubSpotSandbox
from rig.loopback import bind_loopback, url_of
from sync.asgi import serve
from sync.batcher import Batcher

LIMIT = 100
INTERVAL = 10.0
SEARCH_LIMIT = 5


@dataclass(slots=True)
class Counts:
    """The portal's requests per token: live, and when the first daemon was done."""

    live: Mapping[str, int]
    throttled: Mapping[str, int]
    at_first: dict[str, int] = field(default_factory=dict)
    throttled_at_first: int = 0


def people(daemon: int, count: int) -> list[Contact]:
    """``count`` new people for one daemon, none shared with another daemon."""
    out = []
    for k in range(count):
        n = 10_000 + daemon * 1_000 + k
        out.append(
            Contact(
                f"urn:li:member:{n}",
                {
                    "first_name": f"First{n}",
                    "last_name": f"Last{n}",
                    "email": f"person.{n}@company-{n % 97}.example",
                    "company": f"Company {n % 97}",
                    "title": "Buyer",
                    "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
                },
            )
        )
    return out


async def _daemon(
    url: str, token: str, batch: list[Contact], done: list[float], counts: Counts
) -> None:
    settings = ConnectorSettings("hubspot", "hubspot", url)
    crm = HubSpotCRM(settings, token)
    batcher = Batcher(crm.upsert_contacts)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            async with anyio.create_task_group() as submits:
                for contact in batch:
                    submits.start_soon(batcher.submit, contact)
            tg.cancel_scope.cancel()
    finally:
        await crm.aclose()
    done.append(time.monotonic())
    if not counts.at_first:  # the first daemon done: how many requests each had sent
        counts.at_first = dict(counts.live)
        counts.throttled_at_first = sum(counts.throttled.values())


async def run_team_async(daemons: int, per_daemon: int) -> dict[str, object]:
    """Run the team once; the figures as a dict."""
    tokens = [f"team-{i}" for i in range(daemons)]
    sandbox = HubSpotSandbox(
        tokens=tokens,
        rate_limit=LIMIT,
        rate_interval=INTERVAL,
        app_wide=True,
        search_limit=SEARCH_LIMIT,
    )
    sock = bind_loopback()
    done: list[float] = []
    counts = Counts(sandbox.calls, sandbox.throttled)
    async with anyio.create_task_group() as tg:
        server = await tg.start(partial(serve, sandbox.app, sock, graceful_seconds=1))
        started = time.monotonic()
        async with anyio.create_task_group() as team:
            for i, token in enumerate(tokens):
                team.start_soon(_daemon, url_of(sock), token, people(i, per_daemon), done, counts)
        server.should_exit = True
    finished = time.monotonic()
    busy_until = min(done)  # every daemon still had work until the first one was done
    accepted = sum(counts.at_first.values()) - counts.throttled_at_first
    total = sum(sandbox.calls.values())
    throttled = sum(sandbox.throttled.values())
    busy = max(busy_until - started, 1e-9)
    per = [counts.at_first.get(t, 0) for t in tokens]
    fair = sum(per) / daemons
    return {
        "team_daemons": daemons,
        "team_people": daemons * per_daemon,
        "team_requests": total,
        "team_429s": throttled,
        "team_429_share": throttled / total if total else 0.0,
        "team_utilisation": accepted / busy / (LIMIT / INTERVAL),
        "team_seconds": finished - started,
        "team_busy_seconds": busy,
        "team_fair_min": min(per) / fair,
        "team_fair_max": max(per) / fair,
        "team_finish_spread": (max(done) - busy_until) / max(max(done) - started, 1e-9),
        "team_delivered": sandbox.contact_count(),
    }


def run_team(daemons: int = 20, people: int = 50, quick: bool = False) -> dict[str, object]:
    """The team figures (``quick``: at most 10 people a daemon), for ``python -m bench``."""
    return anyio.run(run_team_async, daemons, min(people, 10) if quick else people)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.team", description=__doc__)
    parser.add_argument("--daemons", type=int, default=20)
    parser.add_argument("--people", type=int, default=50, help="new people per daemon")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run_team(args.daemons, args.people, args.quick)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:22} {value:.3f}" if isinstance(value, float) else f"{key:22} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
