"""`syncd add-contact`: submit selections, wait for their outcomes, print one line per CRM.

Standard library only: this is one of the commands that must answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from sync.config import socket_path
from sync.control.client import ControlClient
from sync.errors import UsageError
from sync.refs import BadLine, parse_ref, read_refs

CHUNK = 1000  # refs per control call
CHUNK_BYTES = 512 * 1024  # and at most this much JSON: the daemon refuses bodies over 1 MiB
POLL_SECONDS = 30.0
OK = {"created", "updated", "unchanged"}


def _read_file(name: str) -> Iterable[str]:
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(name).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError("the --from-file file does not exist; check the path") from None
    except UnicodeDecodeError:
        raise UsageError("the --from-file file is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read the --from-file file ({exc.strerror})") from None


def collect_refs(args: argparse.Namespace) -> tuple[list[str], int]:
    """The refs to submit and how many input lines were bad (each reported on stderr)."""
    refs: list[str] = []
    for position, ref in enumerate(args.refs, start=1):
        try:
            parse_ref(ref)
        except UsageError as exc:
            raise UsageError(f"argument {position}: {exc}") from None
        refs.append(ref)
    bad = 0
    if args.from_file:
        for item in read_refs(_read_file(args.from_file)):
            if isinstance(item, BadLine):
                bad += 1
                print(f"syncd: line {item.line}: {item.reason}", file=sys.stderr)
            else:
                refs.append(item[1])
    if not refs:
        raise UsageError("no person to add; give a profile URL or publicId, or --from-file F")
    return refs, bad


def chunks(refs: list[str]) -> Iterator[list[str]]:
    """``refs`` in control calls of at most CHUNK refs and about CHUNK_BYTES of JSON."""
    chunk: list[str] = []
    size = 0
    for ref in refs:
        cost = len(json.dumps(ref)) + 2
        if chunk and (len(chunk) == CHUNK or size + cost > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(ref)
        size += cost
    if chunk:
        yield chunk


def exit_code(selections: Iterable[dict[str, Any]]) -> int:
    """0 when every target succeeded; else 5, 4 or 1 as the README's exit codes say."""
    bad = [t for s in selections for t in s["targets"].values() if t["outcome"] not in OK]
    if not bad:
        return 0
    if all(t["outcome"] == "refused" for t in bad):
        return 5
    if all(t["outcome"] == "failed" and t.get("reason") == "auth" for t in bad):
        return 4
    return 1


def describe(name: str, target: dict[str, Any]) -> str:
    """One output line for one CRM: `hubspot: created 123`."""
    outcome = target["outcome"]
    if outcome == "ambiguous":
        return f"{name}: ambiguous {', '.join(target.get('candidates', []))}"
    if outcome in ("failed", "refused"):
        return f"{name}: {outcome}: {target.get('detail') or 'no detail'}"
    return f"{name}: {outcome} {target.get('id') or ''}".rstrip()


class _Progress:
    """A one-line progress bar on a terminal; nothing elsewhere."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = total > 1 and stream.isatty()

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def cmd_add_contact(args: argparse.Namespace) -> int:
    """Submit, wait, print, and return the exit code."""
    refs, bad_lines = collect_refs(args)
    to = [n.strip() for n in args.to.split(",") if n.strip()] if args.to else None
    client = ControlClient(socket_path(args.config))
    accepted: list[dict[str, Any]] = []
    paused = False
    for chunk in chunks(refs):
        answer = client.add(chunk, to, args.with_messages)
        accepted.extend(answer["selections"])
        paused = paused or bool(answer.get("paused"))
    if args.no_wait:
        for item in accepted:
            print(item["id"])
        return 2 if bad_lines else 0
    if paused:
        print("queued: syncd is paused")
        return 2 if bad_lines else 0
    progress = _Progress(len(accepted), sys.stderr)
    finished: list[dict[str, Any]] = []
    for item in accepted:
        selection = client.selection(item["id"], wait=POLL_SECONDS)
        while selection["state"] != "done":
            selection = client.selection(item["id"], wait=POLL_SECONDS)
        finished.append(selection)
        progress.step()
        if not args.json:
            _print_outcome(
                item["ref"], selection, several=len(accepted) > 1, quiet=progress.enabled
            )
    if args.json:
        body: Any = finished[0] if len(finished) == 1 else {"selections": finished}
        print(json.dumps(body, indent=2))
    elif progress.enabled:
        _print_summary(finished)
    code = exit_code(finished)
    return code if code or not bad_lines else 2


def _print_outcome(ref: str, selection: dict[str, Any], *, several: bool, quiet: bool) -> None:
    lines = [describe(name, t) for name, t in selection["targets"].items()]
    if quiet:  # a progress bar is drawn: show only what needs the user's eyes
        lines = [
            ln
            for ln, t in zip(lines, selection["targets"].values(), strict=True)
            if t["outcome"] not in OK
        ]
    for line in lines:
        print(f"{ref}: {line}" if several else line)


def _print_summary(selections: list[dict[str, Any]]) -> None:
    per_crm: dict[str, Counter[str]] = {}
    for selection in selections:
        for name, target in selection["targets"].items():
            per_crm.setdefault(name, Counter())[target["outcome"]] += 1
    for name, counts in per_crm.items():
        print(f"{name}: " + ", ".join(f"{n} {word}" for word, n in sorted(counts.items())))
