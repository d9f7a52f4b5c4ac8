"""What the daemon knows while it runs: selections in flight, recent outcomes, CRM health.

In memory only: the recent outcomes and the per-selection results carry ids and outcome
words, never a person's data, and none of it is written to disk.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from connectors.base import TargetOutcome

if TYPE_CHECKING:
    from sync.retry import RetryEvent

Health = Literal["ok", "auth", "rate_limited", "unreachable"]
#: What a selection asks: relay the person (`add-contact`) or erase them (`forget`).
Action = Literal["add", "forget"]

#: How many finished selections stay answerable on GET /v1/selections/{id}.
KEEP_DONE = 10_000


@dataclass(frozen=True, slots=True)
class Selection:
    """One person the user chose, and where they should go."""

    id: str
    public_id: str
    targets: tuple[str, ...]
    with_messages: bool = False
    action: Action = "add"

    @staticmethod
    def new_id() -> str:
        """A fresh, unguessable selection id."""
        return "sel_" + secrets.token_hex(8)


@dataclass(slots=True)
class Tracked:
    """A selection and what has happened to it so far."""

    selection: Selection
    targets: dict[str, TargetOutcome] = field(default_factory=dict)
    finished_at: float | None = None
    #: Removed by the user (`syncd cancel`) before a worker took it.
    cancelled: bool = False
    #: Made only when someone waits: an event costs ~0.8 KB, about half of what a pending
    #: selection holds, and a 50 000-line import is mostly selections nobody waits on.
    _finished: anyio.Event | None = None

    @property
    def finished(self) -> anyio.Event:
        """Set once every target has a final outcome."""
        if self._finished is None:
            self._finished = anyio.Event()
            if self.finished_at is not None:
                self._finished.set()
        return self._finished

    def finish(self, outcomes: dict[str, TargetOutcome]) -> None:
        """Record the final outcomes and wake whoever waits."""
        self.targets = outcomes
        self.finished_at = time.time()
        if self._finished is not None:
            self._finished.set()

    @property
    def state(self) -> Literal["pending", "done", "cancelled"]:
        """ "done" once every target has a final outcome; "cancelled" if the user removed it."""
        if self.cancelled:
            return "cancelled"
        return "pending" if self.finished_at is None else "done"

    def as_json(self) -> dict[str, object]:
        """The control API's view of this selection."""
        return {
            "id": self.selection.id,
            "action": self.selection.action,
            "state": self.state,
            "targets": {name: _outcome_json(o) for name, o in self.targets.items()},
        }


def _outcome_json(outcome: TargetOutcome) -> dict[str, object]:
    """One target's outcome in the control API's shape."""
    view: dict[str, object] = {
        "outcome": outcome.outcome,
        "id": outcome.id,
        "detail": outcome.detail,
        "reason": outcome.reason,
    }
    if outcome.candidates:
        view["candidates"] = list(outcome.candidates)
    if outcome.messages is not None:
        view["messages"] = outcome.messages
    if outcome.messages_error:
        view["messages_error"] = outcome.messages_error
    return view


@dataclass(frozen=True, slots=True)
class Retrying:
    """A retry under way: which attempt failed, why, and when the next one is due."""

    attempt: int
    reason: str
    #: On the monotonic clock, so ``next_in_s`` counts down from when the retry was planned.
    due: float

    def as_json(self, now: float) -> dict[str, object]:
        """The control API's view, the wait counted from ``now``."""
        return {
            "attempt": self.attempt,
            "next_in_s": round(max(0.0, self.due - now), 1),
            "reason": self.reason,
        }


@dataclass(slots=True)
class CRMHealth:
    """How one CRM instance (or the source) answered last, and whether it is being retried."""

    health: Health = "ok"
    last_error: str | None = None
    retrying: Retrying | None = None

    def as_json(self, now: float) -> dict[str, object]:
        """The control API's view; ``retrying`` only while a retry is under way."""
        view: dict[str, object] = {"health": self.health, "last_error": self.last_error}
        if self.retrying is not None:
            view["retrying"] = self.retrying.as_json(now)
        return view


