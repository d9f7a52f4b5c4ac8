"""The `syncd` command line.

Standard library only at import time: `status`, `add-contact`, `pause` and `resume` are
thin clients of the daemon and must answer at once. Commands that need httpx, structlog
or keyring import them inside their handlers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sync.errors import SyncdError

Handler = Callable[[argparse.Namespace], int]

#: The commands that only talk to the daemon: a command line naming one builds its parser
#: alone (see build_parser), in this order.
THIN = (
    "add-contact",
    "check",
    "forget",
    "block",
    "unblock",
    "export",
    "follow",
    "unfollow",
    "cancel",
    "status",
    "pause",
    "resume",
)
#: The options of `syncd` itself that take no value and may come before the command.
_ROOT_FLAGS = ("--debug",)

_EPILOG = """exit codes: 0 done · 1 some target failed or was ambiguous · 2 usage or config error ·
3 daemon not running · 4 credentials missing or rejected · 5 refused by a privacy rule or
the do-not-sync list"""

#: One or two example lines per command ("auth set" for nested ones), appended to each
#: --help by _with_examples; a parser whose epilog already has an example keeps its own.
_EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("syncd add-contact https://www.linkedin.com/in/ada-lovelace/", "syncd status"),
    "run": ("syncd run", "syncd run --config ~/.config/syncd/config.toml"),
    "add-contact": (
        "syncd add-contact ada-lovelace --to hubspot,pipedrive",
        "syncd add-contact --from-file ~/Downloads/Connections.csv",
    ),
    "check": ("syncd check https://www.linkedin.com/in/ada-lovelace/ --json",),
    "status": ("syncd status", "syncd status --format waybar"),
    "pause": ("syncd pause",),
    "resume": ("syncd resume",),
    "auth": ("syncd auth set hubspot", "syncd auth status"),
    "auth set": (
        "syncd auth set hubspot",
        "pass show crm/hubspot | syncd auth set hubspot --stdin",
    ),
    "auth remove": ("syncd auth remove pipedrive",),
    "auth status": ("syncd auth status --json",),
    "config": ("syncd config check",),
    "config check": ("syncd config check --config ./config.toml",),
    "sandbox": ("syncd sandbox --config-out /tmp/syncd-sandbox.toml",),
    "init": ("syncd init",),
    "service": ("syncd service install --dry-run", "syncd service status"),
    "service install": ("syncd service install --dry-run", "syncd service install"),
    "service uninstall": ("syncd service uninstall",),
    "service status": ("syncd service status",),
    "tray": ("syncd tray",),
    "completion": (
        "syncd completion bash > ~/.local/share/bash-completion/completions/syncd",
        "syncd completion fish > ~/.config/fish/completions/syncd.fish",
    ),
    "demo": ("syncd demo --contacts 20",),
    "forget": ("syncd forget ada-lovelace --to hubspot",),
    "block": ("syncd block ada-lovelace",),
    "unblock": ("syncd unblock ada-lovelace",),
    "cancel": ("syncd cancel sel_0123456789abcdef",),
    "export": ("syncd export ada-lovelace --json",),
    "follow": ("syncd follow ada-lovelace",),
    "unfollow": ("syncd unfollow ada-lovelace",),
    "uninstall": ("syncd uninstall", "syncd uninstall --purge --yes"),
}


#: The commands about one person (REF, or one piped in): name, module, handler, help, flags.
ONE_PERSON: tuple[tuple[str, str, str, str, frozenset[str]], ...] = (
    (
        "forget",
        "sync.cli_rights",
        "cmd_forget",
        "erase a person from every CRM syncd writes to, and never sync them again",
        frozenset({"to", "yes", "undo", "json"}),
    ),
    (
        "block",
        "sync.cli_rights",
        "cmd_block",
        "never sync this person again, without touching the CRMs",
        frozenset(),
    ),
    (
        "unblock",
        "sync.cli_rights",
        "cmd_unblock",
        "lift a block (or a forget's do-not-sync entry)",
        frozenset(),
    ),
    (
        "export",
        "sync.cli_rights",
        "cmd_export",
        "what each CRM holds about a person now (a subject-access copy); printed, never saved",
        frozenset({"to", "json"}),
    ),
    (
        "follow",
        "sync.cli_follow",
        "cmd_follow",
        "keep relaying new messages with this person (follow mode)",
        frozenset({"to", "json"}),
    ),
    (
        "unfollow",
        "sync.cli_follow",
        "cmd_unfollow",
        "stop relaying new messages with this person",
        frozenset({"to", "json"}),
    ),
)


def _socket(args: argparse.Namespace) -> Path:
    from sync.paths import socket_path

    return socket_path(args.config)


def cmd_run(args: argparse.Namespace) -> int:
    """`syncd run`: the daemon in the foreground."""
    import anyio

    from sync import log
    from sync.config import load
    from sync.daemon import run_daemon
    from sync.hardening import no_core_dumps
    from sync.secrets import KeyringTokenStore

    no_core_dumps()  # a native crash must never write tokens or people in flight to disk
    config = load(args.config)
    log.configure(
        config.daemon.log_level,
        config.daemon.log_path(),
        console=sys.stderr.isatty(),
        keep_days=config.daemon.log_keep_days,
    )
    store = KeyringTokenStore()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(run_daemon, config, store)
            print(f"syncd is running; control socket {config.daemon.socket}", file=sys.stderr)
            sys.stderr.flush()

    anyio.run(main)
    return 0


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    from sync.control.client import ControlClient

    answer = ControlClient(_socket(args)).call("POST", "/v1/pause" if paused else "/v1/resume")
    print(f"syncd is {answer['state']}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """`syncd config check`: load the config and report every problem at once."""
    from sync.config import load

    config = load(args.config)
    crms = ", ".join(f"{name} ({s.type})" for name, s in config.crms.items())
    print(f"{config.path}: OK — source {config.source.type}; CRMs: {crms}")
    return 0


def _lazy(module: str, function: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(module), function)(args)
        return result

    return handler


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, or only of ``only`` (one of THIN).

    Building all 29 subparsers costs more than the rest of `syncd status` (argparse looks
    its messages up in gettext's catalogues once per parser); a command line that names a
    thin command parses the same with its parser alone.
    """
    if only is not None and only not in THIN:
        raise ValueError(f"{only!r} is not one of the thin commands")
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Relay the people you choose from your professional network into your CRMs,"
        " on your own computer.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=_VersionAction)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", help="config file (default: $SYNCD_CONFIG, then the user dir)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help, epilog=_EPILOG)
        p.set_defaults(handler=handler)
        return p

    def wanted(name: str) -> bool:
        return only is None or name == only

    if only is None:
        command("run", cmd_run, "run the daemon in the foreground (service managers run this)")

    if wanted("add-contact"):
        add = command(
            "add-contact",
            _lazy("sync.cli_add", "cmd_add_contact"),
            "relay people to your CRMs; waits and prints one line per CRM",
        )
        add.add_argument("refs", nargs="*", metavar="REF", help="profile URL or publicId")
        add.add_argument("--to", metavar="NAME[,NAME]", help="only these CRM instances")
        add.add_argument("--with-messages", action="store_true", help="also relay the conversation")
        add.add_argument("--no-wait", action="store_true", help="return once the daemon accepted")
        add.add_argument("--from-file", metavar="F", help="one REF per line ('-' = stdin)")
        add.add_argument(
            "--json", action="store_true", help="print the control API's outcome objects"
        )

    if wanted("check"):
        check = command(
            "check",
            _lazy("sync.cli_check", "cmd_check"),
            "is this person already in each CRM (id, owner, link)? writes nothing",
        )
        check.add_argument("ref", metavar="REF", help="profile URL or publicId")
        check.add_argument("--to", metavar="NAME[,NAME]", help="only these CRM instances")
        check.add_argument("--json", action="store_true", help="print the control API's answer")

    # -- one person at a time: sync/cli_rights.py and sync/cli_follow.py -----------------
    for name, module, verb, text, flags in ONE_PERSON:
        if not wanted(name):
            continue
        person = command(name, _lazy(module, verb), text)
        person.add_argument(
            "ref",
            nargs="?",
            metavar="REF",
            help="profile URL or publicId (read from stdin if omitted)",
        )
        if "to" in flags:
            person.add_argument("--to", metavar="NAME[,NAME]", help="only these CRM instances")
        if "yes" in flags:
            person.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if "undo" in flags:
            person.add_argument(
                "--undo", action="store_true", help="lift the do-not-sync entry (erases nothing)"
            )
        if "json" in flags:
            person.add_argument(
                "--json", action="store_true", help="print the control API's answer"
            )
    if wanted("cancel"):
        cancel = command(
            "cancel",
            _lazy("sync.cli_rights", "cmd_cancel"),
            "remove a queued selection before it is relayed",
        )
        cancel.add_argument(
            "selection_id", metavar="SELECTION_ID", help="as add-contact --no-wait printed it"
        )
    # -- status: sync/cli_status.py owns the output formats ---------------------------
    if wanted("status"):
        status = command(
            "status",
            _lazy("sync.cli_status", "cmd_status"),
            "the daemon's state, queue and CRM health",
        )
        shown = status.add_mutually_exclusive_group()
        shown.add_argument("--json", action="store_true", help="the control API's status object")
        shown.add_argument(
            "--format",
            choices=("table", "waybar", "oneline"),
            default="table",
            help="table (default), waybar (JSON for its custom module) or oneline (i3blocks, "
            "polybar, tmux); waybar and oneline always exit 0 and say 'stopped' / 'not running' "
            "when the daemon is not running, so a bar never shows an error",
        )
    if wanted("pause"):
        command("pause", lambda a: _set_paused(a, True), "hold new selections in the queue")
    if wanted("resume"):
        command("resume", lambda a: _set_paused(a, False), "relay queued selections again")
    if only is not None:
        _with_examples(parser)
        return parser

    auth = command("auth", lambda a: 2, "store, remove or check credentials in the OS keyring")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    auth_set = auth_sub.add_parser("set", parents=[common], help="store a credential (no echo)")
    auth_set.add_argument("name", help="'source' or a CRM instance name")
    auth_set.add_argument("--stdin", action="store_true", help="read the value from stdin")
    auth_set.set_defaults(handler=_lazy("sync.cli_auth", "cmd_auth_set"))
    auth_rm = auth_sub.add_parser("remove", parents=[common], help="delete a credential")
    auth_rm.add_argument("name")
    auth_rm.set_defaults(handler=_lazy("sync.cli_auth", "cmd_auth_remove"))
    auth_st = auth_sub.add_parser(
        "status", parents=[common], help="which credentials are stored and accepted"
    )
    auth_st.add_argument("--json", action="store_true")
    auth_st.set_defaults(handler=_lazy("sync.cli_auth", "cmd_auth_status"))

    cfg = command("config", lambda a: 2, "check the config file")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = cfg_sub.add_parser("check", parents=[common], help="report every problem at once")
    check.set_defaults(handler=cmd_config_check)

    sandbox = command(
        "sandbox",
        _lazy("rig.runner", "cmd_sandbox"),
        "serve every sandbox on loopback until Ctrl-C, for trying syncd by hand",
    )
    sandbox.add_argument("--config-out", metavar="PATH", help="write a config pointing at them")

    # -- init: sync/cli_init.py owns this block's flags --------------------------------
    init = command(
        "init",
        _lazy("sync.cli_init", "cmd_init"),
        "first-run guide: CRMs, credentials (checked at once), a commented config",
    )
    init.formatter_class = argparse.RawDescriptionHelpFormatter
    init.epilog = """\
credentials never come from the command line: type them at the hidden prompt, or pipe
NAME=VALUE lines (NAME is "source" or a CRM instance name) with --credentials-from-stdin.
Re-running init edits the config: it changes only the [source] and [crm.NAME] tables it is
given and keeps every other table, key and comment.

exit codes: 0 done · 1 a service could not be reached, so its credential was stored unchecked ·
2 missing or bad information (nothing written) or a config problem · 4 a credential was
rejected: it was not stored (the config was still written); fix it with `syncd auth set NAME`

example:
  printf 'source=%s\\nhubspot=%s\\n' "$SOURCE_TOKEN" "$HUBSPOT_TOKEN" |
    syncd init --non-interactive --crm hubspot=hubspot --credentials-from-stdin"""
    init.add_argument(
        "--non-interactive", action="store_true", help="no questions: take everything from flags"
    )
    init.add_argument(
        "--crm",
        action="append",
        metavar="NAME=TYPE",
        help="add or change a CRM instance of TYPE hubspot, pipedrive or salesforce (a bare "
        "TYPE names the instance after it); repeatable",
    )
    init.add_argument(
        "--base-url",
        action="append",
        metavar="NAME=URL",
        help="an instance's URL ('source' included; pipedrive takes the company name or URL, "
        "hubspot 'global' or 'eu1', salesforce 'production', 'sandbox' or a My Domain); repeatable",
    )
    init.add_argument(
        "--option",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="a connector option, e.g. salesforce.object=Lead; repeatable",
    )
    init.add_argument(
        "--credentials-from-stdin",
        action="store_true",
        help="read NAME=VALUE lines from stdin (credentials never go on the command line)",
    )
    init.add_argument(
        "--no-check",
        action="store_true",
        help="store credentials without asking each service whether it accepts them",
    )

    # -- service: sync/cli_service.py and sync/service.py ------------------------------
    service = command(
        "service", lambda a: 2, "install, remove or check syncd as a background service"
    )
    service_sub = service.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    service_install = service_sub.add_parser(
        "install", parents=[common], help="write the systemd user unit (launchd agent on macOS)"
    )
    service_install.add_argument(
        "--dry-run", action="store_true", help="print the unit and write nothing"
    )
    service_install.set_defaults(handler=_lazy("sync.cli_service", "cmd_install"))
    service_uninstall = service_sub.add_parser(
        "uninstall", parents=[common], help="stop the service and remove its unit"
    )
    service_uninstall.set_defaults(handler=_lazy("sync.cli_service", "cmd_uninstall"))
    service_status = service_sub.add_parser(
        "status", parents=[common], help="whether the unit is installed, enabled and running"
    )
    service_status.set_defaults(handler=_lazy("sync.cli_service", "cmd_status"))

    uninstall = command(
        "uninstall",
        _lazy("sync.cli_uninstall", "cmd_uninstall"),
        "remove the service; --purge also every credential, the journal, the do-not-sync list, "
        "logs and config",
    )
    uninstall.add_argument(
        "--purge", action="store_true", help="also delete everything syncd keeps on this machine"
    )
    uninstall.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    # -- tray: sync/tray/ (the extra syncd[tray]) --------------------------------------
    command("tray", _lazy("sync.tray", "cmd_tray"), "a tray icon that shows syncd's state")

    # -- completion: sync/completion.py ------------------------------------------------
    completion = command(
        "completion", _lazy("sync.completion", "cmd_completion"), "print a shell completion script"
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))

    demo = command(
        "demo",
        _lazy("rig.demo", "cmd_demo"),
        "relay sample people through sandboxes and a real daemon, then scan for residue",
    )
    demo.add_argument("--contacts", type=int, default=5, metavar="N", help="how many (default 5)")
    _with_examples(parser)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every parser under ``parser`` by its command path ("status", "auth set"), depth first."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found[name] = child
                found |= {f"{name} {k}": v for k, v in subcommands(child).items()}
    return found


