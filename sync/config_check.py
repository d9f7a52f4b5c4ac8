"""The checks behind :mod:`sync.config`: keys, types, URLs and connector tables.

Standard library only. Each check records a :class:`Problem` and carries on with a
default, so one pass over a file finds every mistake in it. Messages name keys and
types, never a value from the file.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from connectors import registry
from connectors.base import FIELDS, ConnectorSettings, OverwritePolicy
from sync.errors import Problem

Kind = Literal["source", "crm"]
CREDENTIAL = "credentials belong in the keyring: remove this key and run `syncd auth set {}`"
URL_KEYS = ("base_url", "login_url", "oauth_url")
_COMMON: dict[Kind, tuple[str, ...]] = {
    "source": ("type", "base_url"),
    "crm": ("type", "base_url", "overwrite"),
}
_LABEL: dict[str, str] = {"source": "source", "crm": "CRM"}
_SECRET = re.compile(r"token|secret|passw|api_?key|credential|client_id|private_key|auth", re.I)
_KEY_PART = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,22}")  # longer could be a pasted token
_WHERE = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)\s*$")
_FIELD_LIST = ", ".join(FIELDS)


def type_name(value: object) -> str:
    """How a TOML value's type reads in a message, e.g. "an integer"."""
    names: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        ((datetime, date, time), "a date or time"),
    ]
    return next((name for kind, name in names if isinstance(value, kind)), "a value")


def _expected(kind: type) -> str:
    names: dict[type, str] = {
        str: "a string",
        bool: "true or false",
        int: "an integer",
        float: "a number",
        list: "an array",
        tuple: "an array",
        dict: "a table",
    }
    return names.get(kind, f"a {kind.__name__}")


def _coerce(value: object, kind: type) -> tuple[bool, object]:
    """Whether ``value`` fits a connector option of type ``kind``, and its stored form."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool), value
    if kind is float and isinstance(value, int | float):
        return True, float(value)
    if kind in (list, tuple) and isinstance(value, list):
        return True, tuple(value)
    return isinstance(value, kind), value


def url_problem(value: str, instance: str = "NAME") -> str | None:
    """Why ``value`` is not an acceptable API URL, or None; never quotes ``value``.

    A user name, password, query string or fragment is refused: each is where a pasted
    token would sit, and a URL is logged, shown and sent where a credential must not be.
    """
    keyring = f"credentials belong in the keyring (`syncd auth set {instance}`)"
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https:// URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return f"must not hold a user name or password: remove the part up to @; {keyring}"
    if "?" in value:
        return f"must not have a query string: remove the ? and all after it; {keyring}"
    if "#" in value:
        return f"must not have a fragment: remove the # and all after it; {keyring}"
    if parts.scheme == "http" and not is_loopback(host):
        return "must use https:// (http:// is allowed only for 127.0.0.1, ::1 and localhost)"
    return None


def url_keys(options: Mapping[str, registry.Option]) -> tuple[str, ...]:
    """The keys of a connector table that hold a URL: ``base_url``, the known URL options,
    and any option named ``*_url`` or whose default is a URL."""
    found = [
        name
        for name, option in options.items()
        if name in URL_KEYS
        or name.endswith("_url")
        or (isinstance(option.default, str) and option.default.startswith(("https:", "http:")))
    ]
    return ("base_url", *found)


def is_loopback(host: str) -> bool:
    """True for localhost, ::1 and 127.x.y.z."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def known_types(kind: Kind) -> list[str]:
    """The registered types of one kind whose package loads."""
    known = []
    for name in registry.PACKAGES:
        try:
            if registry.info(name).kind == kind:
                known.append(name)
        except (ImportError, AttributeError):
            continue
    return known


class Checker:
    """Collects the problems of one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        """Record one problem at ``key``."""
        self.problems.append(Problem(self.path, key, message))

    @staticmethod
    def key(prefix: str, *names: str) -> str:
        """``prefix`` (already checked) dotted with ``names``; a name that could be a pasted
        secret is not repeated."""
        safe = [n if _KEY_PART.fullmatch(n) else f"<a key of {len(n)} characters>" for n in names]
        return ".".join(p for p in (prefix, *safe) if p)

    @staticmethod
    def syntax_message(error: tomllib.TOMLDecodeError, source: str) -> str:
        """The parser's complaint and position, without the text it quotes."""
        text = str(error)
        where = _WHERE.search(text)
        what = re.split(r"\s*['\"(]", text[: where.start()] if where else text, maxsplit=1)[0]
        if what.startswith("Cannot declare"):
            what = "a table or key is declared twice"
        elif what.endswith("character"):
            what = "a character that is not allowed here"
        place = where.group(1) if where else "an unknown place"
        if place == "end of document":
            place = f"line {source.count(chr(10)) + 1} (the end of the file)"
        return f"TOML syntax error at {place}: {what[:1].lower()}{what[1:]}"

    def table(
        self, parent: Mapping[str, object], name: str, prefix: str
    ) -> dict[str, object] | None:
        """The sub-table ``name`` ({} if absent), or None if it is not a table."""
        value = parent.get(name, {})
        if isinstance(value, dict):
            return value
        self.add(self.key(prefix, name), f"must be a table, not {type_name(value)}")
        return None

    def unknown_keys(
        self,
        table: Mapping[str, object],
        prefix: str,
        allowed: Iterable[str] | None,
        instance: str = "NAME",
    ) -> None:
        """Report keys not in ``allowed`` (only credential-like keys when None)."""
        names = tuple(allowed) if allowed is not None else None
        for name in table:
            if names is not None and name in names:
                continue
            if _SECRET.search(name):
                self.add(self.key(prefix, name), CREDENTIAL.format(instance))
            elif names is not None:
                self.add(self.key(prefix, name), f"unknown key; allowed here: {', '.join(names)}")

    def string(self, table: Mapping[str, object], prefix: str, name: str, default: str) -> str:
        """A string value, or ``default``."""
        value = table.get(name, default)
        if isinstance(value, str):
            return value
        self.add(self.key(prefix, name), f"must be a string, not {type_name(value)}")
        return default

    def positive_int(
        self, table: Mapping[str, object], prefix: str, name: str, default: int
    ) -> int:
        """A whole number of at least 1, or ``default``."""
        value = table.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        self.add(
            self.key(prefix, name),
            f"must be a whole number of at least 1, not {value!r}"
            if isinstance(value, int) and not isinstance(value, bool)
            else f"must be a whole number, not {type_name(value)}",
        )
        return default

    def boolean(self, table: Mapping[str, object], prefix: str, name: str) -> bool:
        """A boolean value, or False."""
        value = table.get(name, False)
        if isinstance(value, bool):
            return value
        self.add(self.key(prefix, name), f"must be true or false, not {type_name(value)}")
        return False


