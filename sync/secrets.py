"""Credentials: the OS keyring in production, memory in tests and the demo (P2).

``keyring`` is imported only when a :class:`KeyringTokenStore` is built. There is no
plaintext fallback: a backend that is not an OS keyring on :data:`TRUSTED_MODULES` (an
allow-list), or none that answers, is :class:`KeyringUnavailable` naming it, and a backend
that fails once chosen (a locked collection, a Secret Service that went away) is
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
_NONE = "keyring.backends.fail."  # what keyring answers when it finds no backend at all
#: The modules of the keyring backends syncd accepts: the OS keyrings, nothing that could
#: write a file. A chain is accepted only when every backend it chains is one of these.
TRUSTED_MODULES = frozenset(
    {
        "keyring.backends.SecretService",  # Secret Service over D-Bus (gnome-keyring, KeePassXC)
        "keyring.backends.libsecret",  # the same store through libsecret
        "keyring.backends.kwallet",  # KWallet
        "keyring.backends.macOS",  # macOS Keychain
        "keyring.backends.Windows",  # Windows Credential Locker
    }
)


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


def _name(backend: KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def trusted(backend: KeyringBackend) -> bool:
    """Whether ``backend`` is one of the OS keyrings syncd keeps credentials in.

    An allow-list by the module of the backend's own class: a third-party backend (a
    file, a database, anything keyrings.alt-like) is refused even when it works, since
    nothing tells it apart from one that writes secrets in plaintext.
    """
    return type(backend).__module__ in TRUSTED_MODULES


def _works(backend: KeyringBackend) -> bool:
    try:
        return float(type(backend).priority) > 0
    except Exception:  # a backend says it is unusable by raising from `priority`
        return False


def _refused(found: str, why: str) -> KeyringUnavailable:
    return KeyringUnavailable(
        "keyring",
        f"{why} (found: {found}); {install_hint()}. "
        "syncd never keeps credentials in a plaintext file.",
    )


def _usable_backend() -> KeyringBackend:
    """The active keyring backend, or its best usable child when it is a chain of trusted
    backends; KeyringUnavailable naming the backend otherwise."""
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
    untrusted = [_name(b) for b in candidates if not trusted(b)]
    if untrusted and all(name.startswith(_NONE) for name in untrusted):
        raise _refused(", ".join(untrusted), "no OS keyring was found")
    if untrusted:
        raise _refused(
            ", ".join(untrusted),
            "the keyring backend is not an OS keyring syncd trusts with credentials "
            "(Secret Service, KWallet, macOS Keychain, Windows Credential Locker)",
        )
    for backend in candidates:
        if _works(backend):
            return backend
    raise _refused(
        ", ".join(_name(b) for b in candidates) or "none",
        "no OS keyring answers on this machine",
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
