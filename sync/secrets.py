"""Credentials: the OS keyring in production, memory in tests and the demo (P2).

``keyring`` is imported only when a :class:`KeyringTokenStore` is built. There is no
plaintext fallback: a missing or file-based backend is :class:`KeyringUnavailable`, and a
backend that fails once chosen (a locked collection, a Secret Service that went away) is
:class:`CredentialStoreUnavailable`, naming the credential.
No message, log line or ``repr`` here ever holds a credential's value.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from sync.errors import AuthError, CredentialStoreUnavailable, KeyringUnavailable

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "syncd"
_PLAINTEXT_MODULES = ("keyrings.alt", "keyring.backends.null")


def install_hint() -> str:
    """What to install so that the OS offers a keyring, for this platform."""
    if sys.platform.startswith("linux"):
        return (
            "install and unlock a Secret Service provider such as gnome-keyring "
            "(apt install gnome-keyring) or KWallet, inside a D-Bus session"
        )
    return "make sure the system keychain (macOS Keychain, Windows Credential Locker) is available"


class TokenStore(Protocol):
    """Where credentials live, keyed by instance name ("source", "hubspot", …)."""

    def get(self, name: str) -> str | None:
        """The credential of ``name``, or None."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store (or replace) the credential of ``name``."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the credential of ``name``; False if there was none."""
        ...

    def backend_name(self) -> str:
        """Where the credentials are kept, in a few words."""
        ...


class MemoryTokenStore:
    """Credentials in this process's memory only: tests, the demo."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def get(self, name: str) -> str | None:
        """The credential of ``name``, or None."""
        return self._values.get(name)

    def set(self, name: str, value: str) -> None:
        """Store (or replace) the credential of ``name``."""
        self._values[name] = value

    def delete(self, name: str) -> bool:
        """Remove the credential of ``name``; False if there was none."""
        return self._values.pop(name, None) is not None

    def backend_name(self) -> str:
        """Where the credentials are kept."""
        return "memory (nothing is written)"

    def __repr__(self) -> str:
        return f"MemoryTokenStore(names={sorted(self._values)!r})"


def _acceptable(backend: KeyringBackend) -> bool:
    from keyring.backends import chainer, fail

    kind = type(backend)
    if isinstance(backend, fail.Keyring | chainer.ChainerBackend):
        return False
    if kind.__module__.startswith(_PLAINTEXT_MODULES):
        return False  # keyrings.alt writes secrets to files, readable or trivially decrypted
    try:
        return float(kind.priority) > 0
    except Exception:  # a backend says it is unusable by raising from `priority`
        return False


def _usable_backend() -> KeyringBackend:
    """The active keyring backend, or its best usable child when it is a chain."""
    try:
        import keyring
        from keyring.backends import chainer

        active = keyring.get_keyring()
        chain = active.backends if isinstance(active, chainer.ChainerBackend) else [active]
        candidates: list[KeyringBackend] = list(chain)
    except Exception as error:
        raise KeyringUnavailable(
            "keyring",
            f"the OS keyring could not be opened ({type(error).__name__}); {install_hint()}",
        ) from None
    for backend in candidates:
        if _acceptable(backend):
            return backend
    names = ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in candidates)
    raise KeyringUnavailable(
        "keyring",
        f"no usable OS keyring (found: {names or 'none'}); {install_hint()}. "
        "syncd never keeps credentials in a plaintext file.",
    )


@contextlib.contextmanager
def _translated(action: str, name: str) -> Iterator[None]:
    """Turn whatever the backend raises (``KeyringLocked``, ``InitError``, a secretstorage or
    D-Bus error, anything else) into one sentence naming the credential — never its value."""
    try:
        yield
    except AuthError:
        raise
    except Exception as error:
        raise CredentialStoreUnavailable(
            name,
            f"the OS keyring is locked or not running, so syncd could not {action} the "
            f"{name} credential ({type(error).__name__}); unlock the keyring (or start it) "
            + ("and syncd will read it again" if action == "read" else "and run this again"),
        ) from None


class KeyringTokenStore:
    """Credentials in the OS keyring: service ``syncd``, username = instance name."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service
        self._backend = _usable_backend()

    def get(self, name: str) -> str | None:
        """The credential of ``name``, or None."""
        with _translated("read", name):
            value: str | None = self._backend.get_password(self.service, name)
        return value

    def set(self, name: str, value: str) -> None:
        """Store (or replace) the credential of ``name``."""
        with _translated("store", name):
            self._backend.set_password(self.service, name, value)

    def delete(self, name: str) -> bool:
        """Remove the credential of ``name``; False if there was none."""
        from keyring.errors import PasswordDeleteError

        with _translated("remove", name):
            if self._backend.get_password(self.service, name) is None:
                return False
            try:
                self._backend.delete_password(self.service, name)
            except PasswordDeleteError:
                return False
        return True

    def backend_name(self) -> str:
        """The keyring backend in use, e.g. "SecretService Keyring"."""
        return str(type(self._backend).name)

    def __repr__(self) -> str:
        return f"KeyringTokenStore(service={self.service!r}, backend={self.backend_name()!r})"


def require(store: TokenStore, name: str) -> str:
    """The credential of ``name``; AuthError telling how to store one if it is missing."""
    value = store.get(name)
    if not value:
        raise AuthError(name, f"no credential for {name}; store one with `syncd auth set {name}`")
    return value
