"""`syncd service install | uninstall | status`: syncd as a systemd user unit or launchd agent.

The service manager is asked (``systemctl --user``, ``launchctl``) when it is there and
answers; when it is not (no systemctl, no user D-Bus session, a container), every command
still does its part on disk and says what to run in the user's own session instead.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from sync.errors import UsageError
from sync.service import (
    LAUNCHD_LABEL,
    UNIT_NAME,
    ServiceFile,
    config_argument,
    enablement_links,
    service_file,
    write,
)

#: How long a service manager command may take before syncd stops waiting for it.
TOOL_TIMEOUT_S = 20.0
_NO_MANAGER = "no user service manager here"
_NOBODY = "no user service manager answered here (no systemctl, or no user D-Bus session)"


def _run(*argv: str) -> subprocess.CompletedProcess[str] | None:
    """Run a service manager command; None when the tool is missing or did not finish."""
    tool = shutil.which(argv[0])
    if tool is None:
        return None
    try:
        return subprocess.run(  # noqa: S603 - a fixed argv of our own, no shell
            [tool, *argv[1:]], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _ok(done: subprocess.CompletedProcess[str] | None) -> bool:
    return done is not None and done.returncode == 0


def _answer(done: subprocess.CompletedProcess[str] | None) -> str | None:
    """The one-word answer of ``systemctl is-*``; None when the manager gave none."""
    if done is None:
        return None
    words = done.stdout.split()
    return words[0] if words else None


def _gui() -> str:
    return f"gui/{os.getuid()}"


def _current(args: argparse.Namespace) -> ServiceFile:
    return service_file(config_argument(getattr(args, "config", None), os.environ))


def cmd_install(args: argparse.Namespace) -> int:
    """Write the unit (or agent) and say the one command that starts it."""
    config = config_argument(args.config, os.environ)
    if config is not None and not config.is_file():
        raise UsageError(
            f"there is no config file at {config}; write one with `syncd init`, or pass the "
            "path of yours with --config"
        )
    file = service_file(config)
    if args.dry_run:
        print(f"# syncd service install would write {file.path}:", file=sys.stderr)
        sys.stdout.write(file.text)
        return 0
    if config is None:
        from sync.config import resolve_path

        default = resolve_path(None)
        if not default.is_file():
            print(
                f"note: there is no config at {default} yet; write it with `syncd init` "
                "before starting the service",
                file=sys.stderr,
            )
    changed = write(file)
    kind = "systemd user unit" if file.manager == "systemd" else "launchd agent"
    verb = "wrote" if changed else "already up to date:"
    print(f"{verb} {file.path} ({kind}; it holds no credential)")
    if file.manager == "systemd":
        _after_systemd_install(file, changed)
    else:
        _after_launchd_install(file)
    return 0


def _after_systemd_install(file: ServiceFile, changed: bool) -> None:
    if not _ok(_run("systemctl", "--user", "daemon-reload")):
        print(
            f"{_NOBODY}, so nothing was reloaded; in your desktop session, start syncd now "
            "and at every login with:"
        )
        print(f"  {file.start}")
        return
    print("reloaded the user service manager")
    if changed and _answer(_run("systemctl", "--user", "is-active", UNIT_NAME)) == "active":
        print("syncd is already running: apply the new unit with:")
        print(f"  systemctl --user restart {UNIT_NAME}")
        return
    print("start syncd now and at every login with:")
    print(f"  {file.start}")


def _after_launchd_install(file: ServiceFile) -> None:
    if _ok(_run("launchctl", "print", f"{_gui()}/{LAUNCHD_LABEL}")):
        print("syncd's agent is already loaded: apply the new file with:")
        print(f"  launchctl bootout {_gui()}/{LAUNCHD_LABEL} && {file.start}")
        return
    print("start syncd now and at every login with:")
    print(f"  {file.start}")


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Stop and disable the service where the manager answers, then remove its file."""
    file = _current(args)
    if file.manager == "systemd":
        return _uninstall_systemd(file)
    return _uninstall_launchd(file)


