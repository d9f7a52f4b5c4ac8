"""Credentials go only to an OS keyring on the allow-list, never to another backend (P2)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer

from sync.errors import KeyringUnavailable
from sync.secrets import TRUSTED_MODULES, KeyringTokenStore, install_hint, trusted

SECRET = "canary-secret-allowlist-5e4d3c2b1a"


def _unlisted(cls: type[KeyringBackend]) -> type[KeyringBackend]:
    """Keep a test backend out of keyring's global list of discoverable backends."""
    KeyringBackend._classes.discard(cls)
    return cls


@_unlisted
class JsonFileKeyring(KeyringBackend):
    """A third-party-looking backend that works and keeps every password in a plain file."""

    __module__ = "keyrings.cloudvault.plainfile"
    priority: float = 20  # it outranks every OS keyring, as such plugins often claim
    file: ClassVar[Path]

    def get_password(self, service: str, username: str) -> str | None:
        if not self.file.exists():
            return None
        for line in self.file.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key == f"{service}/{username}":
                return value
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        with self.file.open("a", encoding="utf-8") as out:
            out.write(f"{service}/{username}={password}\n")

    def delete_password(self, service: str, username: str) -> None:
        raise NotImplementedError


def _backend_from(module: str) -> KeyringBackend:
    """A working in-memory backend whose class claims to live in ``module``."""

    @_unlisted
    class Claimed(KeyringBackend):
        priority: float = 5

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]  # keyring's base is untyped
            self.values: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.values.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.values[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.values.pop((service, username), None)

    Claimed.__module__ = module
    return Claimed()


def _chain(*children: KeyringBackend) -> KeyringBackend:
    @_unlisted
    class FixedChain(chainer.ChainerBackend):
        backends: ClassVar[list[KeyringBackend]] = list(children)  # fixed, no discovery

    return FixedChain()  # type: ignore[no-untyped-call]  # keyring's base is untyped


@pytest.fixture
def installed() -> Iterator[None]:
    """Restores the keyring backend a test replaced."""
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def plaintext(tmp_path: Path) -> JsonFileKeyring:
    """The plaintext backend, writing under ``tmp_path``."""
    JsonFileKeyring.file = tmp_path / "passwords.txt"
    return JsonFileKeyring()  # type: ignore[no-untyped-call]  # keyring's base is untyped


OS_KEYRINGS = {
    "secret-service": "keyring.backends.SecretService",
    "libsecret": "keyring.backends.libsecret",
    "kwallet": "keyring.backends.kwallet",
    "macos-keychain": "keyring.backends.macOS",
    "windows-credential-locker": "keyring.backends.Windows",
}
ALLOWED = [pytest.param(module, id=name) for name, module in OS_KEYRINGS.items()]


class TestAllowList:
    """Only the OS keyrings' backends are accepted; anything else is refused by name."""

    def test_a_plaintext_backend_is_refused_by_name(
        self, installed: None, plaintext: JsonFileKeyring
    ) -> None:
        """A working file backend is refused (exit 4); the sentence names it and what to
        install, and nothing reaches its file."""
        keyring.set_keyring(plaintext)
        with pytest.raises(KeyringUnavailable) as caught:
            KeyringTokenStore()
        sentence = str(caught.value)
        assert caught.value.exit_code == 4
        assert "keyrings.cloudvault.plainfile.JsonFileKeyring" in sentence
        assert install_hint() in sentence
        assert not plaintext.file.exists()

    @pytest.mark.parametrize("module", ALLOWED)
    def test_an_os_keyring_is_accepted(self, module: str, installed: None) -> None:
        """A backend of an allowed module stores the credential in that backend."""
        backend = _backend_from(module)
        keyring.set_keyring(backend)
        store = KeyringTokenStore()
        store.set("hubspot", SECRET)
        assert store.get("hubspot") == SECRET
        assert backend.get_password("syncd", "hubspot") == SECRET

    @pytest.mark.parametrize(
        "module",
        [
            pytest.param("keyrings.alt.file", id="keyrings-alt"),
            pytest.param("keyring.backends.null", id="null"),
            pytest.param("keyring.backends.SecretServiceFile", id="prefix-lookalike"),
            pytest.param("my_company.keyring.backends.SecretService", id="suffix-lookalike"),
        ],
    )
    def test_lookalike_modules_are_refused(self, module: str, installed: None) -> None:
        """Only an exact module on the list counts, not a name that resembles one."""
        keyring.set_keyring(_backend_from(module))
        with pytest.raises(KeyringUnavailable, match=module.replace(".", r"\.")):
            KeyringTokenStore()

    def test_a_chain_of_os_keyrings_is_accepted(self, installed: None) -> None:
        """A chain whose every backend is allowed is used through its first usable child."""
        first = _backend_from(OS_KEYRINGS["secret-service"])
        second = _backend_from(OS_KEYRINGS["libsecret"])
        keyring.set_keyring(_chain(first, second))
        KeyringTokenStore().set("source", SECRET)
        assert first.get_password("syncd", "source") == SECRET
        assert second.get_password("syncd", "source") is None

    def test_a_chain_holding_a_plaintext_backend_is_refused(
        self, installed: None, plaintext: JsonFileKeyring
    ) -> None:
        """One untrusted backend in a chain refuses the chain, naming that backend."""
        good = _backend_from(OS_KEYRINGS["secret-service"])
        keyring.set_keyring(_chain(good, plaintext))
        with pytest.raises(KeyringUnavailable, match="JsonFileKeyring"):
            KeyringTokenStore()
        assert good.get_password("syncd", "source") is None
        assert not plaintext.file.exists()


class TestTheListNamesRealBackends:
    """Each allowed module is one keyring ships, defining a backend class of its own."""

    @pytest.mark.parametrize("module", ALLOWED)
    def test_module_defines_a_backend(self, module: str) -> None:
        """The module imports and defines a KeyringBackend that the allow-list accepts."""
        assert module in TRUSTED_MODULES
        loaded = importlib.import_module(module)
        backends = [
            cls
            for cls in vars(loaded).values()
            if inspect.isclass(cls) and issubclass(cls, KeyringBackend) and cls.__module__ == module
        ]
        assert backends, module
        assert all(trusted(cls.__new__(cls)) for cls in backends)

    def test_nothing_else_is_on_the_list(self) -> None:
        """The list holds exactly the five OS keyrings' modules."""
        assert sorted(TRUSTED_MODULES) == sorted(OS_KEYRINGS.values())
