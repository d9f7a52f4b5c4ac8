"""The pipeline: selection → source → privacy rules → every target CRM, concurrently."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus

from connectors.base import CRM, Contact, Person, Presence, TargetOutcome
from sync import privacy
from sync.batcher import Batcher
from sync.config import PrivacyConfig
from sync.donotsync import DoNotSync
from sync.errors import (
    AuthError,
    ConnectorError,
    PrivacyRefusal,
    RecordRejected,
    RetryableError,
    SyncdError,
)
from sync.instances import Instances
from sync.messages import MessageRelay, record_ids, with_messages
from sync.retry import RERUNS
from sync.state import CRMHealth, DaemonState, Selection

log = structlog.get_logger("syncd.relay")

T = TypeVar("T")

#: How many times a batch whose write was not confirmed is run, from its matching step.
UPSERT_ATTEMPTS = RERUNS
#: How long a batch that is not full waits for more of a backlog (a bulk import) before it
#: goes: a lone selection never waits (sync/batcher.py).
LINGER = 1.0
#: Profiles read from the source at once (two requests each; the source paces itself further
#: by its own rate-limit headers); the daemon's other workers wait for their CRMs' batches.
#: Eight is a person's session read briskly, not hammered (the source's bot defence watches
#: sessions), and more costs CPU: httpcore's pool scans every connection for every queued
#: request, so 32 reads (64 requests on 64 connections) spent most of the daemon's time
#: there. In the bench, 8 fed HubSpot 97 people/s where 32 fed 72 (and 4, 93).
SOURCE_READS = 8
#: The source's instance name: its keyring username, and its name in retry events.
SOURCE = "source"


def on_the_list(public_id: str) -> PrivacyRefusal:
    """The refusal of a person on the do-not-sync list (forgotten or blocked)."""
    return PrivacyRefusal(
        "do_not_sync",
        "refused: this person asked to be forgotten or was blocked; "
        f"`syncd forget --undo {public_id}` (or `syncd unblock {public_id}`) lifts it",
    )


def failure(error: SyncdError) -> TargetOutcome:
    """The outcome a raised error stands for."""
    if isinstance(error, AuthError):
        reason = "auth"
    elif isinstance(error, RecordRejected):
        reason = "rejected"
    elif isinstance(error, RetryableError):
        reason = "unavailable"
    else:
        reason = "error"
    detail = error.describe() if isinstance(error, ConnectorError) else str(error)
    return TargetOutcome("failed", detail=detail, reason=reason)


def internal_error(doing: str) -> TargetOutcome:
    """The outcome of a bug or an answer nothing expected: a sentence, the rest in the log."""
    return TargetOutcome(
        "failed", detail=f"internal error while {doing}; details in the log", reason="error"
    )


def _note_health(health: CRMHealth, error: SyncdError | None) -> None:
    """Record how a connector answered last; any retry of it is over."""
    health.retrying = None
    if error is None:
        health.health, health.last_error = "ok", None
        return
    if isinstance(error, AuthError):
        health.health = "auth"
    elif isinstance(error, RetryableError):
        health.health = "rate_limited" if error.status in (429, 403) else "unreachable"
    health.last_error = error.describe() if isinstance(error, ConnectorError) else str(error)


class Relay:
    """Carries one selection from the source to its target CRMs."""

    def __init__(
        self,
        instances: Instances,
        rules: PrivacyConfig,
        state: DaemonState,
        blocked: DoNotSync | None = None,
    ) -> None:
        self._instances = instances
        self._rules = rules
        self._state = state
        #: The do-not-sync list: a person on it is refused before the source is asked.
        self.blocked = blocked
        self.messages = MessageRelay(instances)
        self._source_reads = anyio.CapacityLimiter(SOURCE_READS)
        self._batchers = {
            name: Batcher(
                partial(self._upsert, name),
                max_batch=instances.batch_size(name),
                linger=LINGER,
                backlog=state.pending,
            )
            for name in instances.crm_names
        }

    def _health(self, name: str) -> CRMHealth:
        return self._state.source_health if name == SOURCE else self._state.health[name]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the per-CRM batchers until cancelled; :meth:`process` needs this running."""
        async with anyio.create_task_group() as tg:
            for batcher in self._batchers.values():
                await tg.start(batcher.run)
            task_status.started()

    async def _upsert(self, name: str, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """One batch into one CRM. A write whose answer was lost is never resent as is: the
        whole upsert runs again and finds by identity what the lost write made (P5)."""
        policy = self._instances.retry

        async def attempt() -> list[TargetOutcome]:
            crm = await self._instances.crm(name)
            return await crm.upsert_contacts(contacts)

        retrying = policy.rerun_lost_answers(name, "upsert")
        outcomes: list[TargetOutcome] = await retrying(attempt)
        return outcomes

    async def process(self, selection: Selection) -> dict[str, TargetOutcome]:
        """Every target's outcome for ``selection``; never raises for a connector problem."""
        try:
            contact = await self.read_contact(selection.public_id)
        except PrivacyRefusal as refusal:
            log.info("selection.refused", selection_id=selection.id, code=refusal.rule)
            refused = TargetOutcome("refused", detail=str(refusal), reason="privacy")
            return dict.fromkeys(selection.targets, refused)
        except SyncdError as error:
            await self.source_failed(error)
            log.warning("source.failed", selection_id=selection.id, error_type=type(error).__name__)
            return dict.fromkeys(selection.targets, failure(error))
        except Exception as error:  # the last resort: a bug must not stop the daemon
            outcome = self.internal(
                SOURCE, error, doing="reading from the source", selection_id=selection.id
            )
            return dict.fromkeys(selection.targets, outcome)
        _note_health(self._state.source_health, None)
        results: dict[str, TargetOutcome] = {}
        async with anyio.create_task_group() as tg:
            for name in selection.targets:
                tg.start_soon(self._deliver, selection.id, name, contact, results)
        if selection.with_messages:
            written = await self.messages.relay(
                selection.public_id, record_ids(results), selection_id=selection.id
            )
            results |= {name: with_messages(results[name], w) for name, w in written.items()}
        return {name: results[name] for name in selection.targets}

    async def check(self, public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """Whether the person is in each target CRM (`syncd check`); writes nothing anywhere.

        The privacy rules apply first: a person syncd may not send is not looked up either.
        """
        try:
            contact = await self.read_contact(public_id)
        except PrivacyRefusal as refusal:
            return {key: {"found": False, "refused": str(refusal)} for key in targets}
        except SyncdError as error:
            await self.source_failed(error)
            return dict.fromkeys(targets, _not_found(failure(error)))
        except Exception as error:  # the last resort: a bug must not stop the daemon
            return dict.fromkeys(
                targets, _not_found(self.internal(SOURCE, error, doing="reading from the source"))
            )
        _note_health(self._state.source_health, None)
        found = await self.each_crm(targets, lambda _, crm: crm.find(contact), doing="asking")
        return {
            name: _not_found(presence)
            if isinstance(presence, TargetOutcome)
            else _presence_json(presence)
            for name, presence in found.items()
        }

    async def each_crm(
        self,
        targets: tuple[str, ...],
        call: Callable[[str, CRM], Awaitable[T]],
        *,
        doing: str,
        selection_id: str | None = None,
    ) -> dict[str, T | TargetOutcome]:
        """``call(name, client)`` for each target CRM, concurrently, answered in ``targets``
        order. What a CRM raises becomes that CRM's failed outcome (its health noted, a
        rejected credential read again next time); an answer marks it healthy. Never raises
        for a connector problem."""
        results: dict[str, T | TargetOutcome] = {}

        async def one(name: str) -> None:
            try:
                crm = await self._instances.crm(name)
                results[name] = await call(name, crm)
            except SyncdError as error:
                results[name] = await self.crm_failed(name, error)
                return
            except Exception as error:  # the last resort: a bug must not stop the daemon
                results[name] = self.internal(
                    name, error, doing=f"{doing} {name}", selection_id=selection_id
                )
                return
            self.crm_answered(name)

        async with anyio.create_task_group() as tg:
            for name in targets:
                tg.start_soon(one, name)
        return {name: results[name] for name in targets}

    async def read_contact(self, public_id: str) -> Contact:
        """The person from the source, after the do-not-sync list and the privacy rules: a
        listed publicId is refused before the source is asked, a listed member id (a publicId
        can change) right after the profile is read. The conversation is read later, once
        the CRMs have said what they hold (sync/messages.py)."""
        if self.blocked is not None and self.blocked.holds(public_id=public_id):
            raise on_the_list(public_id)
        person = await self.read_person(public_id)
        if self.blocked is not None and self.blocked.holds(member_id=person.member_id):
            raise on_the_list(public_id)
        return privacy.apply(person, self._rules)

    async def read_person(self, public_id: str) -> Person:
        """The profile from the source, whatever the lists and rules say (callers apply them)."""
        source = await self._instances.source()
        async with self._source_reads:
            person = await source.fetch_person(public_id)
        _note_health(self._state.source_health, None)
        return person

    def contact_of(self, person: Person) -> Contact:
        """What may leave for ``person`` to find them in a CRM: what add-contact would send,
        or, for someone the privacy rules refuse, only the identity (the member id)."""
        try:
            return privacy.apply(person, self._rules)
        except PrivacyRefusal:
            return Contact(member_id=person.member_id, fields={})

    def crm_answered(self, name: str) -> None:
        """CRM ``name`` answered: its health is ok, any retry of it is over."""
        _note_health(self._state.health[name], None)

    async def crm_failed(self, name: str, error: SyncdError) -> TargetOutcome:
        """Note what stopped a call to CRM ``name`` (its health; a rejected credential is
        read again next time) and the failed outcome it stands for."""
        _note_health(self._state.health[name], error)
        if isinstance(error, AuthError):
            await self._instances.invalidate(name)
        return failure(error)

    def internal(
        self, name: str, error: Exception, *, doing: str, selection_id: str | None = None
    ) -> TargetOutcome:
        """Log an unexpected exception while talking to ``name`` (its type, and its traceback
        through the log's redaction, never its message) and the failed outcome it stands for."""
        outcome = internal_error(doing)
        health = self._health(name)
        health.retrying = None
        health.last_error = outcome.detail
        log.error(
            "relay.internal_error",
            selection_id=selection_id,
            instance=name,
            error_type=type(error).__name__,
            exc_info=error,
        )
        return outcome

    async def source_failed(self, error: SyncdError) -> None:
        _note_health(self._state.source_health, error)
        if isinstance(error, AuthError):
            await self._instances.invalidate("source")

    async def _deliver(
        self, selection_id: str, name: str, contact: Contact, results: dict[str, TargetOutcome]
    ) -> None:
        started = time.monotonic()
        health = self._state.health[name]
        try:
            outcome = await self._batchers[name].submit(contact)
        except SyncdError as error:
            outcome = await self.crm_failed(name, error)
        except Exception as error:  # the last resort: a bug must not stop the daemon
            outcome = self.internal(
                name, error, doing=f"writing to {name}", selection_id=selection_id
            )
        else:
            _note_health(health, None)
        results[name] = outcome
        log.info(
            "target.done",
            selection_id=selection_id,
            crm=name,
            outcome=outcome.outcome,
            duration_ms=round((time.monotonic() - started) * 1000),
        )


def _presence_json(presence: Presence) -> dict[str, Any]:
    """`syncd check`'s answer for a CRM that answered."""
    answer: dict[str, Any] = {
        "found": presence.found,
        "id": presence.id,
        "owner": presence.owner,
        "url": presence.url,
        "step": presence.step,
    }
    if presence.candidates:
        answer["candidates"] = list(presence.candidates)
    return answer


def _not_found(outcome: TargetOutcome) -> dict[str, Any]:
    """`syncd check`'s answer for a CRM that could not be asked."""
    return {"found": False, "error": outcome.detail, "reason": outcome.reason}


def merge_targets(requested: list[str] | None, configured: Mapping[str, object]) -> tuple[str, ...]:
    """The target instance names: the requested ones (validated) or every configured CRM."""
    if not requested:
        return tuple(configured)
    unknown = [n for n in requested if n not in configured]
    if unknown:
        known = ", ".join(configured) or "none"
        raise ValueError(f"unknown CRM name(s) {', '.join(unknown)}; configured: {known}")
    return tuple(dict.fromkeys(requested))
