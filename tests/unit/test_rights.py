"""forget, block, export and cancel (P6) in process: the real daemon, journal and do-not-sync
list around memory connectors, driven through the real control client."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rig.memory_crm import numbered_person
from sync.errors import UsageError
from tests.inprocess import CRMS, Machine, Running


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine.make(tmp_path)


async def forget(running: Running, ref: str, *, undo: bool = False) -> dict[str, Any]:
    """A forget, waited for to the end."""
    answer: dict[str, Any] = await running.call(
        lambda: running.client.forget(ref, None, undo=undo, wait=10.0)
    )
    if not undo and answer["state"] == "pending":
        done = await running.outcome(answer["id"])
        answer = {**answer, "state": done["state"], "crms": done["targets"]}
    return answer


def outcomes(targets: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: target["outcome"] for name, target in targets.items()}


def calls(machine: Machine) -> dict[str, int]:
    """How many calls the source and each CRM have received so far."""
    return {"source": len(machine.source.calls)} | {
        name: len(crm.calls) for name, crm in machine.crms.items()
    }


class TestForget:
    """forget erases everywhere, is journaled, and keeps the person out for good."""

    async def test_forget_erases_in_every_crm_and_lists_the_person(self, machine: Machine) -> None:
        """Both CRMs erase the record; the journal is empty; status counts one entry."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            answer = await forget(running, "person-1")
            status = await running.call(running.client.status)
        assert outcomes(answer["crms"]) == dict.fromkeys(CRMS, "erased")
        assert [crm.held("urn:li:member:1") for crm in machine.crms.values()] == [0, 0]
        assert status["do_not_sync"] == 1
        assert await machine.journal_pending() == 0

    async def test_add_contact_after_forget_reaches_no_crm_and_not_the_source(
        self, machine: Machine
    ) -> None:
        """After forget, add-contact and check are refused before anything is asked."""
        async with machine.daemon() as running:
            await forget(running, "person-1")
            before = calls(machine)
            refused = await running.outcome((await running.add("person-1"))[0])
            checked = await running.call(running.client.check, "person-1", None)
        assert outcomes(refused["targets"]) == dict.fromkeys(CRMS, "refused")
        assert "forget --undo person-1" in refused["targets"]["hubspot"]["detail"]
        assert {a.get("refused") is not None for a in checked["crms"].values()} == {True}
        assert calls(machine) == before

    async def test_a_changed_public_id_is_caught_by_the_member_id(self, machine: Machine) -> None:
        """The member id joins the list too: the same person under a new publicId is
        refused right after the source read, and no CRM is asked."""
        renamed = replace(numbered_person(1), public_id="person-1-renamed")
        async with machine.daemon() as running:
            await forget(running, "person-1")
            machine.source.people["person-1-renamed"] = renamed
            before = calls(machine)
            refused = await running.outcome((await running.add("person-1-renamed"))[0])
        assert outcomes(refused["targets"]) == dict.fromkeys(CRMS, "refused")
        after = calls(machine)
        assert after["source"] == before["source"] + 1
        assert all(after[name] == before[name] for name in CRMS)

    async def test_undo_lets_the_person_be_created_again(self, machine: Machine) -> None:
        """forget --undo lifts the entry: the next add-contact creates the person anew."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            await forget(running, "person-1")
            lifted = await forget(running, "person-1", undo=True)
            again = await running.outcome((await running.add("person-1"))[0])
            status = await running.call(running.client.status)
        assert (lifted["blocked"], lifted["removed"]) == (False, 1)
        assert outcomes(again["targets"]) == dict.fromkeys(CRMS, "created")
        assert status["do_not_sync"] == 0

    async def test_a_profile_the_source_no_longer_shows_is_erased_by_its_url(
        self, machine: Machine
    ) -> None:
        """A closed account: the source answers 404, and the records are found by the
        profile URL syncd wrote."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            del machine.source.people["person-1"]
            answer = await forget(running, "person-1")
        assert outcomes(answer["crms"]) == dict.fromkeys(CRMS, "erased")
        assert [crm.held("urn:li:member:1") for crm in machine.crms.values()] == [0, 0]

    async def test_forget_of_someone_in_no_crm_is_absent(self, machine: Machine) -> None:
        """Nobody to erase is `absent`, not a failure."""
        async with machine.daemon() as running:
            answer = await forget(running, "person-2")
        assert outcomes(answer["crms"]) == dict.fromkeys(CRMS, "absent")

    async def test_a_lost_delete_answer_is_erased_once(self, machine: Machine) -> None:
        """The delete went through but its answer was lost: the re-run finds nobody, and
        the outcome still says erased."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            machine.crms["hubspot"].lose_next_write()
            answer = await forget(running, "person-1")
        assert outcomes(answer["crms"]) == dict.fromkeys(CRMS, "erased")
        assert machine.crms["hubspot"].calls.count("erase") == 2
        assert machine.crms["hubspot"].held("urn:li:member:1") == 0

    async def test_a_forget_accepted_survives_a_crash(self, machine: Machine) -> None:
        """Accepted while paused and killed, the forget is carried out by the next run."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            await running.call(running.client.call, "POST", "/v1/pause")
            accepted = await running.call(lambda: running.client.forget("person-1", None))
            running.handle.kill()
        assert accepted["state"] == "pending"
        assert await machine.journal_pending() == 1
        async with machine.daemon() as running:
            done = await running.outcome(accepted["id"])
        assert outcomes(done["targets"]) == dict.fromkeys(CRMS, "erased")
        assert await machine.journal_pending() == 0


