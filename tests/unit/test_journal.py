"""The pending-selection journal: durable before 202, gone once delivered, unreadable on its
own, replayed after a crash, damaged files set aside — never dropped, never a crash."""

from __future__ import annotations

import errno
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from cryptography.fernet import Fernet

from sync import inflight as inflight_module
from sync.control.server import build_app
from sync.errors import CredentialStoreUnavailable, SyncdError
from sync.journal import (
    DAMAGED,
    KEY_NAME,
    Journal,
    JournalUnwritable,
    Replay,
)
from sync.journal_files import unlink, write_atomically
from sync.secrets import MemoryTokenStore
from sync.state import DaemonState, Selection

CANARY = "canary-public-id-5f1e9a"


def selection(n: int, public_id: str | None = None) -> Selection:
    return Selection(f"sel_{n:04d}", public_id or f"person-{n}", ("hubspot", "eu"), n % 2 == 0)


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sj"))


async def test_entries_are_durable_and_unreadable_without_the_key(tmp_path: Path) -> None:
    """An appended selection is on disk at once, encrypted: no publicId in the bytes."""
    store = MemoryTokenStore()
    journal = await Journal.open(tmp_path / "j", store)
    await journal.append([selection(1, CANARY)])
    (path,) = files(tmp_path / "j")
    assert CANARY.encode() not in path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "j").stat().st_mode & 0o777 == 0o700
    assert store.get(KEY_NAME)


async def test_a_delivered_selection_leaves_nothing(tmp_path: Path) -> None:
    """Done everywhere: the segment shrinks, then goes."""
    journal = await Journal.open(tmp_path, MemoryTokenStore())
    await journal.append([selection(n) for n in range(4)])
    for n in range(3):
        await journal.done(f"sel_{n:04d}")
    assert journal.pending() == 1
    assert len(files(tmp_path)) == 1
    await journal.done("sel_0003")
    assert files(tmp_path) == []
    assert journal.pending() == 0


async def test_selections_finishing_together_share_rewrites(tmp_path: Path) -> None:
    """A hundred selections done at once cost a couple of rewrites of their segment, not a
    hundred (a 1 000-line import would re-encrypt its segment per person: O(n²)); and each
    `done` returns only once a file without that selection is on disk."""
    key = Fernet.generate_key()
    written: list[bytes] = []

    def recording(path: Path, data: bytes) -> None:
        written.append(data)
        write_atomically(path, data)

    journal = Journal(tmp_path, key, write=recording)
    batch = [selection(n) for n in range(101)]
    await journal.append(batch)
    written.clear()
    left_on_disk: dict[str, bytes] = {}

    async def finish(selection_id: str) -> None:
        await journal.done(selection_id)
        left_on_disk[selection_id] = written[-1]

    async with anyio.create_task_group() as tg:
        for s in batch[:100]:
            tg.start_soon(finish, s.id)
    assert 1 <= len(written) <= 3, f"{len(written)} rewrites for 100 selections done together"
    fernet = Fernet(key)
    for selection_id, data in left_on_disk.items():
        assert selection_id.encode() not in fernet.decrypt(data)
    assert journal.pending() == 1
    reopened = await Journal(tmp_path, key).replay()
    assert [s.id for s in reopened.selections] == ["sel_0100"]


async def test_a_selection_done_while_its_segment_is_written_is_written_out_too(
    tmp_path: Path,
) -> None:
    """`done` changes memory without the lock: one done while the disk writes the segment for
    another must still see a file without it before it returns."""
    key = Fernet.generate_key()
    entered, gate, hold = threading.Event(), threading.Event(), threading.Event()

    def slow(path: Path, data: bytes) -> None:
        if hold.is_set():
            entered.set()
            gate.wait(10)
        write_atomically(path, data)

    journal = Journal(tmp_path, key, write=slow)
    await journal.append([selection(n) for n in range(3)])
    hold.set()
    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.done, "sel_0000")
        await anyio.to_thread.run_sync(entered.wait, 10)  # the first rewrite is on disk's side
        tg.start_soon(journal.done, "sel_0001")
        await anyio.wait_all_tasks_blocked()
        gate.set()
    (path,) = files(tmp_path)
    on_disk = Fernet(key).decrypt(path.read_bytes())
    assert b"sel_0000" not in on_disk
    assert b"sel_0001" not in on_disk
    assert b"sel_0002" in on_disk


