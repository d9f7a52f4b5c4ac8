"""`syncd uninstall --purge`: what syncd keeps on this machine, and removing all of it.

Every function takes its places (paths, the token store, the output streams) explicitly.
Only syncd's own files are removed: each by its known name or pattern, a symbolic link as a
link (never followed), and syncd's directories only once they are empty. No CRM and no
network is touched; no credential value is ever read into a message.
"""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sync.config import INSTANCE_NAME, DaemonConfig, load, resolve_path, runtime_dir
from sync.donotsync import KEY_NAME as DO_NOT_SYNC_KEY
from sync.errors import ConfigError, KeyringUnavailable
from sync.journal import DAMAGED, KEY_NAME, SUFFIX
from sync.secrets import SERVICE, TokenStore

DO_NOT_SYNC_FILE = "do-not-sync"
#: What syncd writes in the journal directory (and in its damaged/ folder).
JOURNAL_FILES = (f"*{SUFFIX}", "run-*.inflight", ".*.tmp")
_KEY_LABELS = {KEY_NAME: "the journal key", DO_NOT_SYNC_KEY: "the do-not-sync key"}


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything syncd keeps on this machine: credential names and places on disk."""

    config_file: Path
    credentials: tuple[str, ...]
    journal_dir: Path
    do_not_sync: tuple[Path, ...]
    log_file: Path | None
    socket: Path
    own_dirs: tuple[Path, ...]
    config_problem: str | None = None


def own_dirs(env: Mapping[str, str]) -> tuple[Path, ...]:
    """syncd's directories (platformdirs' user dirs for "syncd" and the runtime dir)."""
    import platformdirs

    found = (
        platformdirs.user_config_dir("syncd"),
        platformdirs.user_state_dir("syncd"),
        platformdirs.user_log_dir("syncd"),
        platformdirs.user_data_dir("syncd"),
        platformdirs.user_cache_dir("syncd"),
        str(runtime_dir(env)),
    )
    return tuple(dict.fromkeys(Path(p) for p in found))


def plan(config_arg: str | None, env: Mapping[str, str] | None = None) -> Plan:
    """What to remove, from the config at ``config_arg`` (its defaults when it cannot load)."""
    environ = os.environ if env is None else env
    file = resolve_path(config_arg, environ)
    problem: str | None = None
    try:
        config = load(file, env=environ)
        daemon = config.daemon
        instances = list(config.crms)
    except ConfigError as error:
        count = len(error.problems)
        problem = (
            f"there is no config at {file}"
            if not os.path.lexists(file)
            else f"the config {file} does not load ({count} problem(s))"
        )
        daemon, instances = _raw_daemon(file, environ)
    state = Path(_user_state_dir())
    lists = (daemon.do_not_sync_path(), state / DO_NOT_SYNC_FILE)
    return Plan(
        config_file=file,
        credentials=tuple(dict.fromkeys(["source", *instances, KEY_NAME, DO_NOT_SYNC_KEY])),
        journal_dir=daemon.journal_path(),
        do_not_sync=tuple(dict.fromkeys(lists)),
        log_file=daemon.log_path(),
        socket=daemon.socket,
        own_dirs=own_dirs(environ),
        config_problem=problem,
    )


def _user_state_dir() -> str:
    import platformdirs

    return platformdirs.user_state_dir("syncd")


def _raw_daemon(file: Path, env: Mapping[str, str]) -> tuple[DaemonConfig, list[str]]:
    """The ``[daemon]`` places and CRM names of a config that does not load, as far as the
    TOML can be read; the defaults for the rest."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    table = data.get("daemon")
    daemon = table if isinstance(table, dict) else {}

    def place(key: str) -> str:
        raw = daemon.get(key)
        if not isinstance(raw, str) or raw.strip() in ("", "-"):
            return raw.strip() if isinstance(raw, str) else ""
        path = Path(os.path.expanduser(raw.strip()))
        return str(path if path.is_absolute() else file.parent / path)

    from sync.config import socket_path

    crms = data.get("crm")
    names = [n for n in crms if INSTANCE_NAME.fullmatch(n)] if isinstance(crms, dict) else []
    config = DaemonConfig(
        socket_path(str(file), env), log_file=place("log_file"), journal_dir=place("journal_dir")
    )
    return config, names


