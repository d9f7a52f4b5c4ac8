"""python -m bench [--quick] [--json]: every benchmark in one run, one table."""

from __future__ import annotations

import argparse
import dataclasses
import json

from bench.suite import FULL, QUICK, run_suite, summary, table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--people", type=int, metavar="N", help="people per bulk run (quick: 150, full: 2000)"
    )
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    if args.people is not None:
        if args.people < 1:
            parser.error("--people takes a number of people, 1 or more")
        config = dataclasses.replace(config, people=args.people)
    results = run_suite(config)
    print(json.dumps(summary(results)) if args.json else table(results))


if __name__ == "__main__":
    main()
