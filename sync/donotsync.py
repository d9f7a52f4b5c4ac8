"""The do-not-sync list: people who asked to be forgotten or blocked (P3, P6).

The file holds keyed hashes only, one entry per line: ``<h(publicId)>`` or
``<h(publicId)> <h(memberId)>``, each an HMAC-SHA256 in hex under a key kept in the
keyring (:data:`KEY_NAME`). Without that key the file tells nothing, not even whether a
given person is on it. A line that is not two such values is kept as it is (a block is
never dropped) and matches no one. Every change is written atomically and fsynced before
the call returns, 0600 in a private directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import anyio

from sync.errors import CredentialStoreUnavailable, KeyringUnavailable, SyncdError
from sync.journal_files import reason, write_atomically
from sync.private_paths import UnsafePath, open_private_file, private_dir
from sync.secrets import TokenStore

#: The keyring entry (service "syncd") holding the list's key; the colon keeps it apart
#: from every instance name.
KEY_NAME = "syncd:do-not-sync-key"
SETTING = "[daemon] journal_dir"  # the key that places the list (beside the journal)
_HASH = re.compile(r"[0-9a-f]{64}")


class DoNotSyncUnreadable(SyncdError):
    """The list has entries but its key is gone from the keyring."""

    exit_code = 4

    def __init__(self, path: Path, problem: str = "its key is missing from the keyring") -> None:
        self.path = path
        super().__init__(
            f"the do-not-sync list at {path} has entries but {problem}; restore the "
            f"keyring, or delete {path} to lift every block"
        )


class DoNotSyncUnwritable(SyncdError):
    """The disk refused a change to the list; nothing was changed."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        super().__init__(
            f"the do-not-sync list at {path} cannot be written ({reason(error)}); make that "
            "directory writable and run this again"
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    line: str  # as stored; a damaged line is kept verbatim
    public: str | None = None
    member: str | None = None

    @classmethod
    def parse(cls, line: str) -> _Entry:
        values = line.split()
        if 1 <= len(values) <= 2 and all(_HASH.fullmatch(v) for v in values):
            return cls(line, values[0], values[1] if len(values) == 2 else None)
        return cls(line)

    @classmethod
    def of(cls, public: str, member: str | None) -> _Entry:
        return cls(f"{public} {member}" if member else public, public, member)

    def matches(self, public: str | None, member: str | None) -> bool:
        return (public is not None and self.public == public) or (
            member is not None and self.member == member
        )


def _read(path: Path) -> list[str]:
    """The non-blank lines of the list; none when there is no file."""
    try:
        path.lstat()
    except FileNotFoundError:
        return []
    fd = open_private_file(path, setting=SETTING, flags=os.O_RDONLY)
    with open(fd, "rb") as source:
        data = source.read()
    text = data.decode("utf-8", errors="surrogateescape")  # damaged bytes survive a rewrite
    return [line.strip() for line in text.splitlines() if line.strip()]


def _write(path: Path, lines: list[str]) -> None:
    private_dir(path.parent, setting=SETTING)
    data = "".join(f"{line}\n" for line in lines).encode("utf-8", errors="surrogateescape")
    write_atomically(path, data)


class DoNotSync:
    """The do-not-sync list of one user, read once and kept in memory; changes are durable
    before they return."""

    def __init__(self, path: Path, store: TokenStore, key: bytes | None, lines: list[str]):
        self.path = path
        self._store = store
        self._key = key
        self._entries = [_Entry.parse(line) for line in lines]
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path, store: TokenStore) -> DoNotSync:
        """The list at ``path`` (a missing file is an empty list), its key from ``store``;
        the key is made only by the first :meth:`add`."""
        lines = await anyio.to_thread.run_sync(_read, path)
        stored = await _get_key(store)
        if stored is None:
            if lines:
                raise DoNotSyncUnreadable(path)
            return cls(path, store, None, lines)
        try:
            key = base64.urlsafe_b64decode(stored.encode("ascii"))
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != 32:
            if lines:
                raise DoNotSyncUnreadable(path, "its key in the keyring is damaged")
            return cls(path, store, None, lines)  # nothing to read: the first add makes a key
        return cls(path, store, key, lines)

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, *, public_id: str | None = None, member_id: str | None = None) -> bool:
        """Whether the person with this publicId or this member id is on the list."""
        if self._key is None or (public_id is None and member_id is None):
            return False
        public, member = _hashes(self._key, public_id, member_id)
        return any(entry.matches(public, member) for entry in self._entries)

    async def add(self, public_id: str, member_id: str | None = None) -> None:
        """Put the person on the list; a member id given later joins their entry."""
        async with self._lock:
            if self._key is None:
                self._key = await _make_key(self._store)
            public = _mac(self._key, "public_id", public_id.casefold())
            member = None if member_id is None else _mac(self._key, "member_id", member_id)
            entries = list(self._entries)
            same = [i for i, e in enumerate(entries) if e.public == public]
            if not same:
                entries.append(_Entry.of(public, member))
            elif member is not None and not any(entries[i].member == member for i in same):
                first = same[0]
                if entries[first].member is None:
                    entries[first] = _Entry.of(public, member)
                else:  # another member under this publicId: keep both blocks
                    entries.append(_Entry.of(public, member))
            else:
                return
            await self._save(entries)

    async def remove(self, *, public_id: str | None = None, member_id: str | None = None) -> int:
        """Take every entry matching either value off the list; how many were removed."""
        async with self._lock:
            if self._key is None or (public_id is None and member_id is None):
                return 0
            public, member = _hashes(self._key, public_id, member_id)
            kept = [e for e in self._entries if not e.matches(public, member)]
            removed = len(self._entries) - len(kept)
            if removed:
                await self._save(kept)
            return removed

    async def _save(self, entries: list[_Entry]) -> None:
        lines = [entry.line for entry in entries]
        try:
            await anyio.to_thread.run_sync(_write, self.path, lines)
        except UnsafePath:
            raise
        except OSError as error:
            raise DoNotSyncUnwritable(self.path, error) from None
        self._entries = entries

    def __repr__(self) -> str:
        return f"DoNotSync(path={str(self.path)!r}, entries={len(self._entries)})"


def _hashes(
    key: bytes, public_id: str | None, member_id: str | None
) -> tuple[str | None, str | None]:
    public = None if public_id is None else _mac(key, "public_id", public_id.casefold())
    member = None if member_id is None else _mac(key, "member_id", member_id)
    return public, member


def _mac(key: bytes, domain: str, value: str) -> str:
    message = f"{domain}\0{value}".encode("utf-8", errors="surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def _get_key(store: TokenStore) -> str | None:
    try:
        return await anyio.to_thread.run_sync(store.get, KEY_NAME)
    except KeyringUnavailable:
        raise _locked() from None


async def _make_key(store: TokenStore) -> bytes:
    key = secrets.token_bytes(32)
    try:
        await anyio.to_thread.run_sync(
            store.set, KEY_NAME, base64.urlsafe_b64encode(key).decode("ascii")
        )
    except KeyringUnavailable:
        raise _locked() from None
    return key


def _locked() -> CredentialStoreUnavailable:
    return CredentialStoreUnavailable(
        "do-not-sync key",
        "the OS keyring is locked or not running, so syncd cannot read its do-not-sync list's "
        "key; unlock the keyring (or start it) and run this again",
    )