async def test_a_restart_replays_what_was_not_delivered(tmp_path: Path) -> None:
    """A new journal on the same dir and key gets back exactly the undelivered selections."""
    store = MemoryTokenStore()
    first = await Journal.open(tmp_path, store)
    await first.append([selection(n) for n in range(6)])
    await first.append([selection(9, CANARY)])
    for n in (0, 2, 4, 5):
        await first.done(f"sel_{n:04d}")
    second = await Journal.open(tmp_path, store)  # the daemon died; a new one starts
    replay = await second.replay()
    assert sorted(s.id for s in replay.selections) == ["sel_0001", "sel_0003", "sel_0009"]
    assert {s.id: s for s in replay.selections}["sel_0009"] == selection(9, CANARY)
    assert replay.damaged == []
    for s in replay.selections:
        await second.done(s.id)
    assert files(tmp_path) == []


async def test_a_damaged_file_is_set_aside_and_reported(tmp_path: Path) -> None:
    """Garbage, a truncated file and a file from another key: moved to damaged/, the good
    segment still replays, nothing raises."""
    store = MemoryTokenStore()
    journal = await Journal.open(tmp_path, store)
    await journal.append([selection(1)])
    (good,) = files(tmp_path)
    other = await Journal.open(tmp_path / "other", MemoryTokenStore())
    await other.append([selection(2)])
    (foreign,) = files(tmp_path / "other")
    foreign.rename(tmp_path / "seg-foreign.sj")
    (tmp_path / "seg-garbage.sj").write_bytes(b"\x00\xffnot a fernet token")
    (tmp_path / "seg-truncated.sj").write_bytes(good.read_bytes()[:40])
    replay = await (await Journal.open(tmp_path, store)).replay()
    assert [s.id for s in replay.selections] == ["sel_0001"]
    assert sorted(p.name for p in replay.damaged) == [
        "seg-foreign.sj",
        "seg-garbage.sj",
        "seg-truncated.sj",
    ]
    assert sorted(p.name for p in (tmp_path / DAMAGED).iterdir()) == sorted(
        p.name for p in replay.damaged
    )
    assert files(tmp_path) == [good]


async def test_a_write_cut_short_is_not_replayed(tmp_path: Path) -> None:
    """A temp file left by a crash mid-write (its 202 never went out) is removed."""
    journal = await Journal.open(tmp_path, MemoryTokenStore())
    (tmp_path / ".seg-x.sj.ab12.tmp").write_bytes(b"half")
    replay = await journal.replay()
    assert replay.selections == []
    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


# -- interruptions: no crash loop ------------------------------------------------------


def inflight_logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.inflight"))


async def crash_with_started(directory: Path, store: MemoryTokenStore, *ids: str) -> Replay:
    """One daemon run: replay, start ``ids``, then die without a clean stop."""
    journal = await Journal.open(directory, store)
    replay = await journal.replay()
    for selection_id in ids:
        journal.started(selection_id)
    return replay


