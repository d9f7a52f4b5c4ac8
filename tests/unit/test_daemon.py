"""The daemon's lifecycle in process: the real `run_daemon` (control socket, workers,
journal, relay) around memory connectors, driven through the real control client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from rig.memory_crm import (
    MemoryCRM,
    MemorySource,
    memory_clients,
    memory_config,
    numbered_person,
)
from sync.config import Config
from sync.control.client import ControlClient
from sync.daemon import DaemonHandle, run_daemon
from sync.journal import Journal
from sync.retry import RetryPolicy
from sync.secrets import MemoryTokenStore

CRMS = ("hubspot", "pipedrive")
FAST = RetryPolicy(attempts=2, initial_delay=0.0, max_delay=0.0, deadline=5)


person = numbered_person


@dataclass
class Machine:
    """What outlives one daemon run: the config, the keyring, the CRMs and the source."""

    config: Config
    store: MemoryTokenStore
    source: MemorySource
    crms: dict[str, MemoryCRM]

    @classmethod
    def make(cls, root: Path, people: int = 3) -> Machine:
        run = root / "run"
        run.mkdir(mode=0o700)
        base = memory_config(CRMS, path=root / "config.toml")
        daemon = replace(
            base.daemon, socket=run / "syncd.sock", journal_dir=str(root / "state" / "journal")
        )
        tokens = {"source": "tok-source"} | {name: f"tok-{name}" for name in CRMS}
        return cls(
            replace(base, daemon=daemon),
            MemoryTokenStore(tokens),
            MemorySource(person(n) for n in range(people)),
            {name: MemoryCRM(name) for name in CRMS},
        )

    @asynccontextmanager
    async def daemon(self, config: Config | None = None) -> AsyncIterator[Running]:
        """One daemon run; stopped as SIGTERM would stop it when the block ends."""
        start = partial(
            run_daemon,
            retry=FAST,
            clients=memory_clients(self.source, self.crms),
            handle_signals=False,
            drain_seconds=2.0,
        )
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                handle: DaemonHandle = await tg.start(start, config or self.config, self.store)
                try:
                    yield Running(handle, ControlClient(self.config.daemon.socket))
                finally:
                    handle.stop()

    async def journal_pending(self) -> int:
        """How many selections the journal on disk holds (read as a new daemon would)."""
        journal = await Journal.open(self.config.daemon.journal_path(), self.store)
        replayed = await journal.replay()
        return len(replayed.selections)


@dataclass
class Running:
    """A running daemon and a client of its control socket."""

    handle: DaemonHandle
    client: ControlClient

    async def call(self, method: Callable[..., Any], *args: object) -> Any:
        """A control-client call, in a thread (the client is blocking, as the CLI is)."""
        return await anyio.to_thread.run_sync(partial(method, *args))

    async def add(self, *refs: str) -> list[str]:
        answer = await self.call(self.client.add, list(refs), None, False)
        return [s["id"] for s in answer["selections"]]

    async def outcome(self, selection_id: str) -> dict[str, Any]:
        wait = partial(self.client.selection, selection_id, wait=10.0)
        answer: dict[str, Any] = await anyio.to_thread.run_sync(wait)
        return answer


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