class DaemonState:
    """The daemon's in-memory state, owned by the daemon's task group."""

    def __init__(self, crm_names: list[str], version: str) -> None:
        self.version = version
        self.started = time.monotonic()
        self.tracked: OrderedDict[str, Tracked] = OrderedDict()
        self.recent: deque[dict[str, object]] = deque(maxlen=50)
        self.health: dict[str, CRMHealth] = {name: CRMHealth() for name in crm_names}
        self.source_health = CRMHealth()
        self.busy = 0
        #: Accepted (and journaled) selections waiting for room in the workers' queue; the
        #: API never keeps a caller waiting on it (see sync/daemon.py::_feed_backlog).
        self.backlog: deque[Selection] = deque()
        self.backlog_ready = anyio.Event()
        #: Journal files that could not be read back at start, set aside in damaged/.
        self.journal_damaged: list[str] = []
        #: Selections set aside at start after being interrupted too often (sync/journal.py).
        self.journal_set_aside = 0
        self.journal_dir = ""
        #: Asked at each status: one sentence while the journal's disk refuses writes.
        self.journal_problem: Callable[[], str | None] = lambda: None
        #: How many entries the do-not-sync list holds (a count, nothing else).
        self.do_not_sync_count: Callable[[], int] = lambda: 0
        #: Follow mode's last pass (None while follow mode is off).
        self.follow_status: Callable[[], dict[str, object] | None] = lambda: None
        #: Selections a worker has started and not finished: too late to cancel.
        self.in_flight: set[str] = set()
        self._pending = 0
        self._done_ids: deque[str] = deque()
        self._resumed = anyio.Event()
        self._resumed.set()

    # -- pause -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether workers are holding selections back."""
        return not self._resumed.is_set()

    def pause(self) -> None:
        """Hold new work back; what is in flight finishes."""
        if not self.paused:
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Let workers take selections again."""
        self._resumed.set()

    async def wait_resumed(self) -> None:
        """Return once the daemon is not paused."""
        await self._resumed.wait()

    # -- selections --------------------------------------------------------------------

    def track(self, selection: Selection) -> Tracked:
        """Start following a selection."""
        tracked = Tracked(selection)
        self.tracked[selection.id] = tracked
        self._pending += 1
        return tracked

    def finish(self, selection_id: str, outcomes: dict[str, TargetOutcome]) -> None:
        """Record a selection's final outcomes and forget the oldest finished ones."""
        tracked = self.tracked[selection_id]
        tracked.finish(outcomes)
        self.in_flight.discard(selection_id)
        self.recent.appendleft(
            {
                "time": tracked.finished_at,
                "selection": selection_id,
                "outcomes": {name: o.outcome for name, o in outcomes.items()},
            }
        )
        self._pending -= 1
        self._done_ids.append(selection_id)
        while len(self._done_ids) > KEEP_DONE:
            self.tracked.pop(self._done_ids.popleft(), None)

    def cancel(self, selection_id: str) -> None:
        """The user removed a selection no worker has started: it finishes with no outcome,
        and a worker that takes it from the queue later skips it."""
        tracked = self.tracked[selection_id]
        tracked.cancelled = True
        tracked.finish({})
        self._pending -= 1
        self._done_ids.append(selection_id)

    def take(self, selection_id: str) -> bool:
        """A worker takes ``selection_id`` from the queue: False if it was cancelled (skip
        it), else it is in flight from now on."""
        tracked = self.tracked.get(selection_id)
        if tracked is not None and tracked.cancelled:
            return False
        self.in_flight.add(selection_id)
        return True

    def pending(self) -> int:
        """How many selections have no final outcome yet."""
        return self._pending

    # -- retries -----------------------------------------------------------------------

    def observe_retry(self, event: RetryEvent) -> None:
        """Show that ``event.connector`` (a CRM instance, or "source") is being retried;
        the relay clears it when that connector answers or its target ends."""
        health = self.health.get(event.connector)
        if health is None and event.connector == "source":
            health = self.source_health
        if health is not None:
            health.retrying = Retrying(event.attempt, event.reason, time.monotonic() + event.wait)

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """The control API's status object."""
        attention = any(h.health != "ok" for h in self.health.values())
        journal = self._journal_status()
        attention = attention or self.source_health.health != "ok" or bool(journal["note"])
        if self.paused:
            state = "paused"
        elif attention:
            state = "attention"
        elif self.busy or self.pending():
            state = "syncing"
        else:
            state = "idle"
        now = time.monotonic()
        return {
            "state": state,
            "version": self.version,
            "uptime_s": round(now - self.started, 1),
            "queue": self.pending(),
            "source": self.source_health.as_json(now),
            "crms": {name: h.as_json(now) for name, h in self.health.items()},
            "recent": list(self.recent),
            "journal": journal,
            "do_not_sync": self.do_not_sync_count(),
            "follow": self.follow_status(),
        }

    def _journal_status(self) -> dict[str, object]:
        problem = self.journal_problem()
        notes = [problem] if problem else []
        if self.journal_damaged:
            notes.append(
                "some accepted selections could not be read back after a restart; the "
                "files were kept in the journal's damaged/ folder: add those people again"
            )
        if self.journal_set_aside:
            notes.append(
                f"{self.journal_set_aside} selection(s) kept failing to finish (syncd stopped "
                "3 times while relaying each) and were set aside, encrypted, in "
                f"{self.journal_dir or 'the journal'}/damaged; add those people again, and "
                "check the daemon log (journal.set_aside names their selection ids) if it "
                "happens again"
            )
        return {
            "damaged_files": list(self.journal_damaged),
            "set_aside": self.journal_set_aside,
            "problem": problem,
            "note": "; ".join(notes) or None,
        }
