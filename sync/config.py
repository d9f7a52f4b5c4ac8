"""The config file: found, parsed, checked in full, and turned into frozen values.

Standard library only at import time: the thin CLI commands read the socket path from
here. Every problem in a file is collected and reported at once; no message repeats a
value from the file (it could be a pasted token), only keys and types.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from connectors.base import FIELDS, ConnectorSettings
from sync.config_check import Checker, connector_settings, string_list
from sync.errors import ConfigError, Problem
from sync.paths import resolve_path as resolve_path  # re-exported: one lookup for every caller
from sync.paths import runtime_dir as runtime_dir
from sync.paths import socket_path as socket_path  # the thin clients' lookup, re-exported

LOG_LEVELS = ("debug", "info", "warning", "error")
_TOP = ("daemon", "source", "crm", "match", "follow", "privacy")
_DURATION = re.compile(r"(\d+)\s*(s|m|h)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
#: The shortest follow interval: a pass reads every followed person's conversation, and the
#: source throttles members who read too often.
MIN_FOLLOW_SECONDS = 60
_PRIVACY = ("blocked_email_domains", "blocked_companies", "fields")
INSTANCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_DOMAIN = re.compile(r"[^\s@/:.]+(\.[^\s@/:.]+)+")
_SOCKET_MAX = 103 if sys.platform == "darwin" else 107  # sun_path, less the final NUL
_MISSING = (
    "no config file here: copy config.example.toml (in syncd's source) to this path and "
    "edit it, or run `syncd sandbox --config-out PATH` for one that uses local sandboxes"
)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """``[daemon]``: where the control socket and the log go."""

    socket: Path
    log_level: str = "info"
    log_file: str = ""  # "" = the user log dir, "-" = stderr, else an absolute path
    journal_dir: str = ""  # "" = <user state dir>/journal, else an absolute path
    log_keep_days: int = 30  # rotated log files older than this are deleted

    def journal_path(self) -> Path:
        """Where the encrypted pending-selection journal lives."""
        if self.journal_dir:
            return Path(self.journal_dir)
        import platformdirs

        return Path(platformdirs.user_state_dir("syncd")) / "journal"

    def do_not_sync_path(self) -> Path:
        """The do-not-sync list: ``do-not-sync`` in syncd's state directory, beside the
        journal; with ``journal_dir`` set, inside it (its parent may be a shared directory
        such as the home folder, which syncd must not require to be private)."""
        if self.journal_dir:
            return Path(self.journal_dir) / "do-not-sync"
        return self.journal_path().parent / "do-not-sync"

    def log_path(self) -> Path | None:
        """The log file, or None for stderr."""
        if self.log_file == "-":
            return None
        if self.log_file:
            return Path(self.log_file)
        import platformdirs

        return Path(platformdirs.user_log_dir("syncd")) / "syncd.log"


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """``[match]``: how a person is recognised in a CRM."""

    strict: bool = False


@dataclass(frozen=True, slots=True)
class FollowConfig:
    """``[follow]``: whether the daemon relays new messages of followed people, how often."""

    enabled: bool = False
    interval_s: float = 15 * 60.0


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """``[privacy]``: what may never leave, and which fields may."""

    # Built-in default blocks no domain: a silent rule the user never wrote would refuse
    # people unexpectedly. config.example.toml suggests gmail.com, as its comment explains.
    blocked_email_domains: tuple[str, ...] = ()
    blocked_companies: tuple[str, ...] = ()
    fields: tuple[str, ...] = FIELDS


@dataclass(frozen=True, slots=True)
class Config:
    """One validated config file."""

    path: Path
    daemon: DaemonConfig
    source: ConnectorSettings
    crms: Mapping[str, ConnectorSettings]  # in file order
    match: MatchConfig = field(default_factory=MatchConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    follow: FollowConfig = field(default_factory=FollowConfig)


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700, or refuse one another user owns or others can enter."""
    from sync.private_paths import UnsafePath, private_dir

    try:
        private_dir(path, setting="[daemon] socket")
    except UnsafePath as error:
        message = f"{error.problem}; {error.remedy}"
        raise ConfigError([Problem(str(error.path), "daemon.socket", message)]) from None