def describe(p: Plan) -> list[str]:
    """One line per kind of thing syncd keeps, with its paths (never a credential value)."""
    names = ", ".join(_KEY_LABELS.get(n, n) for n in p.credentials)
    lines = [
        f'credentials in the OS keyring (service "{SERVICE}"): {names} '
        "(and any other item of that service)"
    ]
    if _exists(p.journal_dir):
        lines.append(f"the journal of selections not yet relayed: {p.journal_dir}")
    lines += [f"the do-not-sync list: {path}" for path in p.do_not_sync if _exists(path)]
    if p.log_file is not None and _exists(p.log_file):
        lines.append(f"the log and its rotations: {p.log_file}")
    if _exists(p.config_file):
        lines.append(f"the config: {p.config_file}")
    existing = [str(d) for d in p.own_dirs if _exists(d)]
    if existing:
        lines.append(f"syncd's directories: {', '.join(existing)}")
    return lines


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


@dataclass
class Report:
    """What was removed and what could not be, said as it happens."""

    out: TextIO
    err: TextIO
    removed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    keyring_problem: str | None = None

    def done(self, line: str) -> None:
        """One thing removed."""
        self.removed.append(line)
        print(line, file=self.out)

    def note(self, line: str) -> None:
        """Something kept on purpose, or worth knowing."""
        print(line, file=self.out)

    def failed(self, sentence: str) -> None:
        """One thing that could not be removed; the rest goes on."""
        self.failures.append(sentence)
        print(f"syncd: {sentence}", file=self.err)

    def exit_code(self) -> int:
        """4 when the keyring could not be reached, 1 when a file stayed, else 0."""
        if self.keyring_problem is not None:
            return 4
        return 1 if self.failures else 0


def _reason(error: OSError) -> str:
    from sync.journal_files import reason

    return reason(error)


# -- the keyring ---------------------------------------------------------------------------


def remove_credentials(
    open_store: Callable[[], TokenStore], names: Sequence[str], report: Report
) -> bool:
    """Delete ``names`` (and, on Secret Service, every other "syncd" item); False when the
    keyring could not be reached (the report then says what is still in it)."""
    left = list(names)
    try:
        store = open_store()
        backend = store.backend_name()
        for name in names:
            if store.delete(name):
                report.done(f"removed {_label(name)} from the keyring ({backend})")
            left.remove(name)
        if "SecretService" in backend:
            left = ["any other item of service syncd"]
            _sweep_secret_service(report, backend)
    except KeyringUnavailable as error:
        report.keyring_problem = str(error)
        report.failed(
            f"{error}; so these are still in the keyring: {', '.join(_label(n) for n in left)}"
        )
        return False
    return True


def _label(name: str) -> str:
    return _KEY_LABELS.get(name, f"the credential for {name}") + (
        f" ({name})" if name in _KEY_LABELS else ""
    )


def _sweep_secret_service(report: Report, backend: str) -> None:
    """Delete every Secret Service item whose attributes say service "syncd"."""
    import secretstorage

    try:
        connection = secretstorage.dbus_init()
    except Exception as error:  # no session bus, no service: one sentence, not a trace
        raise KeyringUnavailable("keyring", _unreachable(error)) from None
    try:
        for item in secretstorage.search_items(connection, {"service": SERVICE}):
            username = item.get_attributes().get("username", "?")
            item.delete()
            report.done(f"removed {_label(username)} from the keyring ({backend})")
    except Exception as error:  # a locked collection, a D-Bus error
        raise KeyringUnavailable("keyring", _unreachable(error)) from None
    finally:
        connection.close()


def _unreachable(error: Exception) -> str:
    return (
        f"the OS keyring could not be searched for syncd's items ({type(error).__name__}); "
        "unlock it (or start it) and run `syncd uninstall --purge` again"
    )


# -- files -----------------------------------------------------------------------------------


