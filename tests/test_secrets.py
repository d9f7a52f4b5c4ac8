"""Credentials: the keyring or nothing — never plaintext, never echoed (P2)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import ClassVar

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail
from keyring.compat import properties
from keyring.errors import InitError, KeyringError, KeyringLocked, PasswordDeleteError
from secretstorage.exceptions import LockedException, SecretServiceNotAvailableException

from sync.errors import AuthError, CredentialStoreUnavailable, KeyringUnavailable
from sync.secrets import (
    KeyringTokenStore,
    MemoryTokenStore,
    TokenStore,
    require,
)

SECRET = "canary-secret-6b1f0e9d2c3a4b5c"
#: The module the suite's working backends claim: a class's module is not inherited.
AS_SECRET_SERVICE = "keyring.backends.SecretService"


def _unlisted(cls: type[KeyringBackend]) -> type[KeyringBackend]:
    """Keep a test backend out of keyring's global list of discoverable backends."""
    KeyringBackend._classes.discard(cls)
    return cls


@_unlisted
class DictKeyring(KeyringBackend):
    """A working backend that keeps passwords in a dict; it claims Secret Service's module,
    since syncd accepts only the OS keyrings' backends (tests/unit/test_keyring_allowlist.py)."""

    __module__ = AS_SECRET_SERVICE
    priority: float = 5  # a plain number instead of keyring's classproperty

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's base is untyped
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.values.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@_unlisted
class PlaintextKeyring(DictKeyring):
    """Looks like keyrings.alt's file backend: usable, high priority, plaintext."""

    __module__ = "keyrings.alt.file"
    priority: float = 9


@_unlisted
class ZeroKeyring(DictKeyring):
    """A backend that says it should not be used."""

    __module__ = AS_SECRET_SERVICE

    priority: float = 0


@_unlisted
class RaisingPriorityKeyring(DictKeyring):
    """A backend whose priority check fails, as Secret Service does without D-Bus."""

    __module__ = AS_SECRET_SERVICE

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("The Secret Service daemon is neither running nor activatable")


@_unlisted
class LockedKeyring(DictKeyring):
    """A backend whose collection is locked; its errors quote what they were given."""

    __module__ = AS_SECRET_SERVICE

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked(f"locked while reading {username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"org.freedesktop.DBus.Error: could not store {password}")


@_unlisted
class FlakyKeyring(DictKeyring):
    """A working backend that raises ``failure`` from every call while it is set, as a
    keyring locked (or a Secret Service stopped) mid-run does."""

    __module__ = AS_SECRET_SERVICE

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        super().delete_password(service, username)


def _chain(*children: KeyringBackend) -> KeyringBackend:
    @_unlisted
    class FixedChain(chainer.ChainerBackend):
        backends: ClassVar[list[KeyringBackend]] = list(children)  # fixed, no discovery

    return FixedChain()  # type: ignore[no-untyped-call]  # keyring's base is untyped


Install = Callable[[KeyringBackend], None]


@pytest.fixture
def use_backend() -> Iterator[Install]:
    """Installs a keyring backend for one test, then restores the previous one."""
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


class TestMemoryStore:
    """The in-memory store used by tests and the demo."""

    def test_round_trip(self) -> None:
        """Set, get, replace, delete."""
        store: TokenStore = MemoryTokenStore({"source": "a"})
        assert store.get("source") == "a"
        store.set("hubspot", SECRET)
        store.set("hubspot", SECRET + "2")
        assert store.get("hubspot") == SECRET + "2"
        assert store.delete("hubspot") is True
        assert store.delete("hubspot") is False
        assert store.get("hubspot") is None

    def test_repr_hides_values(self) -> None:
        """repr names the instances, never their credentials."""
        store = MemoryTokenStore({"hubspot": SECRET})
        assert SECRET not in repr(store)
        assert "hubspot" in repr(store)


class TestRequire:
    """require() returns a credential or tells how to store one."""

    def test_present(self) -> None:
        """A stored credential is returned."""
        assert require(MemoryTokenStore({"hubspot": SECRET}), "hubspot") == SECRET

    def test_missing(self) -> None:
        """A missing credential is an AuthError (exit 4) naming the command to run."""
        with pytest.raises(AuthError) as caught:
            require(MemoryTokenStore(), "hubspot")
        assert caught.value.connector == "hubspot"
        assert caught.value.exit_code == 4
        assert "`syncd auth set hubspot`" in str(caught.value)


class TestKeyringBackends:
    """Only a real, non-plaintext keyring is accepted."""

    def test_usable_backend(self, use_backend: Install) -> None:
        """A working backend round-trips under service "syncd", username = instance."""
        backend = DictKeyring()
        use_backend(backend)
        store = KeyringTokenStore()
        store.set("hubspot", SECRET)
        assert backend.values == {("syncd", "hubspot"): SECRET}
        assert store.get("hubspot") == SECRET
        assert store.delete("hubspot") is True
        assert store.delete("hubspot") is False
        assert store.get("hubspot") is None
        assert SECRET not in repr(store)

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(fail.Keyring, id="fail"),
            pytest.param(PlaintextKeyring, id="keyrings-alt"),
            pytest.param(ZeroKeyring, id="priority-0"),
            pytest.param(RaisingPriorityKeyring, id="priority-raises"),
            pytest.param(lambda: _chain(PlaintextKeyring(), ZeroKeyring()), id="chain-unusable"),
            pytest.param(lambda: _chain(), id="chain-empty"),
        ],
    )
    def test_refused(self, make: Callable[[], KeyringBackend], use_backend: Install) -> None:
        """An unusable or plaintext backend is KeyringUnavailable naming what to install."""
        use_backend(make())
        with pytest.raises(KeyringUnavailable) as caught:
            KeyringTokenStore()
        assert caught.value.exit_code == 4
        assert "gnome-keyring" in str(caught.value)
        assert "plaintext" in str(caught.value)

    def test_chain_uses_best_usable_child(self, use_backend: Install) -> None:
        """In a chain of trusted backends, the first usable child is used."""
        unusable, good = ZeroKeyring(), DictKeyring()
        use_backend(_chain(unusable, good))
        store = KeyringTokenStore()
        store.set("source", SECRET)
        assert unusable.values == {}
        assert good.values == {("syncd", "source"): SECRET}
        assert "DictKeyring" in store.backend_name()

    def test_chain_with_a_plaintext_child_is_refused(self, use_backend: Install) -> None:
        """A chain holding one untrusted backend is refused whole, naming that backend."""
        plaintext, good = PlaintextKeyring(), DictKeyring()
        use_backend(_chain(good, plaintext))
        with pytest.raises(KeyringUnavailable, match=r"keyrings\.alt\.file\.PlaintextKeyring"):
            KeyringTokenStore()
        assert plaintext.values == good.values == {}

    def test_errors_become_one_sentence(self, use_backend: Install) -> None:
        """A locked keyring or D-Bus error is KeyringUnavailable without the secret or cause."""
        use_backend(LockedKeyring())
        store = KeyringTokenStore()
        with pytest.raises(KeyringUnavailable) as reading:
            store.get("hubspot")
        assert "could not read the hubspot credential (KeyringLocked)" in str(reading.value)
        with pytest.raises(KeyringUnavailable) as storing:
            store.set("hubspot", SECRET)
        assert SECRET not in str(storing.value)
        assert storing.value.__cause__ is None
        assert storing.value.__suppress_context__