class TestInterruptions:
    """A selection whose processing keeps killing the daemon is set aside, not replayed forever."""

    async def test_three_interruptions_set_it_aside(self, tmp_path: Path) -> None:
        """After three runs died with it in flight, the fourth start sets it aside and the
        rest of the queue replays."""
        store = MemoryTokenStore()
        first = await Journal.open(tmp_path, store)
        await first.append([selection(1, CANARY), selection(2)])
        first.started("sel_0001")  # run 1 dies with it in flight
        for _ in range(2):  # runs 2 and 3 replay it, start it, die
            replay = await crash_with_started(tmp_path, store, "sel_0001")
            assert replay.set_aside == []
            assert sorted(s.id for s in replay.selections) == ["sel_0001", "sel_0002"]
        fourth = await Journal.open(tmp_path, store)
        replay = await fourth.replay()
        assert replay.set_aside == ["sel_0001"]
        assert [s.id for s in replay.selections] == ["sel_0002"]
        assert fourth.pending() == 1
        (aside,) = (tmp_path / DAMAGED).iterdir()
        assert aside.name.startswith("aside-")
        assert CANARY.encode() not in aside.read_bytes()
        assert aside.stat().st_mode & 0o777 == 0o600
        held, runs = fourth._decrypt(aside.read_bytes())
        assert held == [selection(1, CANARY)]
        assert len(runs["sel_0001"]) == 3
        assert inflight_logs(tmp_path) == []
        again = await (await Journal.open(tmp_path, store)).replay()
        assert (again.set_aside, [s.id for s in again.selections]) == ([], ["sel_0002"])

    async def test_queued_but_never_started_is_not_counted(self, tmp_path: Path) -> None:
        """A paused daemon restarted many times never starts the selection: nothing is set aside."""
        store = MemoryTokenStore()
        await (await Journal.open(tmp_path, store)).append([selection(1)])
        for _ in range(5):
            replay = await crash_with_started(tmp_path, store)
            assert replay.set_aside == []
            assert [s.id for s in replay.selections] == ["sel_0001"]

    async def test_a_clean_stop_counts_nothing(self, tmp_path: Path) -> None:
        """A SIGTERM drain that cuts a selection short is not the selection's fault."""
        store = MemoryTokenStore()
        await (await Journal.open(tmp_path, store)).append([selection(1)])
        for _ in range(4):
            journal = await Journal.open(tmp_path, store)
            assert (await journal.replay()).set_aside == []
            journal.started("sel_0001")
            journal.close()
            assert inflight_logs(tmp_path) == []

    async def test_a_finished_selection_is_not_counted(self, tmp_path: Path) -> None:
        """Started and delivered, then the run dies: the next start finds nothing to count."""
        store = MemoryTokenStore()
        journal = await Journal.open(tmp_path, store)
        await journal.append([selection(1), selection(2)])
        journal.started("sel_0001")
        await journal.done("sel_0001")
        replay = await (await Journal.open(tmp_path, store)).replay()
        assert [s.id for s in replay.selections] == ["sel_0002"]
        assert replay.set_aside == []

    async def test_a_crash_mid_replay_does_not_count_twice(self, tmp_path: Path) -> None:
        """A log replayed twice (the daemon died before deleting it) counts its run once."""
        store = MemoryTokenStore()
        journal = await Journal.open(tmp_path, store)
        await journal.append([selection(1)])
        journal.started("sel_0001")
        (log_file,) = inflight_logs(tmp_path)
        kept = log_file.read_bytes()
        await (await Journal.open(tmp_path, store)).replay()  # counts run 1
        log_file.write_bytes(kept)  # as if that replay died before deleting the log
        assert (await crash_with_started(tmp_path, store, "sel_0001")).set_aside == []
        assert (await crash_with_started(tmp_path, store, "sel_0001")).set_aside == []
        assert (await crash_with_started(tmp_path, store)).set_aside == ["sel_0001"]

    async def test_starting_writes_no_segment(self, tmp_path: Path) -> None:
        """Starting a selection appends a line to a log; no segment is rewritten (no O(n²))."""
        writes: list[Path] = []

        def counting(path: Path, data: bytes) -> None:
            writes.append(path)
            write_atomically(path, data)

        journal = Journal(tmp_path, Fernet.generate_key(), write=counting)
        batch = [selection(n) for n in range(1000)]
        await journal.append(batch)
        for s in batch:
            journal.started(s.id)
        assert len(writes) == 1
        (log_file,) = inflight_logs(tmp_path)
        assert b"sel_" not in log_file.read_bytes()
        assert len(log_file.read_bytes().splitlines()) == 1000

    async def test_logs_of_finished_work_rotate_away(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A long run keeps only the in-flight logs that still name unfinished work."""
        monkeypatch.setattr(inflight_module, "ROTATE_BYTES", 1000)
        store = MemoryTokenStore()
        journal = await Journal.open(tmp_path, store)
        batch = [selection(n) for n in range(200)]
        await journal.append(batch)
        journal.started(batch[0].id)  # stays in flight: its log must stay
        for s in batch[1:]:
            journal.started(s.id)
            await journal.done(s.id)
        assert len(inflight_logs(tmp_path)) == 2  # the oldest one's and the current one
        started, _ = (await Journal.open(tmp_path, store))._read_inflight()
        assert batch[0].id in started
        assert len(started) < 40  # of 200 started: only two small logs remain


# -- a disk that refuses writes --------------------------------------------------------


class Disk:
    """The journal's writer and remover, failing with ``refuse`` (an errno) while it is set."""

    def __init__(self) -> None:
        self.refuse: int | None = None

    def _check(self) -> None:
        if self.refuse is not None:
            raise OSError(self.refuse, "refused")

    def write(self, path: Path, data: bytes) -> None:
        self._check()
        write_atomically(path, data)

    def remove(self, path: Path) -> None:
        self._check()
        unlink(path)


def journal_on(disk: Disk, directory: Path, key: bytes) -> Journal:
    directory.mkdir(mode=0o700, exist_ok=True)
    return Journal(directory, key, write=disk.write, remove=disk.remove)


class Immutable:
    """Makes directories immutable with chattr +i (root cannot write in them either)."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def set(self, path: Path) -> None:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed; the seam tests cover the same paths")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"this file system refuses chattr +i: {done.stderr.decode().strip()}")
        self.made.append(path)

    def clear(self, path: Path) -> None:
        subprocess.run(["chattr", "-i", str(path)], check=True)
        self.made.remove(path)


@pytest.fixture
def immutable() -> Iterator[Immutable]:
    """Directories made immutable in a test, made writable again after it."""
    made = Immutable()
    yield made
    for path in list(made.made):
        made.clear(path)


class TestDiskRefuses:
    """A full or read-only disk: nothing half-accepted, nothing lost, no crash."""

    @pytest.mark.parametrize(
        ("code", "words"),
        [
            pytest.param(errno.ENOSPC, "the disk is full", id="ENOSPC"),
            pytest.param(errno.EROFS, "the file system is read-only", id="EROFS"),
            pytest.param(errno.EDQUOT, "the disk quota is exceeded", id="EDQUOT"),
            pytest.param(errno.EACCES, "permission denied", id="EACCES"),
        ],
    )
    async def test_append_accepts_nothing(self, tmp_path: Path, code: int, words: str) -> None:
        """A refused append raises one sentence naming the journal; nothing is tracked."""
        disk = Disk()
        journal = journal_on(disk, tmp_path / "j", Fernet.generate_key())
        disk.refuse = code
        with pytest.raises(JournalUnwritable) as caught:
            await journal.append([selection(1, CANARY)])
        assert f"the journal at {tmp_path / 'j'} cannot be written ({words})" in str(caught.value)
        assert CANARY not in str(caught.value)
        assert journal.pending() == 0
        assert list((tmp_path / "j").iterdir()) == []

    async def test_append_in_an_immutable_directory(
        self, tmp_path: Path, immutable: Immutable
    ) -> None:
        """A real directory that refuses new files: the append fails cleanly, the older
        segment stays and replays."""
        store = MemoryTokenStore()
        journal = await Journal.open(tmp_path / "j", store)
        await journal.append([selection(1)])
        immutable.set(tmp_path / "j")
        with pytest.raises(JournalUnwritable, match="operation not permitted"):
            await journal.append([selection(2)])
        assert journal.pending() == 1
        immutable.clear(tmp_path / "j")
        replay = await (await Journal.open(tmp_path / "j", store)).replay()
        assert [s.id for s in replay.selections] == ["sel_0001"]

    async def test_done_waits_in_memory_until_the_disk_takes_it(self, tmp_path: Path) -> None:
        """A refused rewrite or delete does not raise; status is told; the next write saves
        everything, and a restart meanwhile replays the delivered selection (harmless)."""
        disk, key = Disk(), Fernet.generate_key()
        journal = journal_on(disk, tmp_path, key)
        await journal.append([selection(1), selection(2)])
        await journal.append([selection(3)])
        disk.refuse = errno.ENOSPC
        await journal.done("sel_0001")  # a rewrite refused
        await journal.done("sel_0003")  # a delete refused
        problem = journal.problem()
        assert problem is not None
        assert f"the journal at {tmp_path} cannot be written (the disk is full)" in problem
        assert journal.pending() == 1
        meanwhile = await Journal(tmp_path, key).replay()
        assert sorted(s.id for s in meanwhile.selections) == ["sel_0001", "sel_0002", "sel_0003"]
        disk.refuse = None
        await journal.done("sel_0002")
        assert journal.problem() is None
        assert files(tmp_path) == []

    async def test_save_now_catches_up_on_its_own(self, tmp_path: Path) -> None:
        """With nothing else happening, the retry (save_now) writes what waited."""
        disk, key = Disk(), Fernet.generate_key()
        journal = journal_on(disk, tmp_path, key)
        await journal.append([selection(1), selection(2)])
        disk.refuse = errno.EROFS
        await journal.done("sel_0001")
        assert await journal.save_now() is False
        assert "read-only" in (journal.problem() or "")
        disk.refuse = None
        assert await journal.save_now() is True
        assert journal.problem() is None
        replay = await Journal(tmp_path, key).replay()
        assert [s.id for s in replay.selections] == ["sel_0002"]

    async def test_done_in_an_immutable_directory(
        self, tmp_path: Path, immutable: Immutable
    ) -> None:
        """The real thing: a directory that refuses changes keeps the daemon alive, and the
        entry leaves once the directory is writable again."""
        journal = await Journal.open(tmp_path / "j", MemoryTokenStore())
        await journal.append([selection(1)])
        immutable.set(tmp_path / "j")
        await journal.done("sel_0001")
        assert "operation not permitted" in (journal.problem() or "")
        assert len(files(tmp_path / "j")) == 1
        immutable.clear(tmp_path / "j")
        await journal.append([selection(2)])
        assert journal.problem() is None
        assert len(files(tmp_path / "j")) == 1  # the new segment only

    async def test_the_api_answers_503_and_accepts_nothing(self, tmp_path: Path) -> None:
        """POST /v1/selections on a full disk: 503 with the sentence, nothing tracked or queued."""
        disk = Disk()
        journal = journal_on(disk, tmp_path, Fernet.generate_key())
        disk.refuse = errno.ENOSPC
        state = DaemonState(["hubspot"], "test")
        send, receive = anyio.create_memory_object_stream[Selection](10)
        app = build_app(state, send, {"hubspot": object()}, _no_check, journal=journal)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as client:
            answer = await client.post("/v1/selections", json={"refs": [CANARY]})
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error.startswith(f"the journal at {tmp_path} cannot be written (the disk is full)")
        assert CANARY not in error
        assert state.pending() == 0
        assert not state.tracked
        assert receive.statistics().current_buffer_used == 0
        send.close()
        receive.close()

    async def test_status_shows_the_problem(self, tmp_path: Path) -> None:
        """While a write waits, status is `attention` with the journal's sentence."""
        disk = Disk()
        journal = journal_on(disk, tmp_path, Fernet.generate_key())
        state = DaemonState(["hubspot"], "test")
        state.journal_problem = journal.problem
        await journal.append([selection(1)])
        disk.refuse = errno.ENOSPC
        await journal.done("sel_0001")
        status = state.status()
        assert status["state"] == "attention"
        assert status["journal"] == {
            "damaged_files": [],
            "set_aside": 0,
            "problem": journal.problem(),
            "note": journal.problem(),
        }
        disk.refuse = None
        await journal.done("sel_0001")
        assert state.status()["state"] == "idle"


async def _no_check(public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, object]]:
    return {}


