"""`syncd add-contact`: submit selections, wait for their outcomes, print one line per CRM.

Standard library only: this is one of the commands that must answer at once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from sync.control.client import ControlClient
from sync.errors import UsageError
from sync.paths import socket_path
from sync.refs import BadLine, parse_ref, read_refs

CHUNK = 1000  # refs per control call
CHUNK_BYTES = 512 * 1024  # and at most this much JSON: the daemon refuses bodies over 1 MiB
POLL_SECONDS = 30.0
OK = ("created", "updated", "unchanged")
#: The summary's columns, in the README's order.
OUTCOMES = (*OK, "ambiguous", "failed", "refused")
#: Ctrl-C: the shell's convention for a command stopped by SIGINT (128 + 2). The daemon
#: keeps what it accepted; only the waiting stopped.
INTERRUPTED = 130
#: The narrowest bar worth drawing beside the per-CRM counts.
MIN_BAR = 8


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
    source = args.from_file
    if not refs and not source and not sys.stdin.isatty():
        source = "-"  # piped in: the private way, kept out of the shell's history
    if source:
        for item in read_refs(_read_file(source)):
            if isinstance(item, BadLine):
                bad += 1
                print(f"syncd: line {item.line}: {item.reason}", file=sys.stderr)
            else:
                refs.append(item[1])
    if not refs:
        raise UsageError(
            "no person to add; give a profile URL or publicId, pipe them in, or --from-file F"
        )
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
    """0 when every target succeeded; else 5, 4 or 1 as the README's exit codes say (a
    contact written without its messages is 1)."""
    targets = [t for s in selections for t in s["targets"].values()]
    bad = [t for t in targets if t["outcome"] not in OK]
    if not bad:
        return 1 if any(t.get("messages_error") for t in targets) else 0
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
        detail = str(target.get("detail") or "no detail")
        detail = detail.removeprefix(f"{outcome}: ")  # a refusal's sentence starts with it
        return f"{name}: {outcome}: {detail}"
    line = f"{name}: {outcome} {target.get('id') or ''}".rstrip()
    if target.get("messages_error"):
        return f"{line} (messages not written: {target['messages_error']})"
    if target.get("messages") is not None:
        plural = "" if target["messages"] == 1 else "s"
        line += f" (+{target['messages']} message{plural})"
        if target.get("detail"):
            line += f"; {target['detail']}"
    return line


class Progress:
    """A one-line progress bar on stderr when it is a terminal; nothing elsewhere.

    The bar shows done/total and, per CRM, how many targets ended well and how many need a
    look; it is redrawn at most every REDRAW_SECONDS, and cleared before any other output
    so lines printed meanwhile never mix with it.
    """

    REDRAW_SECONDS = 0.1

    def __init__(
        self, total: int, stream: TextIO, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total, self.done, self.stream, self.clock = total, 0, stream, clock
        self.enabled = total > 1 and stream.isatty()
        self.counts: dict[str, Counter[str]] = {}
        self._drawn_at: float | None = None
        self._shown = False

    def step(self, selection: dict[str, Any]) -> None:
        """Count one finished selection and redraw if it is time to."""
        self.done += 1
        for name, target in selection["targets"].items():
            self.counts.setdefault(name, Counter())[target["outcome"]] += 1
        now = self.clock()
        due = self._drawn_at is None or now - self._drawn_at >= self.REDRAW_SECONDS
        if self.enabled and (due or self.done == self.total):
            self.draw()
            self._drawn_at = now

    def line(self, width: int) -> str:
        """The bar's text, at most ``width - 1`` characters (the last column would wrap)."""
        count = f" {self.done}/{self.total}"
        for crms in (*self._crm_texts(), ""):  # the longest per-CRM text that leaves a bar
            room = width - 1 - len(count) - 2 - (len(crms) + 2 if crms else 0)
            if room >= MIN_BAR or not crms:
                break
        room = max(1, room)
        filled = room * self.done // max(1, self.total)
        bar = f"[{'#' * filled}{'.' * (room - filled)}]{count}"
        return (f"{bar}  {crms}" if crms else bar)[: max(1, width - 1)]

    def _crm_texts(self) -> tuple[str, str]:
        """Per-CRM counts, long (`hubspot 407 ok, 5 to check`) and short (`hubspot 407 ok 5!`)."""
        long, short = [], []
        for name, c in self.counts.items():
            ok = sum(c[o] for o in OK)
            bad = sum(c.values()) - ok
            long.append(f"{name} {ok} ok" + (f", {bad} to check" if bad else ""))
            short.append(f"{name} {ok} ok" + (f" {bad}!" if bad else ""))
        return "  ".join(long), "  ".join(short)

    def draw(self) -> None:
        """Draw the bar over the current line."""
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + self.line(width) + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Take the bar off the screen (before other output, and at the end)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
        self._drawn_at = None  # redraw at once after whatever comes next


