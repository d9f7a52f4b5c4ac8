"""`syncd demo`: every sandbox, a real daemon and the real CLI, on throwaway dirs and keyring.

The daemon runs in this process with an in-memory token store (the throwaway keyring);
`add-contact` runs as a separate process through the control socket, exactly as a user
would call it. At the end, every file under the throwaway dirs is scanned for the people
and tokens that passed through.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import anyio

from rig.residue import scan
from rig.runner import RunningSandbox
from rig.stack import Stack, throwaway_stack


def _needles(running: dict[str, RunningSandbox], public_ids: list[str]) -> dict[str, str]:
    """The strings that must not be on disk: relayed people's data and every token."""
    needles = {sb.token: "a token" for sb in running.values()}
    for sandbox in running.values():
        if sandbox.kind != "source":
            continue
        for person in sandbox.as_source.people_data(public_ids):
            for kind, value in person.items():
                if isinstance(value, str) and len(value) >= 4:
                    needles[value] = kind
    return needles


def _width(text: str) -> int:
    """Terminal columns `text` takes: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(text: str, width: int) -> str:
    """`text` cut and padded to exactly `width` terminal columns."""
    out = ""
    for ch in text:
        if _width(out + ch) > width:
            break
        out += ch
    return out + " " * (width - _width(out))


def _print_table(title: str, rows: list[dict[str, str]]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (nothing)")
        return
    columns = list(rows[0])
    widths = {c: min(32, max(_width(c), *(_width(r.get(c, "")) for r in rows))) for c in columns}
    print("  " + "  ".join(_cell(c, widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  " + "  ".join(_cell(row.get(c, ""), widths[c]) for c in columns).rstrip())


async def _demo(count: int, root: Path) -> int:
    failures = 0
    async with throwaway_stack(root) as stack:
        public_ids = stack.source.as_source.public_ids()[:count]
        refs = [f"https://www.linkedin.example/in/{pid}/" for pid in public_ids]
        print(
            "syncd demo: sandboxes "
            + ", ".join(f"{name} {sb.url}" for name, sb in stack.running.items())
        )
        print(
            f"daemon on {stack.root / 'run' / 'syncd.sock'}; "
            "credentials in a throwaway in-memory keyring"
        )
        for label in (
            "first add, with each conversation",
            "second add: a re-add never duplicates a person or a message",
        ):
            output, code, seconds = await stack.cli("add-contact", "--with-messages", *refs)
            print(f"\n$ syncd add-contact --with-messages <{len(refs)} profile URLs>    # {label}")
            print(output.rstrip())
            print(f"(exit {code}, {seconds:.2f} s)")
            failures += code != 0
        for type_name, sandbox in stack.crms.items():
            rows: list[dict[str, Any]] = sorted(sandbox.as_crm.rows(), key=lambda r: r["name"])
            _print_table(f"{type_name} now holds {len(rows)} contacts:", rows)
        failures += await _rights(stack, refs[0])
        counts = ", ".join(f"{name} {n}" for name, n in stack.record_counts().items())
        print(f"\nthe CRMs now hold: {counts} contacts")
        needles = _needles(stack.running, public_ids)
    report = scan([root], needles)
    print(
        f"\nresidue scan: {len(report.hits)} hits for {len(needles)} strings (people's data and "
        f"tokens) in {report.files} files, {report.bytes} bytes, under {root}"
    )
    for hit in report.hits:
        print(f"  {hit.path}: {hit.kind}")
    return 0 if not report.hits and not failures else 1


async def _rights(stack: Stack, ref: str) -> int:
    """P6 on one of the people: what the CRMs hold, erase everywhere, then a refused re-add.
    The number of steps whose exit code was not the expected one."""
    steps = (
        (("export", ref), "what each CRM holds about one of them (subject access)", 0),
        (("forget", "--yes", ref), "erase them everywhere, and never sync them again", 0),
        (("add-contact", ref), "forgotten: refused before anything is asked, exit 5", 5),
    )
    wrong = 0
    for args, label, expected in steps:
        output, code, seconds = await stack.cli(*args)
        print(f"\n$ syncd {' '.join(args[:-1])} <profile URL>    # {label}")
        print(output.rstrip())
        print(f"(exit {code}, {seconds:.2f} s)")
        wrong += code != expected
    return wrong


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo on throwaway dirs, removed afterwards."""
    if args.contacts < 1:
        from sync.errors import UsageError

        raise UsageError("--contacts must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    try:
        result: int = anyio.run(_demo, args.contacts, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result