def load(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Find, read and validate the config; ConfigError lists every problem."""
    file = resolve_path(path, env)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(file), "", _MISSING)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(file), "", "is not UTF-8 text")]) from None
    except OSError as error:
        problem = Problem(str(file), "", f"cannot be read ({type(error).__name__})")
        raise ConfigError([problem]) from None
    return parse(text, file, env=env)


def parse(text: str, path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Validate the TOML ``text`` of the file at ``path``; ConfigError lists every problem."""
    check = Checker(str(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([Problem(str(path), "", check.syntax_message(error, text))]) from None
    check.unknown_keys(data, "", _TOP)
    daemon = _daemon(check, check.table(data, "daemon", "") or {}, path, _environ(env))
    source = _source(check, data)
    crms = _crms(check, data)
    strict = check.boolean(_section(check, data, "match", ("strict",)), "match", "strict")
    privacy = _privacy(check, _section(check, data, "privacy", _PRIVACY))
    follow = _follow(check, _section(check, data, "follow", ("enabled", "interval")))
    if check.problems or source is None:
        raise ConfigError(check.problems)
    crms = {name: replace(settings, strict_match=strict) for name, settings in crms.items()}
    return Config(
        path, daemon, source, MappingProxyType(crms), MatchConfig(strict), privacy, follow
    )


def _follow(check: Checker, table: Mapping[str, object]) -> FollowConfig:
    enabled = check.boolean(table, "follow", "enabled")
    raw = check.string(table, "follow", "interval", "15m")
    try:
        seconds = parse_duration(raw)
    except ValueError as error:
        check.add("follow.interval", str(error))
        return FollowConfig(enabled)
    if seconds < MIN_FOLLOW_SECONDS:
        check.add(
            "follow.interval",
            f"must be at least {MIN_FOLLOW_SECONDS // 60}m: the source throttles members "
            "who read conversations that often",
        )
        return FollowConfig(enabled)
    return FollowConfig(enabled, float(seconds))


def parse_duration(text: str) -> int:
    """``"15m"``, ``"90s"``, ``"1h30m"`` as seconds; ValueError with a sentence otherwise."""
    compact = text.strip().lower()
    parts = list(_DURATION.finditer(compact))
    if not parts or "".join(m.group(0) for m in parts).replace(" ", "") != compact.replace(" ", ""):
        raise ValueError('must be a duration such as "15m", "90s" or "1h" (a number and s, m or h)')
    return sum(int(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in parts)


def _resolve(raw: str, base: Path) -> Path:
    path = Path(os.path.expanduser(raw.strip()))
    return path if path.is_absolute() else base / path


def _section(
    check: Checker, data: dict[str, object], name: str, allowed: tuple[str, ...]
) -> dict[str, object]:
    table = check.table(data, name, "") or {}
    check.unknown_keys(table, name, allowed)
    return table


def _daemon(
    check: Checker, table: dict[str, object], path: Path, env: Mapping[str, str]
) -> DaemonConfig:
    check.unknown_keys(
        table, "daemon", ("socket", "log_level", "log_file", "log_keep_days", "journal_dir")
    )
    raw_socket = check.string(table, "daemon", "socket", "").strip()
    level = check.string(table, "daemon", "log_level", "info").lower()
    if level not in LOG_LEVELS:
        check.add("daemon.log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        level = "info"
    log_file = check.string(table, "daemon", "log_file", "").strip()
    if log_file not in ("", "-"):
        log_file = str(_resolve(log_file, path.parent))
    socket = _resolve(raw_socket, path.parent) if raw_socket else runtime_dir(env) / "syncd.sock"
    if len(os.fsencode(socket)) > _SOCKET_MAX:
        check.add("daemon.socket", f"is too long for a Unix socket (at most {_SOCKET_MAX} bytes)")
    journal_dir = check.string(table, "daemon", "journal_dir", "").strip()
    if journal_dir:
        journal_dir = str(_resolve(journal_dir, path.parent))
    keep_days = check.positive_int(table, "daemon", "log_keep_days", 30)
    return DaemonConfig(socket, level, log_file, journal_dir, keep_days)


def _source(check: Checker, data: dict[str, object]) -> ConnectorSettings | None:
    if "source" not in data:
        check.add("source", "missing: add a [source] table with the source's type")
        return None
    table = check.table(data, "source", "")
    return (
        connector_settings(check, table, "source", "source", "source")
        if table is not None
        else None
    )


def _crms(check: Checker, data: dict[str, object]) -> dict[str, ConnectorSettings]:
    tables = check.table(data, "crm", "")
    if tables is None:
        return {}
    if not tables:
        check.add("crm", "no CRM configured: add a [crm.NAME] table, e.g. [crm.hubspot]")
    crms: dict[str, ConnectorSettings] = {}
    for name in tables:
        key = check.key("crm", name)
        if not INSTANCE_NAME.fullmatch(name):
            check.add(key, "the name must be lowercase letters, digits, - or _ (at most 32)")
        elif name == "source":
            check.add(key, "'source' is reserved for the [source] table; choose another name")
        table = check.table(tables, name, "crm")
        settings = connector_settings(check, table, name, key, "crm") if table is not None else None
        if settings is not None:
            crms[name] = settings
    return crms


def _privacy(check: Checker, table: dict[str, object]) -> PrivacyConfig:
    domains = string_list(check, table, "privacy", "blocked_email_domains") or []
    for number, domain in enumerate(domains, start=1):
        if not _DOMAIN.fullmatch(domain.strip()):
            message = f"entry {number} is not a domain name (write example.com, without @)"
            check.add("privacy.blocked_email_domains", message)
    companies = string_list(check, table, "privacy", "blocked_companies") or []
    fields = string_list(check, table, "privacy", "fields")
    for number, name in enumerate(fields or [], start=1):
        if name not in FIELDS:
            check.add(
                "privacy.fields", f"entry {number} is not a field; known: {', '.join(FIELDS)}"
            )
    return PrivacyConfig(
        blocked_email_domains=tuple(d.strip().lower() for d in domains),
        blocked_companies=tuple(c.strip().lower() for c in companies if c.strip()),
        fields=tuple(dict.fromkeys(fields)) if fields is not None else FIELDS,
    )