FAILURES = [
    pytest.param(KeyringLocked("Failed to unlock the collection!"), id="KeyringLocked"),
    pytest.param(InitError("Failed to create the collection"), id="InitError"),
    pytest.param(KeyringError("backend error"), id="KeyringError"),
    pytest.param(LockedException("Item is locked!"), id="secretstorage-locked"),
    pytest.param(
        SecretServiceNotAvailableException("org.freedesktop.DBus.Error.ServiceUnknown"),
        id="service-gone",
    ),
    pytest.param(ConnectionRefusedError(111, "Connection refused"), id="dbus-socket-gone"),
    pytest.param(RuntimeError(f"unexpected, quoting {SECRET}"), id="anything-else"),
]


class TestKeyringGoesAway:
    """A keyring locked, or its service stopped, while syncd runs: one sentence, then back."""

    @pytest.mark.parametrize("failure", FAILURES)
    def test_every_backend_error_names_the_credential(
        self, failure: Exception, use_backend: Install
    ) -> None:
        """Any backend error on read is CredentialStoreUnavailable (exit 4) naming the
        credential and what to do, never the value or the backend's own words."""
        backend = FlakyKeyring()
        use_backend(backend)
        store = KeyringTokenStore()
        store.set("hubspot", SECRET)
        backend.failure = failure
        with pytest.raises(CredentialStoreUnavailable) as caught:
            store.get("hubspot")
        error = caught.value
        assert isinstance(error, AuthError)
        assert error.exit_code == 4
        assert error.connector == "hubspot"
        assert str(error) == (
            "the OS keyring is locked or not running, so syncd could not read the hubspot "
            f"credential ({type(failure).__name__}); unlock the keyring (or start it) and "
            "syncd will read it again"
        )
        assert SECRET not in str(error)
        assert error.__cause__ is None
        assert error.__suppress_context__

    @pytest.mark.parametrize("failure", FAILURES[:2])
    def test_store_and_remove_say_run_it_again(
        self, failure: Exception, use_backend: Install
    ) -> None:
        """Storing or removing while the keyring is locked asks to run the command again."""
        backend = FlakyKeyring()
        use_backend(backend)
        store = KeyringTokenStore()
        backend.failure = failure
        expected = r"pipedrive credential .* and run this again$"
        for action in (lambda: store.set("pipedrive", SECRET), lambda: store.delete("pipedrive")):
            with pytest.raises(CredentialStoreUnavailable, match=expected):
                action()

    def test_the_same_store_works_once_the_keyring_is_back(self, use_backend: Install) -> None:
        """No state is poisoned: once unlocked, the same store reads the credential again."""
        backend = FlakyKeyring()
        use_backend(backend)
        store = KeyringTokenStore()
        store.set("source", SECRET)
        backend.failure = KeyringLocked("locked")
        with pytest.raises(CredentialStoreUnavailable):
            store.get("source")
        backend.failure = None
        assert store.get("source") == SECRET
        assert require(store, "source") == SECRET


@pytest.mark.keyring
class TestRealKeyring:
    """The OS keyring itself, when this machine has one (scripts/test.sh provides it)."""

    def test_round_trip(self) -> None:
        """A credential stored in the real keyring reads back and is removed."""
        try:
            store = KeyringTokenStore(service="syncd-test")
        except KeyringUnavailable:
            pytest.skip("no usable OS keyring here; run through scripts/test.sh")
        name = f"t{uuid.uuid4().hex[:12]}"
        store.set(name, SECRET)
        try:
            assert store.get(name) == SECRET
        finally:
            assert store.delete(name) is True
        assert store.get(name) is None
