"""The pending-selection journal: what was accepted and not yet delivered survives a crash.

An accepted request (one `add-contact` call: 1 to 1 000 refs) is one *segment* file, written
and fsynced before the daemon answers 202. A segment holds, per selection, only what is
needed to do it again: the selection id, the source's publicId, the target instance names,
whether messages were asked for and whether it is a `forget` — never a name, email or any
other field (P1) — and the whole file is encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under a key kept in the OS keyring, so the file is unreadable on its own.

A selection leaves the journal the moment it reaches a final outcome in every target CRM:
its segment is rewritten without it, and deleted when nothing is left. One fsync per
accepted request, not per person, is what lets a 50 000-line import be accepted quickly;
delivery, paced by the CRMs' rate limits, pays a rewrite per batch of people that finish
together, not one per person.

On start the daemon replays what is left. A file that cannot be decrypted or parsed (a
damaged disk, a keyring that lost the key) is moved to ``damaged/`` next to the journal and
reported in `syncd status` — never silently dropped, never a crash.

**No crash loop.** A selection whose processing kills the daemon would be replayed, and kill
it again, at every start. So each run keeps an *in-flight log*: when a worker starts a
selection, one line (the selection id as a Fernet token) is appended to
``run-<run id>-<n>.inflight`` — no fsync, no segment rewrite, so starting a selection costs
one small ``write`` and a 50 000-line import stays linear. A clean stop deletes the run's
logs (a SIGTERM drain that cuts work short is not the selection's fault), and a log whose
selections have all finished is deleted when the log rotates. At the next start, every
selection still in the journal whose id is in an earlier run's log was interrupted by that
run's death: the run's id is added to the selection's ``runs`` (inside the encrypted
segment, so recording it twice after a crash mid-replay still counts once), and the logs
are deleted. A selection with :data:`MAX_INTERRUPTIONS` runs is *set aside*: written,
still encrypted, to ``damaged/aside-*.sj``, dropped from its segment, reported in `status`;
the rest of the queue goes on. Selections merely queued (a paused daemon, a long backlog)
are never counted: only a worker's start is. Losing a log line (a crash of the whole
machine, a full disk) only undercounts.

**A disk that refuses writes.** A segment that cannot be written makes :meth:`append` raise
:class:`JournalUnwritable` (the API answers 503; nothing was accepted). A delivered
selection whose segment cannot be rewritten or deleted stays in memory as *unsaved*: the
daemon goes on, :meth:`Journal.problem` says what is wrong (shown in `status`), and the write
is retried at every journal write, every :data:`RETRY_SECONDS`, and at the next start
(where the selection may be delivered again: the upsert makes that harmless).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from cryptography.fernet import Fernet, InvalidToken

from sync.errors import CredentialStoreUnavailable, KeyringUnavailable, SyncdError
from sync.inflight import INFLIGHT, InflightLog, run_of
from sync.journal_files import (
    errno_name,
    forget_file,
    fsync_dir,
    make_private_dir,
    reason,
    unlink,
    write_atomically,
)
from sync.secrets import TokenStore
from sync.state import Selection

log = structlog.get_logger("syncd.journal")

#: The keyring entry (service "syncd") holding the journal key. The colon keeps it apart
#: from every instance name, which may only use lowercase letters, digits, - and _.
KEY_NAME = "syncd:journal-key"
SUFFIX = ".sj"
DAMAGED = "damaged"
FORMAT = 1
#: Runs that may die while a selection is in flight before it is set aside.
MAX_INTERRUPTIONS = 3
#: How often unsaved journal writes are tried again while the disk refuses them.
RETRY_SECONDS = 30.0

Writer = Callable[[Path, bytes], None]
Remover = Callable[[Path], None]


class JournalDamaged(Exception):
    """A segment that cannot be read back."""


class JournalUnwritable(SyncdError):
    """The journal's disk refused a write; the sentence says where and what to do."""


@dataclass(slots=True)
class _Segment:
    path: Path
    selections: dict[str, Selection]  # what the file should hold
    #: Per selection interrupted before: the ids of the runs that died while it was in flight.
    runs: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Replay:
    """What a start found in the journal."""

    selections: list[Selection]
    damaged: list[Path]
    #: Ids of the selections set aside at this start (interrupted too often).
    set_aside: list[str] = field(default_factory=list)


