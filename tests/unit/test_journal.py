"""The pending-selection journal: durable before 202, gone once delivered, unreadable on its
own, replayed after a crash, damaged files set aside — never dropped, never a crash."""

from __future__ import annotations

from pathlib import Path

import anyio

from sync.journal import DAMAGED, KEY_NAME, Journal
from sync.secrets import MemoryTokenStore
from sync.state import Selection

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
