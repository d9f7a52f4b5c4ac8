"""What the tray shows, worked out from the daemon's status object. Pure: no GUI, no I/O.

The status object carries states, counts, instance names and error sentences — never a
person — and the tray keeps nothing but the latest ``View``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

TrayState = Literal["idle", "syncing", "paused", "attention", "not_running"]
STATES: tuple[TrayState, ...] = ("idle", "syncing", "paused", "attention", "not_running")
_DAEMON_STATES: dict[str, TrayState] = {s: s for s in STATES if s != "not_running"}

#: Seconds between two polls: once a second while work moves, every few seconds otherwise.
SYNCING_INTERVAL = 1.0
IDLE_INTERVAL = 5.0

_HEALTH_WORDS = {
    "ok": "ok",
    "auth": "needs a new credential",
    "rate_limited": "rate limited, waiting",
    "unreachable": "unreachable, retrying",
}

Action = Literal["status", "pause", "resume", "open_log", "quit", "fix"]


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """One line of the tray's menu: its text, what a click does (None: nothing)."""

    text: str
    action: Action | None = None
    enabled: bool = True
    #: For ``fix``: the instance whose credential the line is about.
    target: str = ""


@dataclass(frozen=True, slots=True)
class View:
    """Everything the tray draws and says for one status answer."""

    state: TrayState
    queue: int
    status_line: str
    health_lines: tuple[str, ...]
    #: Instances (CRMs, or "source") whose credential was refused or is missing.
    needs_credential: tuple[str, ...]
    paused: bool

    @property
    def tooltip(self) -> str:
        """The icon's title: the state, and which credential to fix when one is refused."""
        if self.needs_credential:
            return "syncd: " + "; ".join(fix_sentence(name) for name in self.needs_credential)
        return self.status_line

    def menu(self) -> tuple[MenuEntry, ...]:
        """The menu: the status line, each instance's health, the fixes, then the controls."""
        running = self.state != "not_running"
        entries = [MenuEntry(self.status_line, "status")]
        entries += [MenuEntry(line, None, enabled=False) for line in self.health_lines]
        entries += [MenuEntry(fix_sentence(n), "fix", target=n) for n in self.needs_credential]
        toggle: Action = "resume" if self.paused else "pause"
        entries += [
            MenuEntry("Resume" if self.paused else "Pause", toggle, enabled=running),
            MenuEntry("Open log", "open_log"),
            MenuEntry("Quit", "quit"),
        ]
        return tuple(entries)


def fix_sentence(instance: str) -> str:
    """What to run when ``instance``'s credential was refused."""
    return f"{instance} needs a new credential: syncd auth set {instance}"


def not_running(reason: str = "syncd is not running") -> View:
    """The view while no daemon answers on the socket."""
    return View("not_running", 0, reason, (), (), paused=False)


def view_of(status: Mapping[str, object]) -> View:
    """The view of one ``GET /v1/status`` answer; unknown or missing fields are tolerated."""
    # A state this tray does not know comes from a newer daemon: show it needs a look.
    state = _DAEMON_STATES.get(str(status.get("state")), "attention")
    raw_queue = status.get("queue")
    queue = raw_queue if isinstance(raw_queue, int) and raw_queue >= 0 else 0
    instances: dict[str, object] = {}
    if isinstance(status.get("source"), Mapping):
        instances["source"] = status["source"]
    crms = status.get("crms")
    if isinstance(crms, Mapping):
        instances.update({str(name): health for name, health in crms.items()})
    lines: list[str] = []
    refused: list[str] = []
    for name, health in instances.items():
        word = health.get("health") if isinstance(health, Mapping) else None
        lines.append(f"{name}: {_HEALTH_WORDS.get(str(word), str(word))}")
        if word == "auth":
            refused.append(name)
    journal = status.get("journal")
    if isinstance(journal, Mapping) and journal.get("note"):
        lines.append("journal: needs attention, see `syncd status`")
    version = status.get("version")
    head = f"syncd {version}" if isinstance(version, str) else "syncd"
    return View(
        state,
        queue,
        f"{head}: {state}, {queue} pending",
        tuple(lines),
        tuple(refused),
        paused=state == "paused",
    )


def poll_interval(state: TrayState) -> float:
    """How long to wait before the next poll in ``state``."""
    return SYNCING_INTERVAL if state == "syncing" else IDLE_INTERVAL


class Incidents:
    """Says each refused credential once: when it starts, not at every poll.

    An instance that recovers and is refused again is a new incident.
    """

    def __init__(self) -> None:
        self._open: set[str] = set()

    def new(self, view: View) -> list[str]:
        """The sentences to notify for ``view``; each open incident only the first time."""
        if view.state == "not_running":
            return []  # no news about credentials; keep what is open until the daemon says
        current = set(view.needs_credential)
        fresh = [name for name in view.needs_credential if name not in self._open]
        self._open = current
        return [fix_sentence(name) for name in fresh]