class Journal:
    """The pending selections of one daemon, on disk, encrypted."""

    def __init__(
        self,
        directory: Path,
        key: bytes,
        *,
        write: Writer = write_atomically,
        remove: Remover = unlink,
    ) -> None:
        self.directory = directory
        self._fernet = Fernet(key)
        self._write = write  # a seam: tests pass a writer that fails as a full disk does
        self._remove = remove
        self._segments: dict[str, _Segment] = {}  # by segment file name
        self._segment_of: dict[str, str] = {}  # selection id -> segment file name
        self._unsaved: dict[str, _Segment] = {}  # on disk, these hold more than they should
        self._lock = anyio.Lock()
        #: Rewrites begun and ended by :meth:`done`, numbered (see there).
        self._saves_begun = 0
        self._saves_ended = 0
        self._run = secrets.token_hex(6)
        self._inflight = InflightLog(directory, self._run, self._fernet)
        self._problem: str | None = None
        self.damaged: list[Path] = []

    @classmethod
    async def open(cls, directory: Path, store: TokenStore) -> Journal:
        """The journal in ``directory`` (created 0700), its key from ``store`` (created once)."""
        try:
            key = await anyio.to_thread.run_sync(store.get, KEY_NAME)
            if not key:
                key = Fernet.generate_key().decode()
                await anyio.to_thread.run_sync(store.set, KEY_NAME, key)
        except KeyringUnavailable:
            raise CredentialStoreUnavailable(
                "journal key",
                "the OS keyring is locked or not running, so syncd cannot read its journal "
                "key; unlock the keyring (or start it) and start syncd again",
            ) from None
        try:
            await anyio.to_thread.run_sync(make_private_dir, directory)
        except OSError as error:
            raise JournalUnwritable(
                f"the journal at {directory} cannot be used ({reason(error)}); make that "
                "directory writable (or set [daemon] journal_dir to one that is) and start "
                "syncd again"
            ) from None
        return cls(directory, key.encode())

    # -- writes ------------------------------------------------------------------------

    async def append(self, selections: Sequence[Selection]) -> None:
        """Make ``selections`` durable: returns once their segment is on disk.

        Raises :class:`JournalUnwritable` when the disk refuses: then nothing was kept.
        """
        if not selections:
            return
        name = f"seg-{secrets.token_hex(8)}{SUFFIX}"
        segment = _Segment(self.directory / name, {s.id: s for s in selections})
        data = self._encrypt(segment)
        try:
            await anyio.to_thread.run_sync(self._write, segment.path, data)
        except OSError as error:
            log.warning("journal.append_failed", code=errno_name(error), count=len(selections))
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(forget_file, segment.path)
            raise JournalUnwritable(
                f"the journal at {self.directory} cannot be written ({reason(error)}); free "
                "space on that disk (or make it writable) and try again — nothing was accepted"
            ) from None
        async with self._lock:
            self._segments[name] = segment
            for selection in selections:
                self._segment_of[selection.id] = name
            await self._save_unsaved()  # the disk takes writes again: catch up

    def started(self, selection_id: str) -> None:
        """A worker starts ``selection_id``: if this run dies now, it was interrupted."""
        self._inflight.started(selection_id)

    async def done(self, selection_id: str) -> None:
        """``selection_id`` reached a final outcome everywhere: forget it on disk too.

        Never raises for a disk that refuses: the change waits in memory (see
        :meth:`problem`) and is written at the next chance.

        Rewrites are shared: the change is made in memory at once, then this waits for a
        rewrite that *began* after it. Selections finishing together (a CRM batch answering
        for a hundred people) wait on one or two rewrites of their segment, not one each: a
        1 000-line import would otherwise re-encrypt its segment a thousand times.
        """
        name = self._segment_of.pop(selection_id, None)
        if name is not None:
            segment = self._segments[name]
            del segment.selections[selection_id]
            segment.runs.pop(selection_id, None)
            if not segment.selections:
                del self._segments[name]
            self._unsaved[name] = segment
        covering = self._saves_begun + 1  # the first rewrite to begin from now on
        async with self._lock:
            if self._saves_ended < covering:
                self._saves_begun += 1
                begun = self._saves_begun
                await self._save_unsaved()
                self._saves_ended = begun
        self._inflight.finished(selection_id)

    async def _save_unsaved(self) -> bool:
        """Write every segment whose file is behind; True once none is (lock held)."""
        while self._unsaved:
            # Taken off the list before the write: a selection done while the file is being
            # written (done() changes memory without the lock) puts it back, to be written again.
            name, segment = self._unsaved.popitem()
            try:
                if segment.selections:
                    data = self._encrypt(segment)
                    await anyio.to_thread.run_sync(self._write, segment.path, data)
                else:
                    await anyio.to_thread.run_sync(self._remove, segment.path)
            except OSError as error:
                self._unsaved.setdefault(name, segment)  # its file is still behind
                if self._problem is None:
                    log.warning("journal.save_failed", segment=name, code=errno_name(error))
                self._problem = (
                    f"the journal at {self.directory} cannot be written ({reason(error)}); "
                    f"{len(self._unsaved)} journal file(s) still hold delivered selections and "
                    "new ones are refused: free space on that disk (or make it writable); "
                    "syncd tries again on its own"
                )
                return False
        if self._problem is not None:
            log.info("journal.saved_again")
        self._problem = None
        return True

    async def save_now(self) -> bool:
        """Try the writes the disk refused before; True once nothing waits."""
        async with self._lock:
            return await self._save_unsaved()

    async def retry_saves(self, interval: float = RETRY_SECONDS) -> None:
        """Call :meth:`save_now` every ``interval`` seconds while a write waits (until
        cancelled)."""
        while True:
            await anyio.sleep(interval)  # a timer: nothing signals that a disk has room again
            if self._unsaved:
                await self.save_now()

    def problem(self) -> str | None:
        """One sentence when the journal's disk refuses writes, else None."""
        return self._problem

    def pending(self) -> int:
        """How many selections the journal holds."""
        return len(self._segment_of)

    def close(self) -> None:
        """A clean stop: what this run had in flight was not interrupted by a crash."""
        self._inflight.close()

    # -- start -------------------------------------------------------------------------

    async def replay(self) -> Replay:
        """Every selection left by an earlier run (now tracked again); damaged files and
        selections interrupted :data:`MAX_INTERRUPTIONS` times set aside."""
        found, started, logs = await anyio.to_thread.run_sync(self._read_all)
        selections: list[Selection] = []
        set_aside: list[str] = []
        async with self._lock:
            for path, held in found:
                if held is None or path.name in self._segments:
                    continue  # damaged, or appended by this run before the replay
                segment = _Segment(path, {s.id: s for s in held[0]}, held[1])
                changed = _count_interruptions(segment, started)
                aside = [
                    s
                    for s in segment.selections.values()
                    if len(segment.runs.get(s.id, ())) >= MAX_INTERRUPTIONS
                ]
                if aside and await self._set_aside_selections(segment, aside):
                    changed = True
                aside_ids = {s.id for s in aside}
                set_aside += sorted(aside_ids)
                self._segments[path.name] = segment
                if changed:
                    self._unsaved[path.name] = segment
                for selection in held[0]:
                    if selection.id not in aside_ids:
                        self._segment_of[selection.id] = path.name
                        selections.append(selection)
            saved = await self._save_unsaved()
        if saved:  # the counts are in the segments now; a leftover log only recounts nothing
            for path in logs:
                await anyio.to_thread.run_sync(forget_file, path)
        damaged = [path for path, held in found if held is None]
        self.damaged += damaged
        if selections or damaged or set_aside:
            log.warning(
                "journal.replayed",
                selections=len(selections),
                damaged_files=len(damaged),
                set_aside=len(set_aside),
            )
        return Replay(selections, damaged, set_aside)

    async def _set_aside_selections(self, segment: _Segment, aside: list[Selection]) -> bool:
        """Write ``aside`` to damaged/ and drop them from ``segment``; False if the disk
        refused (then they stay in the segment, unqueued, and the next start tries again)."""
        digest = hashlib.sha256("".join(sorted(s.id for s in aside)).encode()).hexdigest()
        target = self.directory / DAMAGED / f"aside-{digest[:16]}{SUFFIX}"
        held = _Segment(target, {s.id: s for s in aside}, {s.id: segment.runs[s.id] for s in aside})
        data = self._encrypt(held)
        try:
            await anyio.to_thread.run_sync(make_private_dir, target.parent)
            await anyio.to_thread.run_sync(self._write, target, data)
        except OSError as error:
            log.warning("journal.set_aside_failed", code=errno_name(error), count=len(aside))
            return False
        for selection in aside:
            log.warning(
                "journal.set_aside",
                selection_id=selection.id,
                interruptions=len(segment.runs[selection.id]),
            )
            del segment.selections[selection.id]
            del segment.runs[selection.id]
        return True

    def _read_all(
        self,
    ) -> tuple[
        list[tuple[Path, tuple[list[Selection], dict[str, list[str]]] | None]],
        dict[str, set[str]],
        list[Path],
    ]:
        found: list[tuple[Path, tuple[list[Selection], dict[str, list[str]]] | None]] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime):
            try:
                found.append((path, self._decrypt(path.read_bytes())))
            except (JournalDamaged, OSError):
                found.append((self._set_aside(path), None))
        for tmp in self.directory.glob(".*.tmp"):  # a write cut short: its 202 never went out
            tmp.unlink(missing_ok=True)
        started, logs = self._read_inflight()
        return found, started, logs

    def _read_inflight(self) -> tuple[dict[str, set[str]], list[Path]]:
        """Which selections each earlier run had started (by selection id: run ids)."""
        started: dict[str, set[str]] = {}
        logs: list[Path] = []
        for path in self.directory.glob(f"run-*{INFLIGHT}"):
            run = run_of(path.name)
            if run == self._run:
                continue
            logs.append(path)
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for line in data.splitlines():
                try:
                    selection_id = self._fernet.decrypt(line).decode()
                except (InvalidToken, ValueError):
                    continue  # a line cut short by the crash, or another key's
                started.setdefault(selection_id, set()).add(run)
        return started, logs

    def _set_aside(self, path: Path) -> Path:
        target_dir = self.directory / DAMAGED
        make_private_dir(target_dir)
        target = target_dir / path.name
        os.replace(path, target)
        fsync_dir(self.directory)
        return target

    # -- format ------------------------------------------------------------------------

    def _encrypt(self, segment: _Segment) -> bytes:
        body = {"v": FORMAT, "selections": list(_items(segment.selections.values(), segment))}
        return self._fernet.encrypt(json.dumps(body, separators=(",", ":")).encode())

    def _decrypt(self, data: bytes) -> tuple[list[Selection], dict[str, list[str]]]:
        try:
            body = json.loads(self._fernet.decrypt(data))
        except (InvalidToken, ValueError):
            raise JournalDamaged from None
        if not isinstance(body, dict) or body.get("v") != FORMAT:
            raise JournalDamaged
        out: list[Selection] = []
        runs: dict[str, list[str]] = {}
        for item in body.get("selections") or []:
            try:
                action = item.get("action", "add")
                if action not in ("add", "forget"):
                    raise JournalDamaged
                selection = Selection(
                    str(item["id"]),
                    str(item["public_id"]),
                    tuple(str(t) for t in item["targets"]),
                    bool(item["with_messages"]),
                    action,
                )
                if item.get("runs"):
                    runs[selection.id] = [str(r) for r in item["runs"]]
            except (KeyError, TypeError, AttributeError):
                raise JournalDamaged from None
            out.append(selection)
        return out, runs


def _items(selections: Iterable[Selection], segment: _Segment) -> Iterable[dict[str, object]]:
    for s in selections:
        item: dict[str, object] = {
            "id": s.id,
            "public_id": s.public_id,
            "targets": list(s.targets),
            "with_messages": s.with_messages,
        }
        if s.action != "add":  # older segments have no action: they are all "add"
            item["action"] = s.action
        if s.id in segment.runs:
            item["runs"] = segment.runs[s.id]
        yield item


def _count_interruptions(segment: _Segment, started: dict[str, set[str]]) -> bool:
    """Add to each selection of ``segment`` the earlier runs that died with it in flight;
    True if any was new (a run already recorded is not counted twice)."""
    changed = False
    for selection_id in segment.selections:
        runs = started.get(selection_id)
        if not runs:
            continue
        known = segment.runs.setdefault(selection_id, [])
        new = sorted(runs - set(known))
        if new:
            known += new
            changed = True
    return changed
