"""`syncd status`: the daemon's status object as a table, JSON, a waybar module or one line.

Standard library only: this is one of the commands that must answer at once, and bars run
it every few seconds. The status object holds ids, states and outcome words, never a
person's data, so nothing here can print one.

The bar formats (``waybar``, ``oneline``) always print something a bar can show and exit 0,
also when the daemon is not running (class ``stopped`` / "syncd: not running"): a bar that
shows an error is worse than one that says syncd is stopped. ``table`` and ``--json`` keep
the exit codes (3 when the daemon is not running).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Mapping
from typing import Any

from sync.control.client import ControlClient
from sync.errors import DaemonNotRunning, SyncdError
from sync.paths import socket_path

STATES = ("idle", "syncing", "paused", "attention", "stopped")
#: How many of the recent outcomes the table lists.
RECENT_SHOWN = 5
MAX_WIDTH = 80


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status in the asked format; the exit code."""
    shown = "json" if args.json else args.format
    try:
        status = ControlClient(socket_path(args.config), timeout=5.0).status()
    except SyncdError as error:
        if shown == "waybar":
            print(json.dumps(waybar_stopped(error)))
            return 0
        if shown == "oneline":
            print(oneline_stopped(error))
            return 0
        raise
    if shown == "json":
        print(json.dumps(status, indent=2))
    elif shown == "waybar":
        print(json.dumps(waybar(status)))
    elif shown == "oneline":
        print(oneline(status))
    else:
        print(table(status, width=_width()))
    return 0


def _width() -> int:
    return max(40, min(MAX_WIDTH, shutil.get_terminal_size((MAX_WIDTH, 24)).columns))


# -- what every format says ------------------------------------------------------------