def string_list(
    check: Checker, table: Mapping[str, object], prefix: str, name: str
) -> list[str] | None:
    """An array of strings, or None when absent or wrong."""
    if name not in table:
        return None
    value = table[name]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    what = "an array of strings" if isinstance(value, list) else type_name(value)
    check.add(check.key(prefix, name), f"must be an array of strings, not {what}")
    return None


def _connector_info(
    check: Checker, table: Mapping[str, object], prefix: str, kind: Kind
) -> registry.ConnectorInfo | None:
    key = check.key(prefix, "type")
    known = known_types(kind)
    label = _LABEL[kind]
    hint = f"one of: {', '.join(known)}" if known else f"no {label} connector is installed"
    value = table.get("type")
    if value is None:
        check.add(key, f"missing: set it to {hint}")
        return None
    if not isinstance(value, str):
        check.add(key, f"must be a string: {hint}")
        return None
    if value not in registry.PACKAGES:
        check.add(key, f"unknown {label} type; use {hint}")
        return None
    try:
        info = registry.info(value)
    except (ImportError, AttributeError) as error:
        check.add(key, f"its connector cannot be loaded ({type(error).__name__}); reinstall syncd")
        return None
    if info.kind != kind:
        check.add(key, f"is a {_LABEL[info.kind]} type; this table needs a {label} type: {hint}")
        return None
    return info


def _overwrite(check: Checker, table: Mapping[str, object], prefix: str) -> OverwritePolicy:
    key = check.key(prefix, "overwrite")
    hint = f'"empty-only", "always", or an array of fields ({_FIELD_LIST})'
    value = table.get("overwrite", "empty-only")
    if value == "always":
        return "always"
    if value == "empty-only":
        return "empty-only"
    if isinstance(value, list):
        bad = [n for n, item in enumerate(value, start=1) if item not in FIELDS]
        for number in bad:
            check.add(key, f"entry {number} is not a field; known: {_FIELD_LIST}")
        if not bad:
            return frozenset(str(item) for item in value)
    else:
        check.add(key, f"must be {hint}")
    return "empty-only"


def connector_settings(
    check: Checker, table: Mapping[str, object], instance: str, prefix: str, kind: Kind
) -> ConnectorSettings | None:
    """Validate one ``[source]`` or ``[crm.NAME]`` table; None if its type is unusable."""
    info = _connector_info(check, table, prefix, kind)
    allowed = (*_COMMON[kind], *info.options) if info else None
    check.unknown_keys(table, prefix, allowed, instance)
    base_url = check.string(table, prefix, "base_url", info.default_base_url if info else "")
    options: dict[str, object] = {}
    for name, option in (info.options if info else {}).items():
        options[name] = option.default
        if name in table:
            fits, value = _coerce(table[name], option.type)
            if fits and option.choices and value not in option.choices:
                choices = " or ".join(f'"{c}"' for c in option.choices)
                check.add(check.key(prefix, name), f"must be {choices}, not {value!r}")
            elif fits:
                options[name] = value
            else:
                what = f"must be {_expected(option.type)}, not {type_name(table[name])}"
                check.add(check.key(prefix, name), what)
    for name in url_keys(info.options if info else {}):
        value = base_url if name == "base_url" else options.get(name)
        problem = url_problem(value, instance) if name in table and isinstance(value, str) else None
        if problem:
            check.add(check.key(prefix, name), problem)
    overwrite = _overwrite(check, table, prefix) if kind == "crm" else "empty-only"
    if info is None:
        return None
    return ConnectorSettings(
        instance=instance,
        type=str(table["type"]),
        base_url=base_url.strip().rstrip("/"),
        overwrite=overwrite,
        options=MappingProxyType(options),
    )
