"""Follow mode: every ``[follow] interval``, the new messages of the people the user follows.

Who is followed lives in the CRMs (the ``syncd_follow`` flag `syncd follow REF` sets on the
person's record), never on disk. A pass asks each CRM for its followed records, groups them by
the person's publicId, and hands each person to :class:`sync.messages.MessageRelay`, which reads
only that person's conversation and writes what each CRM lacks. People are taken one after
another, so the source sees one conversation read at a time; a source that keeps throttling
(429, or its bot defence's 999) after the edge's retries ends the pass early — the next one
comes an interval later. One task runs the passes, so two never overlap.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus

from connectors.base import Presence, TargetOutcome
from sync.config import FollowConfig
from sync.donotsync import DoNotSync
from sync.errors import PrivacyRefusal, SyncdError
from sync.instances import Instances
from sync.relay import Relay, failure

log = structlog.get_logger("syncd.follow")


@dataclass(frozen=True, slots=True)
class FollowPass:
    """What one pass did: when it ended, people checked, messages written, errors."""

    at: float
    people: int
    messages: int
    errors: int

    def as_json(self) -> dict[str, object]:
        """The status object's view."""
        return {
            "at": self.at,
            "people": self.people,
            "messages": self.messages,
            "errors": self.errors,
        }


class Follower:
    """Runs the follow passes, and sets or clears the flag for `syncd follow`."""

    def __init__(
        self,
        relay: Relay,
        instances: Instances,
        blocked: DoNotSync,
        config: FollowConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._relay = relay
        self._instances = instances
        self._blocked = blocked
        self._config = config
        self._sleep = sleep
        self._messages = relay.messages
        self.last: FollowPass | None = None

    def status(self) -> dict[str, object] | None:
        """`status`'s ``follow`` object: None while follow mode is off."""
        if not self._config.enabled:
            return None
        last = self.last.as_json() if self.last is not None else None
        return {"interval_s": self._config.interval_s, "last": last}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """A pass every interval, until cancelled (nothing when follow mode is off)."""
        task_status.started()
        if not self._config.enabled:
            return
        while True:
            await self._sleep(self._config.interval_s)
            await self.run_pass()

    async def run_pass(self) -> FollowPass:
        """One pass over every followed person; never raises for a connector problem."""
        listed = await self._relay.each_crm(
            tuple(self._instances.crm_names),
            lambda _, crm: crm.followed(),
            doing="listing followed people in",
        )
        people: dict[str, dict[str, str]] = {}
        errors = 0
        for name, found in listed.items():
            if isinstance(found, TargetOutcome):
                errors += 1
                continue
            for record in found:
                people.setdefault(record.public_id, {})[name] = record.id
        written = checked = 0
        for public_id, records in people.items():
            if self._blocked.holds(public_id=public_id):
                continue  # forgotten or blocked since: the flag alone is not consent
            checked += 1
            answers = await self._messages.relay(public_id, records)
            written += sum(a.written for a in answers.values())
            failed = [a for a in answers.values() if a.error]
            errors += len(failed)
            if failed and all(a.source for a in failed):
                log.warning("follow.source_refused", count=checked)
                break  # the source throttles or refuses: the next pass comes an interval later
        self.last = FollowPass(time.time(), checked, written, errors)
        log.info("follow.pass", count=checked, written=written, failures=errors)
        return self.last

    async def set_flag(
        self, public_id: str, targets: tuple[str, ...], follow: bool
    ) -> dict[str, dict[str, Any]]:
        """Set (or clear) the follow flag on the person's record in each target CRM."""
        try:
            contact = await self._relay.read_contact(public_id)
        except PrivacyRefusal as refusal:
            return {name: {"outcome": "refused", "detail": str(refusal)} for name in targets}
        except SyncdError as error:
            await self._relay.source_failed(error)
            outcome = failure(error)
            answer = {"outcome": "failed", "detail": outcome.detail, "reason": outcome.reason}
            return {name: dict(answer) for name in targets}
        marked = await self._relay.each_crm(
            targets, lambda _, crm: crm.set_follow(contact, follow), doing="marking in"
        )
        return {
            name: {"outcome": "failed", "detail": answer.detail, "reason": answer.reason}
            if isinstance(answer, TargetOutcome)
            else _flag_answer(answer, follow)
            for name, answer in marked.items()
        }


def _flag_answer(presence: Presence, follow: bool) -> dict[str, Any]:
    if presence.candidates:
        ids = ", ".join(presence.candidates)
        return {
            "outcome": "failed",
            "detail": f"several records match ({ids}); nothing was marked",
            "candidates": list(presence.candidates),
        }
    if not presence.found:
        return {
            "outcome": "absent",
            "detail": "not in this CRM: `syncd add-contact` the person first",
        }
    return {"outcome": "following" if follow else "not-following", "id": presence.id, "detail": ""}
