"""Credentials: the OS keyring in production, memory in tests and the demo (P2).

``keyring`` is imported only when a :class:`KeyringTokenStore` is built. There is no
plaintext fallback: a missing, failing or file-based backend is :class:`KeyringUnavailable`.
No message, log line or ``repr`` here ever holds a credential's value.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sync.config_check import url_problem
from sync.errors import AuthError, KeyringUnavailable

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "syncd"
OAUTH_KEYS = ("client_id", "client_secret", "refresh_token")
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
    """Turn a backend's failure (locked collection, D-Bus error) into one sentence."""
    try:
        yield
    except AuthError:
        raise
    except Exception as error:
        raise KeyringUnavailable(
            "keyring",
            f"the OS keyring could not {action} the credential for {name} "
            f"({type(error).__name__}); unlock the keyring, or {install_hint()}",
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

        if self.get(name) is None:
            return False
        with _translated("remove", name):
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


@dataclass(frozen=True, slots=True)
class OAuthCredential:
    """An OAuth refresh-token credential, as stored in the keyring (never shown)."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    instance_url: str | None = None


def parse_oauth(value: str, *, name: str = "credential") -> OAuthCredential | None:
    """The OAuth JSON form of a stored credential, or None for a plain token.

    A value that starts like a JSON object but is not a complete one raises AuthError
    for instance ``name`` (exit 4): the stored credential is unusable, and the fix is
    `syncd auth set NAME`. Keys other than the known ones are ignored.
    """
    text = value.strip()
    if not text.startswith("{"):
        return None
    again = f"store it again with `syncd auth set {name}`"
    try:
        data = json.loads(text)
    except ValueError:
        raise AuthError(name, f"the credential for {name} is not valid JSON; {again}") from None
    if not isinstance(data, dict):
        raise AuthError(name, f"the credential for {name} is not a JSON object; {again}")
    missing = [k for k in OAUTH_KEYS if not (isinstance(data.get(k), str) and data[k].strip())]
    instance_url = data.get("instance_url")
    if missing:
        raise AuthError(
            name,
            f"the OAuth credential for {name} lacks {', '.join(missing)} (each a non-empty "
            f"string); it needs {', '.join(OAUTH_KEYS)} and optionally instance_url; {again}",
        )
    if instance_url is not None and (
        not isinstance(instance_url, str) or url_problem(instance_url, name)
    ):
        raise AuthError(
            name,
            f"the OAuth credential for {name} has an instance_url that is not https://; {again}",
        )
    return OAuthCredential(
        client_id=data["client_id"].strip(),
        client_secret=data["client_secret"].strip(),
        refresh_token=data["refresh_token"].strip(),
        instance_url=instance_url.strip().rstrip("/") if instance_url else None,
    )
