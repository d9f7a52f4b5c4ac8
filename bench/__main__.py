"""python -m bench [--quick] [--json]: every benchmark in one run, one table."""

from __future__ import annotations

import argparse
import json

from bench.suite import FULL, QUICK, run_suite, summary, table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = run_suite(QUICK if args.quick else FULL)
    print(json.dumps(summary(results)) if args.json else table(results))


if __name__ == "__main__":
    main()
