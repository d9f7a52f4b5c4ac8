"""Data-subject rights (P6): `forget` erases a person everywhere syncd writes, `export` shows
what each CRM holds about them, `block`/`unblock` keep them out of syncd without touching
the CRMs.

A `forget` is a journaled selection like an `add-contact` (so it is carried out through
outages and a restart); its publicId joins the do-not-sync list when it is accepted (see
sync/control/server.py), its member id once the source has been read here. Exports and
blocks are answered at once and write nothing to any CRM.
"""

from __future__ import annotations

from typing import Any

import structlog

from connectors.base import FIELDS, Contact, Erasure, Holding, TargetOutcome
from sync.donotsync import DoNotSync
from sync.errors import RecordRejected, SyncdError, WriteUncertain
from sync.instances import Instances
from sync.relay import SOURCE, Relay, failure
from sync.state import Selection

log = structlog.get_logger("syncd.rights")


def erasure_outcome(erasure: Erasure, *, lost_answer: bool = False) -> TargetOutcome:
    """The selection outcome an erasure stands for. ``lost_answer``: an earlier delete's
    answer was lost, so a person now ``absent`` was erased by it."""
    if erasure.outcome == "ambiguous":
        ids = ", ".join(erasure.candidates)
        return TargetOutcome(
            "ambiguous",
            detail=f"several records match ({ids}); nothing was erased: delete the right one "
            "by hand, then run `syncd forget` again to check",
            candidates=erasure.candidates,
        )
    if erasure.outcome == "absent":
        if lost_answer:
            return TargetOutcome(
                "erased", detail="the answer to the delete was lost; the person is gone now"
            )
        return TargetOutcome("absent")
    notes = []
    if erasure.activities:
        notes.append(f"with {erasure.activities} activities syncd wrote")
    notes.append(erasure.retention or "deleted for good")
    return TargetOutcome("erased", id=erasure.id, detail="; ".join(notes))


def profile_url(selection: Selection) -> str:
    """The profile URL syncd writes for a publicId (connectors.base.profile_key reads it back
    the same whatever the host)."""
    return f"https://www.linkedin.com/in/{selection.public_id}/"


class Rights:
    """Carries out forget, export and block for the daemon."""

    def __init__(self, relay: Relay, instances: Instances, blocked: DoNotSync) -> None:
        self._relay = relay
        self._instances = instances
        self._blocked = blocked

    # -- forget ------------------------------------------------------------------------

    async def forget(self, selection: Selection) -> dict[str, TargetOutcome]:
        """Erase the person of ``selection`` from each target; never raises for a
        connector problem. The member id joins the do-not-sync list before any CRM is asked."""
        try:
            person = await self._relay.read_person(selection.public_id)
            await self._blocked.add(selection.public_id, person.member_id)
        except RecordRejected:
            # The source no longer shows the profile (a closed account, a broken tie): the
            # person can still be found by the profile URL syncd wrote into each CRM.
            log.info("forget.profile_gone", selection_id=selection.id)
            contact = Contact(member_id="", fields={"linkedin_url": profile_url(selection)})
            return await self._erase_everywhere(selection, contact)
        except SyncdError as error:
            await self._relay.source_failed(error)
            log.warning("forget.source_failed", selection_id=selection.id)
            return dict.fromkeys(selection.targets, failure(error))
        except Exception as error:  # the last resort: a bug must not stop the daemon
            outcome = self._relay.internal(
                SOURCE, error, doing="reading from the source", selection_id=selection.id
            )
            return dict.fromkeys(selection.targets, outcome)
        return await self._erase_everywhere(selection, self._relay.contact_of(person))

    async def _erase_everywhere(
        self, selection: Selection, contact: Contact
    ) -> dict[str, TargetOutcome]:
        erased = await self._relay.each_crm(
            selection.targets,
            lambda name, _: self._erase(name, contact),
            doing="erasing in",
            selection_id=selection.id,
        )
        for name, outcome in erased.items():
            log.info("forget.done", selection_id=selection.id, crm=name, outcome=outcome.outcome)
        return erased

    async def _erase(self, name: str, contact: Contact) -> TargetOutcome:
        """One CRM's erasure. A delete whose answer was lost is run again from the match,
        which then finds the person gone (P5: exactly once, decided by the CRM)."""
        policy = self._instances.retry
        lost: list[bool] = []

        async def attempt() -> Erasure:
            crm = await self._instances.crm(name)
            try:
                return await crm.erase(contact)
            except WriteUncertain:
                lost.append(True)
                raise

        retrying = policy.rerun_lost_answers(name, "erase")
        erasure: Erasure = await retrying(attempt)
        return erasure_outcome(erasure, lost_answer=bool(lost))

    # -- export ------------------------------------------------------------------------

    async def export(self, public_id: str, targets: tuple[str, ...]) -> dict[str, Any]:
        """What each target CRM holds about the person now, and where it came from; writes
        nothing anywhere. The do-not-sync list does not stop it: a person who asked to be
        forgotten may still ask what is left."""
        try:
            person = await self._relay.read_person(public_id)
        except SyncdError as error:
            await self._relay.source_failed(error)
            return {"crms": dict.fromkeys(targets, _unanswered(failure(error)))}
        except Exception as error:  # the last resort: a bug must not stop the daemon
            outcome = self._relay.internal(SOURCE, error, doing="reading from the source")
            return {"crms": dict.fromkeys(targets, _unanswered(outcome))}
        contact = self._relay.contact_of(person)
        held = await self._relay.each_crm(
            targets, lambda _, crm: crm.export(contact), doing="asking"
        )
        results = {
            name: _unanswered(answer) if isinstance(answer, TargetOutcome) else holding_json(answer)
            for name, answer in held.items()
        }
        log.info("export.done", count=len(results))
        return {
            "source": {"type": self._instances.source_type, "profile_url": person.profile_url},
            "crms": {name: results[name] for name in targets},
        }

    # -- block -------------------------------------------------------------------------

    async def block(self, public_id: str) -> dict[str, Any]:
        """Put the person on the do-not-sync list (nothing is asked of the source or a CRM)."""
        await self._blocked.add(public_id)
        log.info("block.added", count=len(self._blocked))
        return {"blocked": True}

    async def unblock(self, public_id: str) -> dict[str, Any]:
        """Lift the person's entry; if their publicId changed since, find it by the member
        id the source gives now."""
        removed = await self._blocked.remove(public_id=public_id)
        if not removed:
            try:
                person = await self._relay.read_person(public_id)
            except SyncdError:
                person = None
            if person is not None:
                removed = await self._blocked.remove(member_id=person.member_id)
        log.info("block.lifted", count=removed)
        return {"blocked": False, "removed": removed}


def holding_json(held: Holding) -> dict[str, Any]:
    """`export`'s answer for one CRM (the control API's shape)."""
    if not held.found:
        answer: dict[str, Any] = {"found": False}
        if held.candidates:
            answer["candidates"] = list(held.candidates)
        return answer
    dates = [moment.isoformat() for moment in held.activities]
    order = {key: i for i, key in enumerate(FIELDS)}
    fields = dict(sorted(held.fields.items(), key=lambda kv: order.get(kv[0], len(order))))
    return {
        "found": True,
        "id": held.id,
        "url": held.url,
        "step": held.step,
        "fields": fields,
        "activities": {"count": len(dates), "dates": dates},
        "synced_at": held.synced_at,
    }


def _unanswered(outcome: TargetOutcome) -> dict[str, Any]:
    return {"found": False, "error": outcome.detail, "reason": outcome.reason}
