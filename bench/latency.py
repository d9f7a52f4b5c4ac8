"""Wall time of one `syncd add-contact` through the real CLI, daemon and loopback sandboxes.

    python -m bench.latency [--runs 15] [--crms hubspot,pipedrive,...] [--fan-out]

Each run is a fresh `syncd add-contact` process (interpreter start, config read, control
socket round trip, the relay to every configured CRM, the answer), timed from outside.
"First add" runs use a different person each time (creates); "re-add" runs repeat one person
(the CRM already holds them). Medians are printed, with `syncd status` as the floor a
thin-client command costs on this machine. ``--fan-out`` measures one CRM (HubSpot) and
every CRM in the same run and prints the ratio: what fanning out to three CRMs costs over one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import anyio

from rig.stack import Stack, throwaway_stack


async def _timed(stack: Stack, runs: int, *args: str) -> list[float]:
    times = []
    for _ in range(runs):
        output, code, seconds = await stack.cli(*args)
        if code != 0:
            raise SystemExit(f"`syncd {' '.join(args)}` exited {code}: {output.strip()}")
        times.append(seconds)
    return times


async def measure(runs: int, crms: list[str] | None, root: Path) -> dict[str, float]:
    async with throwaway_stack(root, crms=crms) as stack:
        ids = stack.source.as_source.public_ids()
        refs = [f"https://www.linkedin.example/in/{pid}/" for pid in ids]
        first = []
        for ref in refs[:runs]:
            first += await _timed(stack, 1, "add-contact", ref)
        again = await _timed(stack, runs, "add-contact", refs[0])
        status = await _timed(stack, runs, "status")
    return {
        "first add": statistics.median(first),
        "re-add": statistics.median(again),
        "status": statistics.median(status),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--crms", help="comma-separated CRM types (default: every one)")
    parser.add_argument("--fan-out", action="store_true", help="one CRM vs every CRM, one run")
    args = parser.parse_args()
    setups = [["hubspot"], None] if args.fan_out else [args.crms.split(",") if args.crms else None]
    results = []
    for crms in setups:
        root = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
        try:
            result = anyio.run(measure, args.runs, crms, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results.append(result)
        label = ",".join(crms) if crms else "every CRM"
        for name, seconds in result.items():
            print(f"{name:10} median {seconds * 1000:7.1f} ms  ({args.runs} runs, {label})")
    if args.fan_out:
        one, every = results
        for name in ("first add", "re-add"):
            print(f"{name}: every CRM / one CRM = {every[name] / one[name]:.2f}")


if __name__ == "__main__":
    main()
