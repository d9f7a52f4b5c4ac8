"""Every error syncd raises on purpose, sorted by what the caller does next.

::

    SyncdError                      one sentence for the user + an exit code
    ├── UsageError                  bad argument or REF (exit 2)
    ├── ConfigError(problems)       every config problem at once (exit 2)
    ├── DaemonNotRunning            no daemon on the socket (exit 3)
    ├── AuthError(connector)        credential missing or rejected (exit 4)
    │   └── KeyringUnavailable      no usable OS keyring backend (exit 4)
    │       └── CredentialStoreUnavailable   the keyring is locked or gone for now
    ├── PrivacyRefusal(rule)        a privacy rule or the do-not-sync list said no (exit 5)
    └── ConnectorError(connector, status, request_id)
        ├── RetryableError(retry_after)   may succeed later: 429, 5xx, timeouts
        ├── RecordRejected                this record is refused; others may pass
        └── FatalConnectorError           anything else; stop talking to this API

Messages carry connector names, HTTP statuses and vendor request ids, never a
person's data or a credential. This module imports only the standard library:
the thin CLI commands load it, which is also why :class:`Problem` is written out by hand
rather than as a dataclass (``dataclasses`` loads ``inspect``, a sixth of `syncd status`).
"""

from __future__ import annotations

from collections.abc import Sequence


class SyncdError(Exception):
    """Base of syncd's own errors; ``str()`` is the sentence shown to the user."""

    exit_code: int = 1


class UsageError(SyncdError):
    """A bad argument on the command line or in a control API call."""

    exit_code = 2


class Problem:
    """One config problem: where it is and what is wrong (a frozen value)."""

    __slots__ = ("key", "message", "path")
    path: str
    key: str
    message: str

    def __init__(self, path: str, key: str, message: str) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "message", message)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def _fields(self) -> tuple[str, str, str]:
        return (self.path, self.key, self.message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Problem(path={self.path!r}, key={self.key!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[type[Problem], tuple[str, str, str]]:
        return (Problem, self._fields())

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return f"{where}: {self.message}"


class ConfigError(SyncdError):
    """The config file has one or more problems; all are listed."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"the config has {count} {noun}; fix them and run `syncd config check`:\n{lines}"
        )


class DaemonNotRunning(SyncdError):
    """Nothing answers on the control socket."""

    exit_code = 3


class AuthError(SyncdError):
    """A credential is missing, or the service rejected it."""

    exit_code = 4

    def __init__(self, connector: str, message: str) -> None:
        self.connector = connector
        super().__init__(message)


class KeyringUnavailable(AuthError):
    """No usable OS keyring backend; syncd never falls back to plaintext."""


class CredentialStoreUnavailable(KeyringUnavailable):
    """The keyring exists but cannot answer now (locked, its service gone): ``connector``
    names the credential that could not be read; work needing it resumes once it is back."""


class PrivacyRefusal(SyncdError):
    """A privacy rule refused the selection before anything left the machine."""

    exit_code = 5

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


class ConnectorError(SyncdError):
    """An external API answered with an error, or could not be reached."""

    def __init__(
        self,
        connector: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.connector = connector
        self.status = status
        self.request_id = request_id
        super().__init__(message)

    def describe(self) -> str:
        """The message with status and request id, for logs and outcome details."""
        parts = [str(self)]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " · ".join(parts)


class RetryableError(ConnectorError):
    """May succeed later: throttled, server error, timeout, connection refused."""

    def __init__(
        self,
        connector: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(connector, message, status=status, request_id=request_id)
        self.retry_after = retry_after


class WriteUncertain(RetryableError):
    """A write whose answer was lost: it may or may not have been applied. Never resent
    as is; the whole upsert is run again, and finds by identity what the write made."""


class RecordRejected(ConnectorError):
    """The API refused this record (validation, conflict); retrying will not help."""


class FatalConnectorError(ConnectorError):
    """An answer we cannot act on; stop and tell the user."""


class ActivitiesRefused(ConnectorError):
    """The CRM accepted the person but refuses the activities syncd writes for their messages
    (a missing permission or scope): that part fails with a sentence, the contact stays."""
