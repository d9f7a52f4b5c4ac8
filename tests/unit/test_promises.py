"""Two promises proven in process, with no OS keyring: a credential never lands in a file
beside the keyring (P2), and a selection leaves the journal before anyone hears it is done
(P1, P5). The end-to-end tests prove the same through real processes and the real keyring.

The daemon here is the real one (`run_daemon`: control API on a Unix socket, workers, journal,
log file), its tokens in a :class:`MemoryTokenStore`, its clients talking to the sandboxes'
ASGI apps in this process.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import keyring
import pytest
from cryptography.fernet import Fernet

from connectors import registry
from connectors.base import ConnectorSettings
from rig.residue import scan
from rig.runner import toml_config
from rig.stack import ThrowawayDirs
from sync import log
from sync.cli import main
from sync.config import load
from sync.control.client import ControlClient
from sync.daemon import DaemonHandle, run_daemon
from sync.journal import KEY_NAME, Journal
from sync.retry import RetryPolicy
from sync.secrets import MemoryTokenStore
from sync.state import Selection
from tests.test_secrets import DictKeyring  # the suite's in-memory keyring backend

SOURCE_TOKEN = "canary-src-token-4e1d7b90aa"
HUBSPOT_TOKEN = "canary-hub-token-9c3f52e6bb"
#: Every dir a credential must stay out of (HOME too, for anything that ignores XDG).
HOME_DIRS = ("home", "config", "state", "cache", "data", "log", "run", "tmp")


def decrypted(directory: Path, key: bytes) -> bytes:
    """Every journal segment in ``directory``, decrypted and joined (b"" when there is none)."""
    fernet = Fernet(key)
    return b"".join(fernet.decrypt(path.read_bytes()) for path in directory.glob("*.sj"))


def sandbox(type_name: str, token: str) -> Any:
    """A fresh sandbox of a connector type that accepts ``token``."""
    return registry.load(registry.info(type_name).sandbox)(tokens=[token])


@dataclass(frozen=True, slots=True)
class InProcess:
    """A daemon running in this process, and what a test needs to look at it."""

    dirs: ThrowawayDirs
    store: MemoryTokenStore
    handle: DaemonHandle
    client: ControlClient
    source: Any

    @property
    def journal_dir(self) -> Path:
        return self.dirs["state"] / "journal"

    def journal_key(self) -> bytes:
        """The journal's key, from the (memory) keyring."""
        key = self.store.get(KEY_NAME)
        assert key is not None
        return key.encode()

    def journaled_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` a segment on disk holds now."""
        plain = decrypted(self.journal_dir, self.journal_key())
        return {i for i in ids if i.encode() in plain}

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One control API call over the daemon's socket, from a thread (the loop is ours)."""
        return await anyio.to_thread.run_sync(partial(self.client.call, method, path, body))


@asynccontextmanager
async def daemon_in_process(root: Path) -> AsyncIterator[InProcess]:
    """The real daemon with a source and a HubSpot sandbox, until the block ends."""
    dirs = ThrowawayDirs.make(root)
    apps = {
        "source": sandbox("linkedin", SOURCE_TOKEN),
        "hubspot": sandbox("hubspot", HUBSPOT_TOKEN),
    }
    unused = "http://127.0.0.1:9"  # requests go to the ASGI apps, never to this address
    socket = dirs["run"] / "syncd.sock"
    config_path = dirs["config"] / "config.toml"
    tables: dict[str, Mapping[str, object]] = {
        "daemon": {
            "socket": str(socket),
            "log_file": str(dirs["log"] / "syncd.log"),
            "journal_dir": str(dirs["state"] / "journal"),
            "log_level": "debug",
        },
        "source": apps["source"].config_table(unused),
        "crm.hubspot": apps["hubspot"].config_table(unused),
    }
    config_path.write_text(toml_config(tables))
    config = load(config_path)
    store = MemoryTokenStore({n: sb.credential(t) for n, sb, t in _tokens(apps)})

    def transport(settings: ConnectorSettings) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=apps[settings.instance].app)

    log.configure(config.daemon.log_level, config.daemon.log_path())
    fast = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, deadline=5)
    daemon = partial(run_daemon, retry=fast, transport=transport, handle_signals=False)
    try:
        async with anyio.create_task_group() as tg:
            handle = await tg.start(daemon, config, store)
            try:
                yield InProcess(dirs, store, handle, ControlClient(socket), apps["source"])
            finally:
                handle.stop()
    finally:
        log.reset()


def _tokens(apps: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    return [("source", apps["source"], SOURCE_TOKEN), ("hubspot", apps["hubspot"], HUBSPOT_TOKEN)]


def public_ids(source: Any, count: int) -> list[str]:
    """The publicIds of ``count`` people the source sandbox holds."""
    return [str(p["publicId"]) for p in source.snapshot()["people"]][:count]


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ThrowawayDirs:
    """HOME, every XDG dir and the temp dir of this process pointed into ``tmp_path``."""
    dirs = ThrowawayDirs.make(tmp_path, HOME_DIRS)
    for name, value in dirs.environ(HOME=str(dirs["home"])).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(dirs["tmp"]))
    return dirs


@pytest.fixture
def backend() -> Iterator[DictKeyring]:
    """The in-memory keyring backend, installed for one test."""
    previous = keyring.get_keyring()
    installed = DictKeyring()
    keyring.set_keyring(installed)
    yield installed
    keyring.set_keyring(previous)


class TestCredentialsStayInTheKeyring:
    """P2: a credential goes to the keyring and nowhere beside it."""

    def test_auth_set_and_remove_write_no_file(
        self,
        private_home: ThrowawayDirs,
        backend: DictKeyring,
        monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        """`syncd auth set` stores the canary in the keyring; no file and no output holds it."""
        for name, token in (("source", SOURCE_TOKEN), ("hubspot", HUBSPOT_TOKEN)):
            monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
            assert main(["auth", "set", name, "--stdin"]) == 0
        assert backend.values == {
            ("syncd", "source"): SOURCE_TOKEN,
            ("syncd", "hubspot"): HUBSPOT_TOKEN,
        }
        assert main(["auth", "remove", "source"]) == 0
        assert ("syncd", "source") not in backend.values
        needles = {SOURCE_TOKEN: "source token", HUBSPOT_TOKEN: "hubspot token"}
        assert scan([private_home.root], needles).hits == ()
        out, err = capfd.readouterr()
        assert not [kind for text, kind in needles.items() if text in out + err]

    async def test_a_daemon_relaying_writes_no_credential(
        self, tmp_path: Path, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """After relaying with canary tokens at debug level, no file or output holds one."""
        async with daemon_in_process(tmp_path) as daemon:
            refs = public_ids(daemon.source, 2)
            accepted = await daemon.call(
                "POST", "/v1/selections", {"refs": refs, "to": None, "with_messages": True}
            )
            for selection in accepted["selections"]:
                answer = await daemon.call("GET", f"/v1/selections/{selection['id']}?wait=20")
                assert answer["state"] == "done"
                assert answer["targets"]["hubspot"]["outcome"] == "created"
            journal_key = daemon.store.get(KEY_NAME)
        assert journal_key is not None
        needles = {SOURCE_TOKEN: "source token", HUBSPOT_TOKEN: "hubspot token"}
        needles[journal_key] = "journal key"
        report = scan([tmp_path], needles)
        assert (tmp_path / "log" / "syncd.log").stat().st_size > 0  # the scan read a real log
        assert report.hits == ()
        out, err = capfd.readouterr()
        assert not [kind for text, kind in needles.items() if text in out + err]


class TestJournalBeforeDone:
    """P1 and P5: a selection is off the disk before anyone is told it is done."""

    async def test_done_removes_the_entry_from_disk(self, tmp_path: Path) -> None:
        """`Journal.done` leaves nothing of that selection on disk; a new start replays the rest."""
        key = Fernet.generate_key()
        journal = Journal(tmp_path, key)
        first, second = (Selection(Selection.new_id(), p, ("hubspot",)) for p in ("ada", "bob"))
        await journal.append([first, second])
        assert journal.pending() == 2
        await journal.done(first.id)
        assert journal.pending() == 1
        on_disk = decrypted(tmp_path, key)
        assert first.id.encode() not in on_disk
        assert second.id.encode() in on_disk
        await journal.done(second.id)
        assert journal.pending() == 0
        assert decrypted(tmp_path, key) == b""

    async def test_a_waiter_told_done_finds_the_journal_without_it(self, tmp_path: Path) -> None:
        """When a selection's waiters wake, its journal entry is already gone from disk."""
        async with daemon_in_process(tmp_path) as daemon:
            await daemon.call("POST", "/v1/pause")
            refs = public_ids(daemon.source, 3)
            accepted = await daemon.call(
                "POST", "/v1/selections", {"refs": refs, "to": None, "with_messages": False}
            )
            ids = [s["id"] for s in accepted["selections"]]
            assert daemon.journaled_ids(ids) == set(ids)  # accepted means on disk
            seen_at_wake: dict[str, set[str]] = {}

            async def watch(selection_id: str) -> None:
                await daemon.handle.state.tracked[selection_id].finished.wait()
                seen_at_wake[selection_id] = daemon.journaled_ids(ids)  # no await in between

            async with anyio.create_task_group() as tg:
                for selection_id in ids:
                    tg.start_soon(watch, selection_id)
                await anyio.lowlevel.checkpoint()  # every watcher waits before the resume
                await daemon.call("POST", "/v1/resume")
            assert sorted(seen_at_wake) == sorted(ids)
            for selection_id, on_disk in seen_at_wake.items():
                assert selection_id not in on_disk
            answers = [await daemon.call("GET", f"/v1/selections/{i}?wait=20") for i in ids]
            assert {a["state"] for a in answers} == {"done"}
            assert daemon.journaled_ids(ids) == set()
            assert decrypted(daemon.journal_dir, daemon.journal_key()) == b""