def _with_examples(parser: argparse.ArgumentParser) -> None:
    """End every --help with its command's examples, after the exit codes."""
    for path, p in {"": parser, **subcommands(parser)}.items():
        if "example" in (p.epilog or "").lower() or path not in _EXAMPLES:
            continue
        lines = "\n".join(f"  {line}" for line in _EXAMPLES[path])
        p.epilog = f"{p.epilog or _EPILOG}\n\nexamples:\n{lines}"
        p.formatter_class = argparse.RawDescriptionHelpFormatter


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (importlib.metadata
    costs more than the rest of `syncd status` put together)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        help: str = "show program's version number and exit",  # argparse's own words
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser._print_message(f"syncd {_version()}\n", sys.stdout)
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("syncd")
    except PackageNotFoundError:
        return "0.0.0+checkout"


def _unwrapped(handler: Handler, args: argparse.Namespace) -> int:
    """Call ``handler``; a task group's wrapping of one of our own errors is taken off."""
    try:
        return handler(args)
    except BaseExceptionGroup as group:
        ours = _first_syncd_error(group)
        if ours is None:
            raise
        raise ours from group


def _first_syncd_error(group: BaseExceptionGroup[BaseException]) -> SyncdError | None:
    for error in group.exceptions:
        if isinstance(error, SyncdError):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = _first_syncd_error(error)
            if found is not None:
                return found
    return None


def thin_command(argv: Sequence[str]) -> str | None:
    """The thin command ``argv`` names, if it names one where argparse would look for it
    (after --debug, before anything else); None when the whole parser is needed (--help,
    --version, an unknown word, an abbreviated option)."""
    for word in argv:
        if word in _ROOT_FLAGS:
            continue
        return word if word in THIN else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors become one sentence on stderr and an exit code."""
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(thin_command(argv)).parse_args(argv)
    try:
        code: int = _unwrapped(args.handler, args)
    except SyncdError as error:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"syncd: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        inner = error
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]  # type: ignore[assignment]
        print(
            f"syncd: an unexpected {type(inner).__name__} stopped this command (a bug in "
            "syncd); run it again with --debug and report what it prints",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
