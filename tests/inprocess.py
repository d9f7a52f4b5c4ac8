"""An in-process daemon for tests: the real `run_daemon` (control socket, workers, journal,
relay) around memory connectors, driven through the real control client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio

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
    async def daemon(
        self,
        config: Config | None = None,
        *,
        follow_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> AsyncIterator[Running]:
        """One daemon run; stopped as SIGTERM would stop it when the block ends."""
        start = partial(
            run_daemon,
            retry=FAST,
            clients=memory_clients(self.source, self.crms),
            handle_signals=False,
            drain_seconds=2.0,
            follow_sleep=follow_sleep,
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
