"""The daemon's lifecycle in process: the real `run_daemon` (control socket, workers,
journal, relay) around memory connectors, driven through the real control client."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sync.relay import SOURCE_READS
from tests.inprocess import CRMS, Machine


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine.make(tmp_path)


class TestLifecycle:
    """Start, relay, stop, crash and start again, all in one process, in well under a second."""

    async def test_a_selection_reaches_every_crm_and_leaves_the_journal(
        self, machine: Machine
    ) -> None:
        """An accepted selection ends created in every CRM, and nothing stays on disk."""
        async with machine.daemon() as running:
            (selection,) = await running.add("person-1")
            answer = await running.outcome(selection)
        assert answer["state"] == "done"
        assert {n: t["outcome"] for n, t in answer["targets"].items()} == dict.fromkeys(
            CRMS, "created"
        )
        assert [crm.held("urn:li:member:1") for crm in machine.crms.values()] == [1, 1]
        assert await machine.journal_pending() == 0

    async def test_a_crash_keeps_what_was_accepted_and_a_restart_delivers_it_once(
        self, machine: Machine
    ) -> None:
        """Killed while paused, the daemon leaves the selection journaled; the next run
        delivers it, exactly once."""
        async with machine.daemon() as running:
            await running.call(running.client.call, "POST", "/v1/pause")
            (selection,) = await running.add("person-2")
            running.handle.kill()
        assert await machine.journal_pending() == 1
        assert all(not crm.records for crm in machine.crms.values())
        async with machine.daemon() as running:
            answer = await running.outcome(selection)
        assert {t["outcome"] for t in answer["targets"].values()} == {"created"}
        assert [crm.held("urn:li:member:2") for crm in machine.crms.values()] == [1, 1]
        assert await machine.journal_pending() == 0

    async def test_a_bug_in_one_crm_fails_that_target_and_the_daemon_serves_on(
        self, machine: Machine
    ) -> None:
        """An unexpected exception in one CRM is that target's `failed`; the next selection
        and `status` still work."""
        machine.crms["pipedrive"].raise_unexpected_next(KeyError("a field no one expected"))
        async with machine.daemon() as running:
            (first,) = await running.add("person-0")
            broken = await running.outcome(first)
            (second,) = await running.add("person-1")
            fine = await running.outcome(second)
            status = await running.call(running.client.call, "GET", "/v1/status")
        assert broken["targets"]["hubspot"]["outcome"] == "created"
        assert broken["targets"]["pipedrive"]["outcome"] == "failed"
        assert "internal error" in broken["targets"]["pipedrive"]["detail"]
        assert {t["outcome"] for t in fine["targets"].values()} == {"created"}
        assert status["queue"] == 0

    async def test_a_crm_removed_from_the_config_drops_its_journal_entries(
        self, machine: Machine
    ) -> None:
        """A journaled selection whose only CRM left the config is dropped at the next start,
        not replayed for ever."""
        async with machine.daemon() as running:
            await running.call(running.client.call, "POST", "/v1/pause")
            await running.call(running.client.add, ["person-1"], ["pipedrive"], False)
            running.handle.kill()
        without = replace(machine.config, crms={"hubspot": machine.config.crms["hubspot"]})
        async with machine.daemon(without) as running:
            assert running.handle.state.pending() == 0
        assert await machine.journal_pending() == 0
        assert not machine.crms["pipedrive"].records


class TestBulk:
    """A long backlog leaves in full batches."""

    async def test_a_backlog_fills_batches_beyond_the_source_reads_in_flight(
        self, tmp_path: Path
    ) -> None:
        """250 people queued while paused reach each CRM in batches of up to 100 (the memory
        CRM's size): more than the profiles read from the source at once, so a selection
        waiting for its CRM's batch does not hold back the next source read."""
        machine = Machine.make(tmp_path, people=250)
        async with machine.daemon() as running:
            await running.call(running.client.call, "POST", "/v1/pause")
            refs = [f"person-{n}" for n in range(250)]
            ids = [
                s["id"]
                for s in (await running.call(running.client.add, refs, None, False))["selections"]
            ]
            await running.call(running.client.call, "POST", "/v1/resume")
            for selection in ids:
                assert (await running.outcome(selection))["state"] == "done"
        for crm in machine.crms.values():
            assert sum(crm.upsert_sizes) == 250
            assert max(crm.upsert_sizes) == 100, crm.upsert_sizes
            assert max(crm.upsert_sizes) > SOURCE_READS