def remove_files(p: Plan, report: Report, *, keep_config: bool = False) -> None:
    """The journal, the do-not-sync list, the logs, a stale socket, the config, then
    syncd's directories that are left empty."""
    _remove_journal(p.journal_dir, report)
    for path in p.do_not_sync:
        remove_file(path, report, "the do-not-sync list")
        for partial in _glob(path.parent, (f".{path.name}.*.tmp",)):
            remove_file(partial, report, "an unfinished do-not-sync write")
    if p.log_file is not None:
        remove_file(p.log_file, report, "the log")
        rotations = _glob(p.log_file.parent, (f"{p.log_file.name}.*",))
        for old in rotations:
            if old.suffix[1:].isdigit():
                remove_file(old, report, "a rotated log")
    _remove_stale_socket(p.socket, report)
    if keep_config:
        report.note(
            f"kept the config {p.config_file}, so that `syncd uninstall --purge` run again "
            "finds the credentials still in the keyring"
        )
    else:
        remove_file(p.config_file, report, "the config")
    for partial in _glob(p.config_file.parent, (".config-*.tmp",)):
        remove_file(partial, report, "an unfinished config write")
    remove_empty_dirs(p.own_dirs, report)


def remove_file(path: Path, report: Report, what: str) -> bool:
    """Remove one file (a symbolic link as the link itself); False if there was none."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    except OSError as error:
        report.failed(f"could not examine {what} {path} ({_reason(error)}); remove it by hand")
        return False
    if stat.S_ISDIR(info.st_mode):
        report.failed(f"{what} {path} is a directory, which syncd never writes; it was left")
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        report.failed(f"could not remove {what} {path} ({_reason(error)}); remove it by hand")
        return False
    link = " (a symbolic link: only the link)" if stat.S_ISLNK(info.st_mode) else ""
    report.done(f"removed {what} {path}{link}")
    return True


def _glob(directory: Path, patterns: Sequence[str]) -> list[Path]:
    """The entries of ``directory`` matching ``patterns`` (none if it is not a real dir)."""
    if not _is_real_dir(directory):
        return []
    return sorted({entry for pattern in patterns for entry in directory.glob(pattern)})


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _remove_journal(directory: Path, report: Report) -> None:
    if os.path.islink(directory):
        remove_file(directory, report, "the journal directory")
        return
    for folder in (directory / DAMAGED, directory):
        count = 0
        for entry in _glob(folder, JOURNAL_FILES):
            if not _is_real_dir(entry) and _unlink_quietly(entry, report, "a journal file"):
                count += 1
        if count:
            report.done(f"removed {count} journal file(s) in {folder}")
        _remove_dir_if_empty(folder, report, "the journal directory")


def _unlink_quietly(path: Path, report: Report, what: str) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        report.failed(f"could not remove {what} {path} ({_reason(error)}); remove it by hand")
        return False
    return True


def _remove_dir_if_empty(directory: Path, report: Report, what: str) -> None:
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        report.failed(f"could not examine {directory} ({_reason(error)})")
        return
    if stat.S_ISLNK(info.st_mode):
        remove_file(directory, report, what)
        return
    if not stat.S_ISDIR(info.st_mode):
        return
    try:
        directory.rmdir()
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            held = sorted(entry.name for entry in directory.iterdir())
            report.note(
                f"kept {directory}: it still holds {len(held)} entry(ies) syncd did not "
                f"remove (first: {held[0]})"
            )
        else:
            report.failed(f"could not remove {directory} ({_reason(error)}); remove it by hand")
        return
    report.done(f"removed {what} {directory}")


def remove_empty_dirs(dirs: Sequence[Path], report: Report) -> None:
    """Remove each of ``dirs`` that is empty, the deepest first; a link as a link."""
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        _remove_dir_if_empty(directory, report, "syncd's directory")


# -- a daemon still running ----------------------------------------------------------------


def _remove_stale_socket(path: Path, report: Report) -> None:
    """A socket file nobody listens on any more (left by a crash)."""
    try:
        info = path.lstat()
    except OSError:
        return
    if stat.S_ISSOCK(info.st_mode) or stat.S_ISLNK(info.st_mode):
        remove_file(path, report, "the control socket")


# -- all of it -------------------------------------------------------------------------------


def purge(p: Plan, open_store: Callable[[], TokenStore], report: Report) -> int:
    """Remove every credential and file of ``p`` (the daemon already stopped); the exit code."""
    reached = remove_credentials(open_store, p.credentials, report)
    remove_files(p, report, keep_config=not reached)
    if report.failures:
        report.note(
            f"removed {len(report.removed)} thing(s); what is named above is still on this "
            "machine. No CRM was contacted."
        )
    else:
        report.note(
            f"syncd left nothing on this machine ({len(report.removed)} thing(s) removed); "
            "no CRM was contacted, and what syncd wrote to your CRMs stays there"
        )
    return report.exit_code()