class TestOpen:
    """Opening the journal at start: its key from the keyring, its directory on disk."""

    async def test_a_directory_that_cannot_be_made_is_one_sentence(self, tmp_path: Path) -> None:
        """A journal_dir under a file (or a read-only disk) stops the start with a sentence."""
        (tmp_path / "file").write_text("")
        with pytest.raises(SyncdError) as caught:  # JournalUnwritable, or the path checks'
            await Journal.open(tmp_path / "file" / "journal", MemoryTokenStore())
        assert str(caught.value).startswith(f"{tmp_path / 'file' / 'journal'}") or (
            f"the journal at {tmp_path / 'file' / 'journal'} cannot be used" in str(caught.value)
        )

    async def test_a_locked_keyring_is_one_sentence(self, tmp_path: Path) -> None:
        """A keyring that cannot answer at start is exit 4 with what to do, no traceback."""

        class Locked(MemoryTokenStore):
            def get(self, name: str) -> str | None:
                raise CredentialStoreUnavailable(name, "locked")

        with pytest.raises(CredentialStoreUnavailable) as caught:
            await Journal.open(tmp_path, Locked())
        assert caught.value.exit_code == 4
        assert "unlock the keyring (or start it) and start syncd again" in str(caught.value)
        assert caught.value.__cause__ is None
