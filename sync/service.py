"""The files that make syncd a background service: a systemd user unit, a launchd agent.

Standard library only. Nothing here holds a secret: the daemon reads its credentials from
the OS keyring, which a user unit reaches through the session's D-Bus like any other
program of that user, so neither file carries an ``Environment=`` or a token (P2).
"""

from __future__ import annotations

import os
import plistlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sync.errors import UsageError

UNIT_NAME = "syncd.service"
LAUNCHD_LABEL = "local.syncd"
#: Longer than the daemon's drain (sync/daemon.py DRAIN_SECONDS, 10 s) plus the server's
#: graceful close, so a stop is never cut short by the service manager's SIGKILL.
STOP_TIMEOUT_S = 30
#: The daemon pings at half of this (sync/notify.py); a stuck event loop is restarted.
WATCHDOG_S = 30
RESTART_S = 5

Manager = Literal["systemd", "launchd"]

# Hardening that a *user* service manager can apply: each of these is a prctl or a seccomp
# filter, which an unprivileged manager may install once no_new_privs is set. Mount
# namespaces (PrivateTmp=, ProtectSystem=, ProtectHome=) need user namespaces in a user
# unit, which many machines disable, and would also hide the keyring's and the journal's
# files under $HOME; they are left out.
_HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("UMask", "0077"),
    ("LockPersonality", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("RestrictNamespaces", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallErrorNumber", "EPERM"),
)


class UnsupportedPlatform(UsageError):
    """This OS has no service manager syncd can write for."""


@dataclass(frozen=True, slots=True)
class ServiceFile:
    """A unit (or agent) file: where it goes, what it holds, how to start it."""

    manager: Manager
    path: Path
    content: bytes
    start: str

    @property
    def text(self) -> str:
        """The content as text, for printing."""
        return self.content.decode("utf-8")


def daemon_argv(config: Path | None) -> list[str]:
    """The command line the service manager runs: ``syncd run`` from this very interpreter.

    ``sys.executable -m sync.cli`` rather than the ``syncd`` console script: inside a venv
    sys.executable is the venv's own ``bin/python`` (kept as is, not resolved, since
    resolving the symlink would leave the venv), so the unit runs the same install as the
    shell did; the console script found on PATH may instead be a pyenv or pipx shim that
    picks an interpreter from the shell's environment, which a service manager does not have.
    """
    argv = [os.path.abspath(sys.executable), "-m", "sync.cli", "run"]
    if config is not None:
        argv += ["--config", str(config)]
    return argv


def config_argument(given: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config path to bake into the unit: ``--config``, else $SYNCD_CONFIG, else None.

    Made absolute because the service manager starts the daemon elsewhere and without the
    shell's environment; None leaves the daemon to its default location.
    """
    chosen = given or environ.get("SYNCD_CONFIG") or None
    if chosen is None:
        return None
    return Path(os.path.abspath(Path(chosen).expanduser()))


def _exec_word(word: str) -> str:
    """``word`` quoted for a systemd command line: specifiers and variables escaped."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c.isspace() or c in "\"'\\;" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(argv: Sequence[str]) -> str:
    """The text of the systemd user unit that runs ``argv``."""
    service = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", " ".join(_exec_word(w) for w in argv)),
        ("Restart", "on-failure"),
        ("RestartSec", f"{RESTART_S}s"),
        # A config error (exit 2) is not fixed by starting again; its sentence is in the log.
        ("RestartPreventExitStatus", "2"),
        ("WatchdogSec", f"{WATCHDOG_S}s"),
        ("TimeoutStopSec", f"{STOP_TIMEOUT_S}s"),
        ("LimitCORE", "0"),  # a core dump would hold whatever was in memory: tokens, people
        *_HARDENING,
    ]
    lines = [
        "# Written by `syncd service install`; `syncd service uninstall` removes it.",
        "[Unit]",
        "Description=syncd: relay the people you choose to your CRMs",
        "",
        "[Service]",
        *(f"{key}={value}" for key, value in service),
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


def launchd_plist(argv: Sequence[str], label: str = LAUNCHD_LABEL) -> bytes:
    """The launchd agent that runs ``argv`` at login and again if it fails."""
    agent: dict[str, object] = {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "ThrottleInterval": RESTART_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        # syncd writes its own redacted log; stray output has nowhere it should go.
        "StandardOutPath": os.devnull,
        "StandardErrorPath": os.devnull,
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)


def systemd_unit_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (``~/.config`` when unset or not absolute)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else _home(environ) / ".config"
    return root / "systemd" / "user"


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def manager_for(platform: str) -> Manager:
    """The service manager of ``platform`` (a ``sys.platform`` value)."""
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    raise UnsupportedPlatform(
        f"syncd can install itself as a service on Linux (systemd) and macOS (launchd) only, "
        f"not on {platform}; start `syncd run` with your system's own service manager instead"
    )


def service_file(
    config: Path | None,
    *,
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
) -> ServiceFile:
    """The service file for this platform, running ``syncd run`` with ``config``."""
    manager = manager_for(platform)
    argv = daemon_argv(config)
    if manager == "systemd":
        return ServiceFile(
            manager,
            systemd_unit_dir(environ) / UNIT_NAME,
            systemd_unit(argv).encode("utf-8"),
            f"systemctl --user enable --now {UNIT_NAME}",
        )
    path = _home(environ) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    return ServiceFile(
        manager,
        path,
        launchd_plist(argv),
        f"launchctl bootstrap gui/{os.getuid()} {path}",
    )


def write(file: ServiceFile) -> bool:
    """Write ``file`` (0644, atomically); False when it already held exactly this."""
    try:
        if file.path.read_bytes() == file.content:
            return False
    except FileNotFoundError:
        pass
    file.path.parent.mkdir(parents=True, exist_ok=True)
    partial = file.path.with_name(f".{file.path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(file.content)
        os.chmod(partial, 0o644)  # whatever the umask: service managers read it as any file
        os.replace(partial, file.path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True


def enablement_links(unit_dir: Path) -> list[Path]:
    """The ``*.wants/`` links that enable syncd's unit (left behind if systemctl is gone)."""
    return [
        link
        for link in sorted(unit_dir.glob(f"*.wants/{UNIT_NAME}"))
        if link.is_symlink() and Path(os.readlink(link)).name == UNIT_NAME
    ]
