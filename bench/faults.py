"""The P5 fault table: each fault injected into every CRM while people are relayed, counted.

    python -m bench.faults [--people 50] [--only "all of the above"]

For each scenario a fresh throwaway stack (every sandbox behind its fault proxy, a daemon,
the real CLI) relays ``--people`` people while the fault happens, then counts per CRM:
accepted (selections the daemon took), delivered (distinct people the CRM holds),
duplicated (records beyond one per person), lost (accepted people the CRM does not hold),
what was left in the journal, and the residue scan of every file under the stack's dirs
for the people's data and the tokens.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from connectors.linkedin.sandbox.samples import generated_people
from rig.residue import scan
from rig.stack import Stack, throwaway_stack
from sync.retry import RetryPolicy

RETRY = RetryPolicy(attempts=400, initial_delay=0.05, max_delay=0.5, deadline=150)
Fault = Callable[[Stack], None]


def _outage(stack: Stack) -> None:
    for sb in stack.crms.values():
        assert sb.sandbox.core.network is not None  # the stack serves every sandbox behind one
        sb.sandbox.core.network.outage(3.0)


def _storm(stack: Stack) -> None:
    for sb in stack.crms.values():
        sb.sandbox.core.fail_next(429, retry_after=1, count=25)


def _cut(kind: str) -> Fault:
    """Cut 5 writes per CRM: ``"reset"`` before the CRM sees them, ``"lose_response"`` after."""

    def fault(stack: Stack) -> None:
        for sb in stack.crms.values():
            method, prefix = sb.as_crm.WRITE_REQUEST
            sb.sandbox.core.break_next(kind, count=5, path_prefix=prefix, method=method)

    return fault


_reset, _lost = _cut("reset"), _cut("lose_response")


def _garbage(stack: Stack) -> None:
    """5 answers per CRM mangled by a broken proxy: a corrupt gzip body on any request, and on
    writes the CRM applied (so a retry must find what the mangled answer hid)."""
    for sb in stack.crms.values():
        method, prefix = sb.as_crm.WRITE_REQUEST
        sb.sandbox.core.garbage_next("corrupt_gzip", count=3)
        sb.sandbox.core.garbage_next(
            "corrupt_gzip", count=2, path_prefix=prefix, method=method, applied=True
        )


def _expiry(stack: Stack) -> None:
    stack.crms["salesforce"].sandbox.core.expire_tokens()  # OAuth: refreshed


def _api_limit(stack: Stack) -> None:
    stack.crms["salesforce"].sandbox.core.fail_next(403, count=10, path_prefix="/services/data/")


def _everything(stack: Stack) -> None:
    for fault in (_storm, _reset, _lost, _garbage, _expiry, _api_limit):
        fault(stack)
    for sb in stack.crms.values():
        sb.sandbox.core.fail_next(503, count=5)
        sb.sandbox.core.latency_ms = 5


SCENARIOS: dict[str, Fault] = {
    "every CRM down 3 s": _outage,
    "429 storm (25 per CRM)": _storm,
    "reset before the write (5 per CRM)": _reset,
    "answer lost after the write (5 per CRM)": _lost,
    "corrupt gzip answers (5 per CRM, 2 after a write)": _garbage,
    "Salesforce session expired": _expiry,
    "Salesforce 403 REQUEST_LIMIT_EXCEEDED x10": _api_limit,
    "all of the above + 503s + latency": _everything,
}


async def run(name: str, fault: Fault, count: int, root: Path) -> dict[str, object]:
    started = time.perf_counter()
    async with throwaway_stack(root, retry=RETRY) as stack:
        people = generated_people(count)
        stack.source.as_source.add_people(people)
        stack.source.as_source.set_rate_limit(100_000, 1.0)
        refs = [p["profile"]["publicId"] for p in people]
        fault(stack)
        if name.startswith("all"):
            _outage(stack)
        output, code, _ = await stack.cli("add-contact", *refs)
        accepted = output.count(": created ") + output.count(": updated ")
        accepted += output.count(": unchanged ") + output.count(": failed")
        journal = list((root / "state" / "journal").glob("*.sj"))
        emails = {f"person.{n}@" for n in range(1000, 1000 + count)}
        per_crm = {}
        for crm, sb in stack.crms.items():
            rows = sb.as_crm.rows()
            held = [r["email"] for r in rows if r["email"]]
            delivered = {e for e in held if any(e.startswith(x) for x in emails)}
            per_crm[crm] = (len(delivered), len(held) - len(set(held)), count - len(delivered))
        needles = {sb.token: "a token" for sb in stack.running.values()}
        for person in stack.source.as_source.people_data(refs):
            needles |= {v: k for k, v in person.items() if isinstance(v, str) and len(v) >= 4}
    report = scan([root], needles)
    return {
        "exit": code,
        "accepted": accepted // len(per_crm),
        "crms": per_crm,
        "journal": len(journal),
        "residue": len(report.hits),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    args = parser.parse_args()
    print(
        "| fault | exit | accepted | delivered (hubspot/pipedrive/salesforce) | duplicated | "
        "lost | left in journal | residue hits | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, fault in SCENARIOS.items():
        if args.only not in name:
            continue
        root = Path(tempfile.mkdtemp(prefix="syncd-faults-"))
        try:
            r = anyio.run(run, name, fault, args.people, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        crms = r["crms"]
        assert isinstance(crms, dict)
        delivered = "/".join(str(v[0]) for v in crms.values())
        duplicated = sum(v[1] for v in crms.values())
        lost = sum(v[2] for v in crms.values())
        print(
            f"| {name} | {r['exit']} | {r['accepted']} | {delivered} | {duplicated} | {lost} | "
            f"{r['journal']} | {r['residue']} | {r['seconds']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
