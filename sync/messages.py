"""The conversation, relayed once: a person's messages become activities on their record in
each CRM, and each CRM decides what is new.

For one person and the records syncd just wrote (or found): ask every CRM which message keys
it holds (:meth:`CRM.message_ids`), read the conversation from the source newest first only
until a message every CRM holds, and write to each CRM what it lacks, oldest first
(:func:`connectors.base.missing`). Nothing on disk lists message ids: after a lost answer, a
crash between two batches or a second run, the CRM is asked again and only the rest is
written. Message text passes through memory only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import anyio
import structlog

from connectors.base import Message, TargetOutcome, activities, missing
from sync.errors import ConnectorError, SyncdError, WriteUncertain
from sync.instances import Instances

log = structlog.get_logger("syncd.messages")

#: Outcomes after which the person has a record in that CRM to write messages on.
HELD = ("created", "updated", "unchanged")


@dataclass(frozen=True, slots=True)
class Written:
    """What one CRM got: messages written (a split one counts once) and how many were split."""

    written: int = 0
    split: int = 0
    error: str = ""
    #: The error came from the source (throttled, refused), not from this CRM.
    source: bool = False


def complete(keys: frozenset[str]) -> frozenset[str]:
    """The message ids among activity ``keys`` that a CRM holds whole: an unsplit message, or
    every part ``#k/n`` of a split one (a crash may have left some parts unwritten)."""
    parts: dict[str, set[str]] = {}
    whole: set[str] = set()
    for key in keys:
        message, _, part = key.partition("#")
        if not part:
            whole.add(message)
            continue
        parts.setdefault(message, set()).add(part)
    for message, have in parts.items():
        count = next(iter(have)).partition("/")[2]
        if count.isdigit() and have >= {f"{k}/{count}" for k in range(1, int(count) + 1)}:
            whole.add(message)
    return frozenset(whole)


class MessageRelay:
    """Writes one person's new messages into their records, CRM by CRM."""

    def __init__(self, instances: Instances) -> None:
        self._instances = instances

    async def relay(
        self, public_id: str, records: Mapping[str, str], *, selection_id: str | None = None
    ) -> dict[str, Written]:
        """Write what each CRM lacks of the conversation with ``public_id``; ``records``
        maps a CRM instance to the person's record id there. Never raises for a connector
        problem: each CRM's answer says what was written or why not."""
        held: dict[str, frozenset[str]] = {}
        answers: dict[str, Written] = {}

        async def ask(name: str) -> None:
            try:
                crm = await self._instances.crm(name)
                held[name] = await crm.message_ids(records[name])
            except SyncdError as error:
                answers[name] = Written(error=_sentence(error))
            except Exception as error:  # the last resort: a bug must not stop the daemon
                answers[name] = self._internal(name, error, selection_id)

        async with anyio.create_task_group() as tg:
            for name in records:
                tg.start_soon(ask, name)
        if not held:
            return answers
        until = frozenset.intersection(*(complete(keys) for keys in held.values()))
        try:
            source = await self._instances.source()
            conversation = await source.fetch_messages(public_id, until=until)
        except SyncdError as error:
            reason = f"the conversation could not be read from the source: {_sentence(error)}"
            return answers | {name: Written(error=reason, source=True) for name in held}
        except Exception as error:  # the last resort: a bug must not stop the daemon
            return answers | {name: self._internal("source", error, selection_id) for name in held}

        async def write(name: str) -> None:
            try:
                answers[name] = await self._write(name, records[name], conversation, held[name])
            except SyncdError as error:
                answers[name] = Written(error=_sentence(error))
            except Exception as error:  # the last resort: a bug must not stop the daemon
                answers[name] = self._internal(name, error, selection_id)
            log.info(
                "messages.done",
                selection_id=selection_id,
                crm=name,
                count=answers[name].written,
            )

        async with anyio.create_task_group() as tg:
            for name in held:
                tg.start_soon(write, name)
        return answers

    async def _write(
        self, name: str, record: str, conversation: list[Message], held: frozenset[str]
    ) -> Written:
        """One CRM's writes, run again from its listing when an answer was lost."""
        if not conversation:
            return Written()
        crm = await self._instances.crm(name)
        limit = crm.body_limit
        first = missing(conversation, held, limit)
        if not first:
            return Written()
        policy = self._instances.retry
        known: list[frozenset[str] | None] = [held]

        async def attempt() -> None:
            keys = known[0]
            if keys is None:  # after a lost answer: what landed, from the CRM
                keys = await crm.message_ids(record)
            todo = missing(conversation, keys, limit)
            if not todo:
                return
            try:
                await crm.add_messages(record, todo)
            except WriteUncertain:
                known[0] = None
                raise

        retrying = policy.rerun_lost_answers(name, "messages")
        await retrying(attempt)
        ids = {a.message.id for a in first}
        split = {a.message.id for a in first if len(activities(a.message, limit)) > 1}
        return Written(len(ids), len(split))

    def _internal(self, name: str, error: Exception, selection_id: str | None) -> Written:
        log.error(
            "messages.internal_error",
            selection_id=selection_id,
            instance=name,
            error_type=type(error).__name__,
            exc_info=error,
        )
        return Written(error=f"internal error while writing messages to {name}; see the log")


def with_messages(outcome: TargetOutcome, written: Written | None) -> TargetOutcome:
    """``outcome`` carrying what was written of the conversation (or why not)."""
    if written is None:
        return outcome
    if written.error:
        return replace(outcome, messages=None, messages_error=written.error)
    return replace(outcome, messages=written.written, detail=_split_note(outcome, written))


def _split_note(outcome: TargetOutcome, written: Written) -> str:
    if not written.split:
        return outcome.detail
    note = f"{written.split} long message(s) written in numbered parts"
    return f"{outcome.detail}; {note}" if outcome.detail else note


def _sentence(error: SyncdError) -> str:
    return error.describe() if isinstance(error, ConnectorError) else str(error)


def record_ids(outcomes: Mapping[str, TargetOutcome]) -> dict[str, str]:
    """The CRMs where the person has a record now, and its id there."""
    return {
        name: outcome.id
        for name, outcome in outcomes.items()
        if outcome.outcome in HELD and outcome.id is not None
    }