def connectors(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The source and each CRM instance, by name, in the daemon's order."""
    rows: dict[str, Mapping[str, Any]] = {}
    if isinstance(status.get("source"), Mapping):
        rows["source"] = status["source"]
    for name, health in (status.get("crms") or {}).items():
        if isinstance(health, Mapping):
            rows[str(name)] = health
    return rows


def activity(status: Mapping[str, Any]) -> str:
    """What the daemon is doing, whatever needs attention: paused, syncing N, or idle."""
    queue = int(status.get("queue") or 0)
    if status.get("state") == "paused":
        return f"paused, {queue} queued" if queue else "paused"
    return f"syncing {queue}" if queue else "idle"


def problems(status: Mapping[str, Any]) -> list[str]:
    """Short words for what needs attention: `hubspot auth`, `source retrying`, `journal`."""
    found: list[str] = []
    for name, health in connectors(status).items():
        if health.get("health", "ok") != "ok":
            found.append(f"{name} {health['health']}")
        elif health.get("retrying"):
            found.append(f"{name} retrying")
    if (status.get("journal") or {}).get("note"):
        found.append("journal")
    return found


def _state(status: Mapping[str, Any]) -> str:
    state = str(status.get("state", "attention"))
    return state if state in STATES else "attention"


def _retrying(retrying: Mapping[str, Any] | None) -> str:
    if not retrying:
        return "-"
    text = f"#{retrying.get('attempt', '?')}, next in {float(retrying.get('next_in_s', 0)):.0f} s"
    reason = retrying.get("reason")
    return f"{text} ({reason})" if reason else text


def _duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# -- table -----------------------------------------------------------------------------


def table(status: Mapping[str, Any], *, width: int = MAX_WIDTH) -> str:
    """The human view: a header line, one row per connector, the journal, recent outcomes."""
    import textwrap  # not for the bars, which run this every few seconds

    queue = int(status.get("queue") or 0)
    lines = [
        f"syncd {status.get('version', '?')} · {_state(status)} · "
        f"up {_duration(float(status.get('uptime_s') or 0))} · {queue} in queue",
        "",
    ]
    rows = connectors(status)
    name_w = max([len("CONNECTOR"), *(len(n) for n in rows)])
    health_w = max([len("HEALTH"), *(len(str(h.get("health", "?"))) for h in rows.values())])
    lines.append(f"{'CONNECTOR':<{name_w}}  {'HEALTH':<{health_w}}  RETRYING")
    wrap = textwrap.TextWrapper(
        width=width, initial_indent="  last error: ", subsequent_indent=" " * 14
    )
    for name, health in rows.items():
        retrying = _retrying(health.get("retrying"))
        row = f"{name:<{name_w}}  {health.get('health', '?')!s:<{health_w}}  {retrying}"
        lines.append(row[:width])
        if health.get("last_error"):
            lines.extend(wrap.wrap(str(health["last_error"])))
    journal = status.get("journal") or {}
    if journal.get("note"):
        lines.append("")
        lines.extend(
            textwrap.wrap(
                str(journal["note"]),
                width=width,
                initial_indent="journal: ",
                subsequent_indent="  ",
            )
        )
    follow = status.get("follow")
    if isinstance(follow, Mapping):
        lines += ["", _follow_line(follow)]
    listed = int(status.get("do_not_sync") or 0)
    if listed:
        plural = "entry" if listed == 1 else "entries"
        lines += ["", f"do-not-sync list: {listed} {plural} (`syncd unblock REF` lifts one)"]
    recent = [r for r in status.get("recent") or [] if isinstance(r, Mapping)]
    if recent:
        lines += ["", f"RECENT (last {min(len(recent), RECENT_SHOWN)} of {len(recent)})"]
        for item in recent[:RECENT_SHOWN]:
            lines.extend(_recent_lines(item, width))
    return "\n".join(lines)


def _follow_line(follow: Mapping[str, Any]) -> str:
    """`follow: every 15m · last pass 14:02, 3 people, +2 messages, 0 errors`."""
    every = _duration(float(follow.get("interval_s") or 0))
    last = follow.get("last")
    if not isinstance(last, Mapping):
        return f"follow: every {every} · no pass yet"
    at = time.strftime("%H:%M", time.localtime(float(last.get("at") or 0)))
    return (
        f"follow: every {every} · last pass {at}, {last.get('people', 0)} people, "
        f"+{last.get('messages', 0)} messages, {last.get('errors', 0)} errors"
    )


def _recent_lines(item: Mapping[str, Any], width: int) -> list[str]:
    """One finished selection: its time, its id, then the CRMs grouped by outcome
    (`created hubspot, pipedrive · failed salesforce`), wrapped under themselves."""
    import textwrap

    at = item.get("time")
    when = time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, int | float) else "?"
    grouped: dict[str, list[str]] = {}
    for name, outcome in (item.get("outcomes") or {}).items():
        grouped.setdefault(str(outcome), []).append(str(name))
    words = " · ".join(f"{outcome} {', '.join(names)}" for outcome, names in grouped.items())
    head = f"{when}  {item.get('selection', '?')}  "
    wrap = textwrap.TextWrapper(
        width=width, initial_indent=head, subsequent_indent=" " * min(len(head), width // 2)
    )
    return wrap.wrap(words or "-")


# -- bars ------------------------------------------------------------------------------


def oneline(status: Mapping[str, Any]) -> str:
    """One short line for i3blocks, polybar or tmux: `syncd: syncing 3 · hubspot auth`."""
    return " · ".join([f"syncd: {activity(status)}", *problems(status)])


def oneline_stopped(error: SyncdError) -> str:
    """The line when there is no daemon to ask (or it cannot be asked)."""
    if isinstance(error, DaemonNotRunning):
        return "syncd: not running"
    return "syncd: unreachable"


def waybar(status: Mapping[str, Any]) -> dict[str, str]:
    """The JSON object waybar's custom module reads (``"return-type": "json"``).

    ``class`` and ``alt`` are the state (idle, syncing, paused, attention), so a style
    sheet and ``format-icons`` can follow it; ``text`` and ``tooltip`` are Pango markup,
    hence escaped.
    """
    import html  # only the waybar format needs it; its entity table is slow to load

    state = _state(status)
    queue = int(status.get("queue") or 0)
    text = "syncd"
    if state == "paused":
        text += " paused"
    elif queue:
        text += f" {queue}"
    if problems(status):
        text += " !"
    tooltip = [
        f"syncd {status.get('version', '?')}: {state}",
        f"queue: {queue}",
        *(_tooltip_row(name, health) for name, health in connectors(status).items()),
    ]
    note = (status.get("journal") or {}).get("note")
    if note:
        tooltip.append(f"journal: {note}")
    return {
        "text": html.escape(text, quote=False),
        "tooltip": html.escape("\n".join(tooltip), quote=False),
        "class": state,
        "alt": state,
    }


def _tooltip_row(name: str, health: Mapping[str, Any]) -> str:
    row = f"{name}: {health.get('health', '?')}"
    if health.get("retrying"):
        row += f", retrying {_retrying(health['retrying'])}"
    if health.get("last_error"):
        row += f" — {health['last_error']}"
    return row


def waybar_stopped(error: SyncdError) -> dict[str, str]:
    """Valid waybar JSON when there is no daemon to ask: class ``stopped``, or ``attention``
    when one may run but cannot be asked (a socket that is not private, no answer in time)."""
    import html

    state = "stopped" if isinstance(error, DaemonNotRunning) else "attention"
    return {
        "text": "syncd off" if state == "stopped" else "syncd !",
        "tooltip": html.escape(str(error), quote=False),
        "class": state,
        "alt": state,
    }
