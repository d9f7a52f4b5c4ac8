"""The pending-selection journal: what was accepted and not yet delivered survives a crash.

An accepted request (one `add-contact` call: 1 to 1 000 refs) is one *segment* file, written
and fsynced before the daemon answers 202. A segment holds, per selection, only what is
needed to do it again: the selection id, the source's publicId, the target instance names
and whether messages were asked for — never a name, email or any other field (P1) — and the
whole file is encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key kept in the OS
keyring, so the file is unreadable on its own.

A selection leaves the journal the moment it reaches a final outcome in every target CRM:
its segment is rewritten without it, and deleted when nothing is left. One fsync per
accepted request, not per person, is what lets a 50 000-line import be accepted quickly;
delivery, paced by the CRMs' rate limits, pays one small rewrite per person.

On start the daemon replays what is left. A file that cannot be decrypted or parsed (a
damaged disk, a keyring that lost the key) is moved to ``damaged/`` next to the journal and
reported in `syncd status` — never silently dropped, never a crash.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from cryptography.fernet import Fernet, InvalidToken

from sync.secrets import TokenStore
from sync.state import Selection

log = structlog.get_logger("syncd.journal")

#: The keyring entry (service "syncd") holding the journal key. The colon keeps it apart
#: from every instance name, which may only use lowercase letters, digits, - and _.
KEY_NAME = "syncd:journal-key"
SUFFIX = ".sj"
DAMAGED = "damaged"
FORMAT = 1


class JournalDamaged(Exception):
    """A segment that cannot be read back."""


@dataclass(slots=True)
class _Segment:
    path: Path
    selections: dict[str, Selection]  # what the file holds now
    pending: set[str] = field(default_factory=set)  # what has no final outcome yet


@dataclass(frozen=True, slots=True)
class Replay:
    """What a start found in the journal."""

    selections: list[Selection]
    damaged: list[Path]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)


class Journal:
    """The pending selections of one daemon, on disk, encrypted."""

    def __init__(self, directory: Path, key: bytes) -> None:
        self.directory = directory
        self._fernet = Fernet(key)
        self._segments: dict[str, _Segment] = {}  # by segment file name
        self._segment_of: dict[str, str] = {}  # selection id -> segment file name
        self._lock = anyio.Lock()
        self.damaged: list[Path] = []

    @classmethod
    async def open(cls, directory: Path, store: TokenStore) -> Journal:
        """The journal in ``directory`` (created 0700), its key from ``store`` (created once)."""
        key = await anyio.to_thread.run_sync(store.get, KEY_NAME)
        if not key:
            key = Fernet.generate_key().decode()
            await anyio.to_thread.run_sync(store.set, KEY_NAME, key)
        await anyio.to_thread.run_sync(_make_private_dir, directory)
        return cls(directory, key.encode())

    # -- writes ------------------------------------------------------------------------

    async def append(self, selections: Sequence[Selection]) -> None:
        """Make ``selections`` durable: returns once their segment is on disk."""
        if not selections:
            return
        name = f"seg-{secrets.token_hex(8)}{SUFFIX}"
        segment = _Segment(
            self.directory / name,
            {s.id: s for s in selections},
            {s.id for s in selections},
        )
        data = self._encrypt(segment.selections.values())
        await anyio.to_thread.run_sync(_write_atomically, segment.path, data)
        async with self._lock:
            self._segments[name] = segment
            for selection in selections:
                self._segment_of[selection.id] = name

    async def done(self, selection_id: str) -> None:
        """``selection_id`` reached a final outcome everywhere: forget it on disk too."""
        async with self._lock:
            name = self._segment_of.pop(selection_id, None)
            if name is None:
                return
            segment = self._segments[name]
            segment.pending.discard(selection_id)
            if not segment.pending:
                del self._segments[name]
                await anyio.to_thread.run_sync(_unlink, segment.path)
            else:
                segment.selections = {i: segment.selections[i] for i in segment.pending}
                data = self._encrypt(segment.selections.values())
                await anyio.to_thread.run_sync(_write_atomically, segment.path, data)

    def pending(self) -> int:
        """How many selections the journal holds."""
        return len(self._segment_of)

    # -- start -------------------------------------------------------------------------

    async def replay(self) -> Replay:
        """Every selection left by an earlier run (now tracked again); damaged files set aside."""
        found = await anyio.to_thread.run_sync(self._read_all)
        selections: list[Selection] = []
        async with self._lock:
            for path, held in found:
                if held is None:
                    continue
                segment = _Segment(path, {s.id: s for s in held}, {s.id for s in held})
                self._segments[path.name] = segment
                for selection in held:
                    self._segment_of[selection.id] = path.name
                selections += held
        damaged = [path for path, held in found if held is None]
        self.damaged += damaged
        if selections or damaged:
            log.warning(
                "journal.replayed",
                selections=len(selections),
                damaged_files=len(damaged),
            )
        return Replay(selections, damaged)

    def _read_all(self) -> list[tuple[Path, list[Selection] | None]]:
        out: list[tuple[Path, list[Selection] | None]] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime):
            try:
                out.append((path, self._decrypt(path.read_bytes())))
            except (JournalDamaged, OSError):
                out.append((self._set_aside(path), None))
        for tmp in self.directory.glob(".*.tmp"):  # a write cut short: its 202 never went out
            tmp.unlink(missing_ok=True)
        return out

    def _set_aside(self, path: Path) -> Path:
        target_dir = self.directory / DAMAGED
        _make_private_dir(target_dir)
        target = target_dir / path.name
        os.replace(path, target)
        _fsync_dir(self.directory)
        return target

    # -- format ------------------------------------------------------------------------

    def _encrypt(self, selections: Iterable[Selection]) -> bytes:
        body = {
            "v": FORMAT,
            "selections": [
                {
                    "id": s.id,
                    "public_id": s.public_id,
                    "targets": list(s.targets),
                    "with_messages": s.with_messages,
                }
                for s in selections
            ],
        }
        return self._fernet.encrypt(json.dumps(body, separators=(",", ":")).encode())

    def _decrypt(self, data: bytes) -> list[Selection]:
        try:
            body = json.loads(self._fernet.decrypt(data))
        except (InvalidToken, ValueError):
            raise JournalDamaged from None
        if not isinstance(body, dict) or body.get("v") != FORMAT:
            raise JournalDamaged
        out: list[Selection] = []
        for item in body.get("selections") or []:
            try:
                out.append(
                    Selection(
                        str(item["id"]),
                        str(item["public_id"]),
                        tuple(str(t) for t in item["targets"]),
                        bool(item["with_messages"]),
                    )
                )
            except (KeyError, TypeError):
                raise JournalDamaged from None
        return out


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
