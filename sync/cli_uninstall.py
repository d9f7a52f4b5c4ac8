"""`syncd uninstall [--purge] [--yes]`: remove the service; with --purge, everything else.

The service goes exactly as `syncd service uninstall` removes it (sync/cli_service.py);
what --purge removes, and how, is sync/purge.py. Nothing here talks to a CRM.
"""

from __future__ import annotations

import argparse
import sys

from sync.daemon_stop import stop_daemon
from sync.errors import UsageError
from sync.purge import Plan, Report, describe, plan, purge

_ASK_ON_TERMINAL = (
    "`syncd uninstall --purge` deletes every credential, the journal, the do-not-sync list, "
    "the logs and the config, and asks first; there is no terminal to ask on, so pass --yes"
)


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove the service and say what is left; ``--purge`` removes that too."""
    places = plan(args.config)
    if not args.purge:
        _note_config(places)
        code = _remove_service(args)
        print("still on this machine (`syncd uninstall --purge` removes all of it):")
        for line in describe(places):
            print(f"  {line}")
        return code
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(_ASK_ON_TERMINAL)
        if not _confirmed(places):
            print("nothing was removed")
            return 1
    _note_config(places)
    report = Report(sys.stdout, sys.stderr)
    _remove_service(args)
    if not stop_daemon(places.socket, report):
        return report.exit_code()
    from sync.secrets import KeyringTokenStore

    return purge(places, KeyringTokenStore, report)


def _note_config(places: Plan) -> None:
    if places.config_problem is not None:
        print(
            f"note: {places.config_problem}; syncd's default places, and the CRM names the "
            "file still shows, are used instead",
            file=sys.stderr,
        )


def _remove_service(args: argparse.Namespace) -> int:
    from sync import cli_service
    from sync.service import UnsupportedPlatform

    try:
        return cli_service.cmd_uninstall(args)
    except UnsupportedPlatform:
        print("no service of syncd's can be installed on this OS, so there is none to remove")
        return 0


def _confirmed(places: Plan) -> bool:
    """Ask on the terminal, after listing what will go; True only for "yes"."""
    print("syncd uninstall --purge will stop syncd, remove its service and delete:")
    for line in describe(places):
        print(f"  {line}")
    print(
        "Every block and every `syncd forget` is lifted with the do-not-sync list: if syncd is "
        "installed again, those people can be synced again.\n"
        "No CRM is contacted: what syncd wrote to your CRMs stays there."
    )
    try:
        answer = input('Type "yes" to delete all of this: ')
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")