def _uninstall_systemd(file: ServiceFile) -> int:
    links = enablement_links(file.path.parent)
    if not file.path.exists() and not links:
        print(f"{UNIT_NAME} is not installed in {file.path.parent}; nothing to remove")
        return 0
    if _ok(_run("systemctl", "--user", "disable", "--now", UNIT_NAME)):
        print(f"stopped and disabled {UNIT_NAME}")
        stopped = True
    else:
        stopped = False
        if _ok(_run("systemctl", "--user", "disable", UNIT_NAME)):
            print(f"disabled {UNIT_NAME}")
    for link in enablement_links(file.path.parent):  # what systemctl could not remove
        link.unlink()
        print(f"removed {link}")
    if file.path.exists():
        file.path.unlink()
        print(f"removed {file.path}")
    if stopped:
        _run("systemctl", "--user", "daemon-reload")
    else:
        print(
            f"{_NOBODY}, so nothing was stopped; if syncd still runs in your desktop "
            f"session, run `systemctl --user stop {UNIT_NAME}` there"
        )
    return 0


def _uninstall_launchd(file: ServiceFile) -> int:
    if not file.path.exists():
        print(f"{file.path.name} is not installed in {file.path.parent}; nothing to remove")
        return 0
    if _ok(_run("launchctl", "bootout", f"{_gui()}/{LAUNCHD_LABEL}")):
        print(f"stopped and unloaded {LAUNCHD_LABEL}")
    else:
        print(f"{LAUNCHD_LABEL} was not loaded (or launchctl did not answer); nothing to stop")
    file.path.unlink()
    print(f"removed {file.path}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Whether the unit is installed, enabled and running (as far as the manager says)."""
    file = _current(args)
    if not file.path.exists():
        print(f"{file.path.name}: not installed; install it with `syncd service install`")
        return 0
    if file.manager == "systemd":
        enabled = _answer(_run("systemctl", "--user", "is-enabled", UNIT_NAME))
        active = _answer(_run("systemctl", "--user", "is-active", UNIT_NAME))
        if active is None:
            detail = f"{enabled}; " if enabled else ""
            print(f"{UNIT_NAME}: installed ({file.path}), {detail}state unknown: {_NO_MANAGER}")
        else:
            print(f"{UNIT_NAME}: installed ({file.path}), {enabled or 'unknown'}, {active}")
    else:
        loaded = _ok(_run("launchctl", "print", f"{_gui()}/{LAUNCHD_LABEL}"))
        state = "loaded" if loaded else "not loaded (or launchctl did not answer)"
        print(f"{LAUNCHD_LABEL}: installed ({file.path}), {state}")
    program = _program(file)
    if program is not None and not Path(program).exists():
        print(
            f"the service runs {program}, which no longer exists; run `syncd service install` "
            "again from the Python that has syncd"
        )
    return 0


def _program(file: ServiceFile) -> str | None:
    """The program the installed file runs (its first word), if it can be read."""
    try:
        content = file.path.read_bytes()
    except OSError:
        return None
    if file.manager == "launchd":
        import plistlib
        from xml.parsers.expat import ExpatError

        try:
            agent = plistlib.loads(content)
        except (ValueError, ExpatError):  # a hand-edited file: say nothing rather than guess
            return None
        argv = agent.get("ProgramArguments") if isinstance(agent, dict) else None
        first = argv[0] if isinstance(argv, list) and argv else None
        return first if isinstance(first, str) else None
    for line in content.decode("utf-8", "replace").splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(line.removeprefix("ExecStart="))
            except ValueError:
                return None
            # the unit escapes % and $ for systemd (sync/service.py::_exec_word)
            return words[0].replace("%%", "%").replace("$$", "$") if words else None
    return None