class TestBlock:
    """block keeps a person out without touching the CRMs; unblock lets them in again."""

    async def test_block_refuses_add_contact_and_leaves_the_records(self, machine: Machine) -> None:
        """The record stays as it was; the add-contact is refused before the source."""
        async with machine.daemon() as running:
            await running.outcome((await running.add("person-1"))[0])
            records = {name: dict(crm.records) for name, crm in machine.crms.items()}
            await running.call(running.client.block, "person-1")
            before = calls(machine)
            refused = await running.outcome((await running.add("person-1"))[0])
            await running.call(lambda: running.client.block("person-1", undo=True))
            again = await running.outcome((await running.add("person-1"))[0])
        assert outcomes(refused["targets"]) == dict.fromkeys(CRMS, "refused")
        assert calls(machine)["source"] > before["source"]  # only the add after unblock
        assert {name: dict(crm.records) for name, crm in machine.crms.items()} == records
        assert outcomes(again["targets"]) == dict.fromkeys(CRMS, "unchanged")


class TestExport:
    """export shows what each CRM holds now, and writes nothing."""

    async def test_export_gives_each_crm_s_record(self, machine: Machine) -> None:
        """The fields the CRM holds, its id, and nothing found where nothing is."""
        async with machine.daemon() as running:
            created = await running.outcome(
                (await running.call(running.client.add, ["person-1"], ["hubspot"], False))[
                    "selections"
                ][0]["id"]
            )
            writes = machine.crms["hubspot"].calls.count("upsert_contacts")
            answer = await running.call(running.client.export, "person-1", None)
        hubspot, pipedrive = answer["crms"]["hubspot"], answer["crms"]["pipedrive"]
        assert hubspot["found"]
        assert hubspot["id"] == created["targets"]["hubspot"]["id"]
        assert hubspot["fields"] == dict(machine.crms["hubspot"].records[hubspot["id"]].fields)
        assert pipedrive == {"found": False}
        assert answer["source"]["profile_url"].endswith("person-1")
        assert machine.crms["hubspot"].calls.count("upsert_contacts") == writes


class TestCancel:
    """cancel removes a queued selection; too late once relayed."""

    async def test_cancel_of_a_paused_selection_sends_nothing(self, machine: Machine) -> None:
        """Cancelled while paused: nothing reaches any CRM after resume, the journal is empty."""
        async with machine.daemon() as running:
            await running.call(running.client.call, "POST", "/v1/pause")
            (selection,) = await running.add("person-1")
            cancelled = await running.call(running.client.cancel, selection)
            assert await machine.journal_pending() == 0
            await running.call(running.client.call, "POST", "/v1/resume")
            (later,) = await running.add("person-2")
            await running.outcome(later)
            final = await running.outcome(selection)
        assert cancelled == {"id": selection, "cancelled": True}
        assert final["state"] == "cancelled"
        assert [crm.held("urn:li:member:1") for crm in machine.crms.values()] == [0, 0]
        assert [crm.held("urn:li:member:2") for crm in machine.crms.values()] == [1, 1]

    async def test_cancel_after_delivery_names_the_crms(self, machine: Machine) -> None:
        """Too late: the answer says which CRMs have the person and how to erase them."""
        async with machine.daemon() as running:
            (selection,) = await running.add("person-1")
            await running.outcome(selection)
            with pytest.raises(UsageError) as refused:
                await running.call(running.client.cancel, selection)
        assert "hubspot, pipedrive received it" in str(refused.value)
        assert "syncd forget person-1" in str(refused.value)