def cmd_add_contact(args: argparse.Namespace) -> int:
    """Submit, wait, print, and return the exit code."""
    refs, bad_lines = collect_refs(args)
    to = [n.strip() for n in args.to.split(",") if n.strip()] if args.to else None
    client = ControlClient(socket_path(args.config))
    accepted: list[dict[str, Any]] = []
    paused = False
    try:
        for chunk in chunks(refs):
            answer = client.add(chunk, to, args.with_messages)
            accepted.extend(answer["selections"])
            paused = paused or bool(answer.get("paused"))
    except KeyboardInterrupt:
        print(
            f"syncd: interrupted while sending; {len(accepted)} of {len(refs)} people were "
            "accepted and the daemon relays them (follow with `syncd status`); send the "
            "rest again",
            file=sys.stderr,
        )
        return INTERRUPTED
    if args.no_wait:
        for item in accepted:
            print(item["id"])
        return 2 if bad_lines else 0
    if paused:
        print("queued: syncd is paused")
        return 2 if bad_lines else 0
    progress = Progress(len(accepted), sys.stderr)
    summary = not args.json and (bool(args.from_file) or progress.enabled)
    finished: list[dict[str, Any]] = []
    try:
        for item in accepted:
            selection = client.selection(item["id"], wait=POLL_SECONDS)
            while selection["state"] == "pending":
                selection = client.selection(item["id"], wait=POLL_SECONDS)
            finished.append(selection)
            if not args.json:
                lines = _outcome_lines(
                    item["ref"], selection, several=len(accepted) > 1, quiet=progress.enabled
                )
                if lines:
                    progress.clear()
                    print("\n".join(lines), flush=True)
            progress.step(selection)
    except KeyboardInterrupt:
        progress.clear()
        if summary:
            print_summary(progress.counts, len(finished))
        print(
            f"syncd: stopped waiting; {len(accepted) - len(finished)} of {len(accepted)} "
            "selections are still queued and the daemon keeps relaying them; follow them "
            "with `syncd status`",
            file=sys.stderr,
        )
        return INTERRUPTED
    progress.clear()
    if args.json:
        body: Any = finished[0] if len(finished) == 1 else {"selections": finished}
        print(json.dumps(body, indent=2))
    elif summary:
        print_summary(progress.counts, len(finished))
    if bad_lines:
        print(f"syncd: {bad_lines} line(s) named no person and were skipped", file=sys.stderr)
    code = exit_code(finished)
    return code if code or not bad_lines else 2


def _outcome_lines(ref: str, selection: dict[str, Any], *, several: bool, quiet: bool) -> list[str]:
    if selection["state"] == "cancelled":
        return [f"{ref}: cancelled" if several else "cancelled"]
    lines = [describe(name, t) for name, t in selection["targets"].items()]
    if quiet:  # a progress bar is drawn: show only what needs the user's eyes
        lines = [
            ln
            for ln, t in zip(lines, selection["targets"].values(), strict=True)
            if t["outcome"] not in OK
        ]
    return [f"{ref}: {line}" if several else line for line in lines]


def summary_table(counts: dict[str, Counter[str]], selections: int) -> str:
    """Outcomes per CRM, one row each, one column per outcome word."""
    name_w = max([len("CRM"), *(len(name) for name in counts)])
    head = f"{'CRM':<{name_w}}" + "".join(f"  {word:>9}" for word in OUTCOMES)
    rows = [
        f"{name:<{name_w}}" + "".join(f"  {c[word]:>9}" for word in OUTCOMES)
        for name, c in counts.items()
    ]
    plural = "" if selections == 1 else "s"
    return "\n".join([f"summary of {selections} selection{plural}", head, *rows])


def print_summary(counts: dict[str, Counter[str]], selections: int) -> None:
    """Print :func:`summary_table` on stdout."""
    print(summary_table(counts, selections), flush=True)
