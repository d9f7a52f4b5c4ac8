"""The do-not-sync list: blocks by publicId or member id, holds only keyed hashes, is
durable, private, and useless without its keyring key (P3, P6)."""

from __future__ import annotations

import base64
import stat
import urllib.parse
from pathlib import Path

import anyio
import pytest

from sync.config import DaemonConfig
from sync.donotsync import KEY_NAME, DoNotSync, DoNotSyncUnreadable
from sync.errors import CredentialStoreUnavailable, KeyringUnavailable
from sync.secrets import MemoryTokenStore

PUBLIC_ID = "Adalinda-Canary-77"
MEMBER_ID = "urn:li:member:CANARY58213"
NAME = "Adalinda Canaryperson"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "syncd" / "do-not-sync"


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


def encodings(value: str) -> set[str]:
    """``value`` as it could sit in a file: plain, casefolded, base64, hex, url-encoded."""
    raw = value.encode()
    forms = {
        value,
        value.casefold(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        raw.hex().upper(),
        urllib.parse.quote(value, safe=""),
    }
    for part in value.replace(":", " ").replace("-", " ").split():
        if len(part) >= 6:
            forms |= {part, part.casefold(), part.encode().hex()}
    return {form for form in forms if len(form) >= 6}


class TestBlocking:
    """add, holds and remove, by either id."""

    async def test_add_then_holds_by_either_id(self, path: Path, store: MemoryTokenStore) -> None:
        """An entry added with both ids is found by each, and by the publicId in any case."""
        blocked = await DoNotSync.open(path, store)
        assert len(blocked) == 0
        assert not blocked.holds(public_id=PUBLIC_ID)
        await blocked.add(PUBLIC_ID, MEMBER_ID)
        assert len(blocked) == 1
        assert blocked.holds(public_id=PUBLIC_ID)
        assert blocked.holds(public_id=PUBLIC_ID.upper())
        assert blocked.holds(member_id=MEMBER_ID)
        assert not blocked.holds(member_id=MEMBER_ID.lower())  # member ids are exact
        assert not blocked.holds(public_id="someone-else")
        assert not blocked.holds()

    async def test_member_id_added_later_joins_the_entry(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """A block by publicId, then the same person with their member id, is one line."""
        blocked = await DoNotSync.open(path, store)
        await blocked.add(PUBLIC_ID)
        assert not blocked.holds(member_id=MEMBER_ID)
        await blocked.add(PUBLIC_ID, MEMBER_ID)
        await blocked.add(PUBLIC_ID)  # again: nothing changes
        assert len(blocked) == 1
        assert blocked.holds(member_id=MEMBER_ID)
        (line,) = (await anyio.Path(path).read_text()).splitlines()
        assert len(line.split()) == 2

    @pytest.mark.parametrize("by", ["public_id", "member_id"])
    async def test_remove_by_either_id_removes_the_whole_entry(
        self, by: str, path: Path, store: MemoryTokenStore
    ) -> None:
        """Removing by one id lifts the block on both; others stay."""
        blocked = await DoNotSync.open(path, store)
        await blocked.add(PUBLIC_ID, MEMBER_ID)
        await blocked.add("grace-hopper-1", "urn:li:member:2")
        ids = {"public_id": PUBLIC_ID, "member_id": MEMBER_ID}
        assert await blocked.remove(**{by: ids[by]}) == 1
        assert not blocked.holds(public_id=PUBLIC_ID)
        assert not blocked.holds(member_id=MEMBER_ID)
        assert blocked.holds(public_id="grace-hopper-1")
        assert await blocked.remove(**{by: ids[by]}) == 0
        reopened = await DoNotSync.open(path, store)
        assert len(reopened) == 1
        assert not reopened.holds(public_id=PUBLIC_ID)

    async def test_changes_are_on_disk_when_add_returns(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """A list opened again after add sees the block."""
        await (await DoNotSync.open(path, store)).add(PUBLIC_ID, MEMBER_ID)
        reopened = await DoNotSync.open(path, store)
        assert reopened.holds(public_id=PUBLIC_ID)
        assert reopened.holds(member_id=MEMBER_ID)

    async def test_concurrent_adds_lose_nothing(self, path: Path, store: MemoryTokenStore) -> None:
        """Forty adds at once leave forty entries, in memory and on disk."""
        blocked = await DoNotSync.open(path, store)
        async with anyio.create_task_group() as tg:
            for n in range(40):
                tg.start_soon(blocked.add, f"person-{n}", f"urn:li:member:{n}")
        assert len(blocked) == 40
        reopened = await DoNotSync.open(path, store)
        assert len(reopened) == 40
        assert all(reopened.holds(member_id=f"urn:li:member:{n}") for n in range(40))

    async def test_a_damaged_line_is_kept_and_matches_no_one(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """A line that is not hashes stays in the file through changes, and blocks no one."""
        blocked = await DoNotSync.open(path, store)
        await blocked.add(PUBLIC_ID)
        async with await anyio.open_file(path, "a") as out:
            await out.write("zz-not-a-hash\n" + "ab" * 32 + " " * 3 + "\n")
        reopened = await DoNotSync.open(path, store)
        assert len(reopened) == 3
        assert reopened.holds(public_id=PUBLIC_ID)
        assert not reopened.holds(public_id="zz-not-a-hash")
        await reopened.add("grace-hopper-1")
        assert await reopened.remove(public_id=PUBLIC_ID) == 1
        assert "zz-not-a-hash" in (await anyio.Path(path).read_text()).splitlines()


class TestPrivacy:
    """The file holds nothing readable, and nothing usable without the key."""

    async def test_file_holds_no_id_in_any_encoding(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """A canary scan of the file finds neither id nor name in any encoding; every
        line is one or two 64-digit hex values."""
        blocked = await DoNotSync.open(path, store)
        await blocked.add(PUBLIC_ID, MEMBER_ID)
        await blocked.add(NAME)  # even a name passed by mistake is only a hash
        data = await anyio.Path(path).read_bytes()
        text = data.decode().lower()
        for value in (PUBLIC_ID, MEMBER_ID, NAME):
            for form in encodings(value):
                assert form.lower() not in text, form
        for line in data.decode().splitlines():
            values = line.split()
            assert 1 <= len(values) <= 2
            assert all(len(v) == 64 and int(v, 16) >= 0 for v in values)

    async def test_useless_under_another_key(self, path: Path, store: MemoryTokenStore) -> None:
        """The same file opened with another keyring key holds no one."""
        await (await DoNotSync.open(path, store)).add(PUBLIC_ID, MEMBER_ID)
        other = MemoryTokenStore({KEY_NAME: base64.urlsafe_b64encode(b"k" * 32).decode()})
        elsewhere = await DoNotSync.open(path, other)
        assert len(elsewhere) == 1
        assert not elsewhere.holds(public_id=PUBLIC_ID)
        assert not elsewhere.holds(member_id=MEMBER_ID)

    async def test_key_is_32_random_bytes_made_on_first_add(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """Opening makes no key and no file; the first add makes both."""
        blocked = await DoNotSync.open(path, store)
        assert store.get(KEY_NAME) is None
        assert not await anyio.Path(path).exists()
        await blocked.add(PUBLIC_ID)
        key = store.get(KEY_NAME)
        assert key is not None
        assert len(base64.urlsafe_b64decode(key)) == 32

    async def test_modes(self, path: Path, store: MemoryTokenStore) -> None:
        """The file is 0600 in a 0700 directory."""
        await (await DoNotSync.open(path, store)).add(PUBLIC_ID)
        assert stat.S_IMODE((await anyio.Path(path).stat()).st_mode) == 0o600
        assert stat.S_IMODE((await anyio.Path(path.parent).stat()).st_mode) == 0o700

    async def test_lost_key_with_entries_is_unreadable(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """A list with entries whose key left the keyring refuses to open (exit 4)."""
        await (await DoNotSync.open(path, store)).add(PUBLIC_ID)
        store.delete(KEY_NAME)
        with pytest.raises(DoNotSyncUnreadable) as caught:
            await DoNotSync.open(path, store)
        assert caught.value.exit_code == 4
        assert str(path) in str(caught.value)
        assert "restore the keyring" in str(caught.value)
        assert f"delete {path}" in str(caught.value)

    async def test_lost_key_with_an_empty_list_is_fine(
        self, path: Path, store: MemoryTokenStore
    ) -> None:
        """No entries, no key: an empty list that makes a new key when needed."""
        blocked = await DoNotSync.open(path, store)
        await blocked.add(PUBLIC_ID)
        assert await blocked.remove(public_id=PUBLIC_ID) == 1
        store.delete(KEY_NAME)
        again = await DoNotSync.open(path, store)
        assert len(again) == 0

    async def test_a_locked_keyring_is_one_sentence(self, path: Path) -> None:
        """A keyring that cannot answer at open is CredentialStoreUnavailable (exit 4)."""

        class Locked(MemoryTokenStore):
            def get(self, name: str) -> str | None:
                raise KeyringUnavailable(name, "locked")

        with pytest.raises(CredentialStoreUnavailable, match="do-not-sync"):
            await DoNotSync.open(path, Locked())


class TestPlace:
    """The list sits beside the journal in the user state directory, or in a configured
    journal directory."""

    def test_inside_a_configured_journal(self, tmp_path: Path) -> None:
        """With journal_dir set, the list is inside it: its parent may be a shared folder."""
        daemon = DaemonConfig(tmp_path / "s.sock", journal_dir=str(tmp_path / "st" / "journal"))
        assert daemon.do_not_sync_path() == tmp_path / "st" / "journal" / "do-not-sync"

    def test_default_is_the_user_state_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """By default, the list is beside the default journal directory."""
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        daemon = DaemonConfig(tmp_path / "s.sock")
        assert daemon.do_not_sync_path() == daemon.journal_path().parent / "do-not-sync"
        assert daemon.do_not_sync_path().is_relative_to(tmp_path / "state")
