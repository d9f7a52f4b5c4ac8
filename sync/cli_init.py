"""`syncd init`: the first-run guide — CRMs, URLs, credentials checked at once, a config.

Credentials come from a hidden prompt or from stdin, never from argv; each is checked with
the connector's own who-am-I call (as `syncd auth status` does) and stored in the OS keyring
only if the service accepts it (or with ``--no-check``). The config is written 0600; an
existing one is edited in place (see :mod:`sync.config_edit`). Standard library only at
import time: httpx, anyio and keyring load inside the functions that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from connectors import registry
from sync.config_edit import EditError, TableName, TomlDocument, check_edit
from sync.errors import AuthError, SyncdError, UsageError
from sync.init_tables import CRM_TYPES, Instance, add_instance, new_document

if TYPE_CHECKING:
    from connectors.base import ConnectorSettings
    from sync.secrets import TokenStore

Verdict = Literal["accepted", "rejected", "unchecked", "skipped", "kept"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one instance's credential."""

    verdict: Verdict
    detail: str = ""


#: Checks one credential against its service: "accepted", "rejected" or "unchecked".
Checker = Callable[[Instance, str], Outcome]


# -- settings and checks -------------------------------------------------------------------


def settings_of(instance: Instance, table: Mapping[str, object]) -> ConnectorSettings:
    """The validated settings of ``instance`` whose full table is ``table``; UsageError
    listing every problem (keys and messages, never a value)."""
    from sync.config_check import Checker as TableChecker
    from sync.config_check import connector_settings

    prefix = ".".join(instance.table)
    check = TableChecker("init")
    settings = connector_settings(check, table, instance.name, prefix, instance.kind)
    if check.problems or settings is None:
        found = "; ".join(f"{p.key}: {p.message}" for p in check.problems)
        raise UsageError(f"{found}; give a valid value and run `syncd init` again")
    return settings


def check_credential(settings: ConnectorSettings, credential: str) -> Outcome:
    """Ask the service whether it accepts ``credential``: the connector's ``check_auth``,
    as in `syncd auth status`, through a store that holds only this value in memory."""
    import anyio

    from sync.config import Config, DaemonConfig
    from sync.instances import Instances
    from sync.retry import RetryPolicy
    from sync.secrets import MemoryTokenStore

    name = settings.instance
    source = settings if name == "source" else _unused_source()
    crms = {} if name == "source" else {name: settings}
    config = Config(Path("init"), DaemonConfig(Path("init.sock")), source, crms)
    # A first run should answer within seconds, not wait out a long outage.
    retry = RetryPolicy(attempts=3, max_delay=4.0, deadline=20.0)

    async def run() -> Outcome:
        instances = Instances(config, MemoryTokenStore({name: credential}), retry=retry)
        try:
            client = await (instances.source() if name == "source" else instances.crm(name))
            await client.check_auth()
        except AuthError as error:
            return Outcome("rejected", str(error))
        except SyncdError as error:
            return Outcome("unchecked", str(error))
        finally:
            await instances.aclose()
        return Outcome("accepted")

    return anyio.run(run)


def _unused_source() -> ConnectorSettings:
    from connectors.base import ConnectorSettings

    return ConnectorSettings("source", "linkedin", "https://unused.invalid")


# -- the plan: what init writes ------------------------------------------------------------


class Plan:
    """The config file, what it held, and the instances init writes into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.before = path.read_text(encoding="utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError):
            raise UsageError(
                f"{path} cannot be read as text; move it away or pass another --config"
            ) from None
        try:
            self.data: dict[str, object] = tomllib.loads(self.before or "")
        except tomllib.TOMLDecodeError:
            raise UsageError(
                f"{path} is not valid TOML, so init cannot edit it safely; fix it (`syncd config "
                "check` says where) or move it away and run `syncd init` again"
            ) from None
        self.instances: dict[str, Instance] = {}

    def existing_table(self, table: TableName) -> dict[str, object]:
        """The table as the file holds it now ({} if absent)."""
        node: object = self.data
        for part in table:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return dict(node) if isinstance(node, dict) else {}

    def existing_crms(self) -> dict[str, str]:
        """{name: type} of the CRM tables already in the file."""
        crm = self.data.get("crm")
        if not isinstance(crm, dict):
            return {}
        return {n: str(t.get("type", "?")) for n, t in crm.items() if isinstance(t, dict)}

    def full_table(self, instance: Instance) -> dict[str, object]:
        """The table of ``instance`` as it will be: the file's keys, then init's."""
        return {**self.existing_table(instance.table), "type": instance.type, **instance.values}

    def settings(self, instance: Instance) -> ConnectorSettings:
        """The validated settings ``instance`` will have."""
        return settings_of(instance, self.full_table(instance))

    def render(self) -> tuple[str, list[str]]:
        """The new file's text and one line per change."""
        source = self.instances.get("source") or Instance("source", "linkedin")
        crms = [i for i in self.instances.values() if i.kind == "crm"]
        if self.before is None:
            document = new_document(source, crms)
            return document.text(), []
        document = TomlDocument(self.before)
        changes: list[str] = []
        for instance in self.instances.values():
            label = f"[{'.'.join(instance.table)}]"
            if not document.has_table(instance.table):
                add_instance(document, instance)
                changes.append(f"added {label}")
                continue
            for key, value in {"type": instance.type, **instance.values}.items():
                done = document.set(instance.table, key, value)
                if done:
                    changes.append(f"{label} {key} {done}")
        text = document.text()
        try:
            check_edit(self.before, text, [i.table for i in self.instances.values()])
        except EditError as error:
            raise UsageError(
                f"{self.path}: {error}; edit it by hand or move it away and run `syncd init` again"
            ) from None
        return text, changes


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (its directory 0700 if new)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- finishing: store, write, report, check ------------------------------------------------


def finish(
    plan: Plan,
    credentials: Mapping[str, tuple[str, Outcome]],
    store: TokenStore,
    out: TextIO,
    err: TextIO,
) -> int:
    """Store the accepted (or unchecked) credentials, write the config, say what changed,
    and run `syncd config check` on it. The exit code of init."""
    for name, (value, outcome) in credentials.items():
        if outcome.verdict in ("accepted", "unchecked"):
            store.set(name, value)
    text, changes = plan.render()
    unchanged = plan.before == text
    if not unchanged:
        write_private(plan.path, text)
    elif plan.path.stat().st_mode & 0o077:
        plan.path.chmod(0o600)
    if plan.before is None:
        out.write(f"wrote {plan.path} (mode 0600)\n")
    elif unchanged:
        out.write(f"{plan.path}: no change\n")
    else:
        kept = [t for t in TomlDocument(plan.before).tables() if t[0] not in ("source", "crm")]
        kept_text = ", ".join(f"[{'.'.join(t)}]" for t in kept) or "nothing else"
        out.write(f"updated {plan.path}: {'; '.join(changes)} (kept {kept_text} as it was)\n")
    code = 0
    for name, (_value, outcome) in credentials.items():
        code = max(code, _report(name, outcome, store, out, err))
    from sync.cli import cmd_config_check

    out.flush()
    cmd_config_check(argparse.Namespace(config=str(plan.path)))
    return code


def _report(name: str, outcome: Outcome, store: TokenStore, out: TextIO, err: TextIO) -> int:
    where = store.backend_name()
    if outcome.verdict == "accepted":
        out.write(
            f"{name}: credential accepted by the service and stored in the keyring ({where})\n"
        )
    elif outcome.verdict == "unchecked" and not outcome.detail:
        out.write(f"{name}: credential stored in the keyring ({where}), not checked (--no-check)\n")
    elif outcome.verdict == "unchecked":
        err.write(
            f"syncd: {name}: the service could not be asked ({outcome.detail}), so the credential"
            f" was stored unchecked; run `syncd auth status` once it is reachable\n"
        )
        return 1
    elif outcome.verdict == "rejected":
        err.write(
            f"syncd: {name}: the service rejected this credential ({outcome.detail}), so it was "
            f"not stored; get a valid one and run `syncd auth set {name}`\n"
        )
        return 4
    elif outcome.verdict == "skipped":
        out.write(f"{name}: no credential stored yet; store one with `syncd auth set {name}`\n")
    return 0


# -- the non-interactive path --------------------------------------------------------------


def _pairs(values: Sequence[str] | None, flag: str, sep: str = "=") -> list[tuple[str, str]]:
    pairs = []
    for raw in values or ():
        left, found, right = raw.partition(sep)
        if not found or not left.strip() or not right.strip():
            raise UsageError(f"{flag} takes NAME{sep}VALUE; give it as e.g. {flag} hubspot=hubspot")
        pairs.append((left.strip(), right.strip()))
    return pairs


def read_credentials(stream: TextIO) -> dict[str, str]:
    """NAME=VALUE lines (blank lines and # comments skipped); a bad line names its number."""
    found: dict[str, str] = {}
    for number, line in enumerate(stream.read().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(
                f"line {number} of stdin is not NAME=VALUE; give one credential per line, e.g. "
                "hubspot=<token>"
            )
        found[name.strip()] = value.strip()
    return found


def _option_value(instance: Instance, key: str, raw: str) -> object:
    info = registry.info(instance.type)
    option = info.options.get(key)
    if option is None and key not in ("overwrite", "base_url"):
        known = (
            ", ".join(["base_url", "overwrite", *info.options])
            if instance.kind == "crm"
            else "base_url"
        )
        raise UsageError(f"{instance.type} has no option {key!r}; known: {known}")
    if option is not None and option.type is bool:
        if raw.lower() not in ("true", "false"):
            raise UsageError(f"--option {instance.name}.{key} takes true or false")
        return raw.lower() == "true"
    if option is not None and option.type is int:
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"--option {instance.name}.{key} takes a whole number") from None
    return raw


def plan_from_flags(args: argparse.Namespace, plan: Plan) -> None:
    """Fill ``plan`` from --crm, --base-url and --option; UsageError naming what is missing."""
    from sync.config import INSTANCE_NAME

    existing = plan.existing_crms()
    source_type = str(plan.existing_table(("source",)).get("type", "linkedin"))
    plan.instances["source"] = Instance("source", source_type)
    crm_flags = [c if "=" in c else f"{c}={c}" for c in args.crm or ()]  # --crm TYPE
    for name, kind in _pairs(crm_flags, "--crm"):
        if kind not in CRM_TYPES:
            raise UsageError(f"--crm {name}: the type must be one of {', '.join(CRM_TYPES)}")
        if not INSTANCE_NAME.fullmatch(name) or name == "source":
            raise UsageError(
                f"--crm: {name!r} is not an instance name; use lowercase letters, digits, - and _ "
                "(at most 32), not 'source'"
            )
        plan.instances[name] = Instance(name, kind)
    for name, url in _pairs(args.base_url, "--base-url"):
        target = plan.instances.get(name) or _existing_instance(plan, name, existing)
        target.values[target.url_key] = _expand_url(target.type, url)
    for dotted, raw in _pairs(args.option, "--option"):
        name, _, key = dotted.partition(".")
        target = plan.instances.get(name) or _existing_instance(plan, name, existing)
        if not key:
            raise UsageError("--option takes NAME.KEY=VALUE, e.g. salesforce.object=Lead")
        target.values[key] = _option_value(target, key, raw)
    missing = []
    if not existing and not any(i.kind == "crm" for i in plan.instances.values()):
        missing.append("a CRM (--crm NAME=TYPE)")
    for instance in plan.instances.values():
        if instance.kind == "source" and "base_url" not in plan.existing_table(("source",)):
            instance.values.setdefault("base_url", registry.info(instance.type).default_base_url)
        if instance.type == "pipedrive" and "base_url" not in plan.full_table(instance):
            missing.append(f"the company URL of {instance.name} (--base-url {instance.name}=URL)")
    if missing:
        raise UsageError(f"missing {', '.join(missing)}; add it and run `syncd init` again")


def _existing_instance(plan: Plan, name: str, existing: Mapping[str, str]) -> Instance:
    if name in existing and existing[name] in CRM_TYPES:
        plan.instances[name] = Instance(name, existing[name])
        return plan.instances[name]
    raise UsageError(f"no instance named {name!r}; add it with --crm {name}=TYPE first")


def _expand_url(kind: str, url: str) -> str:
    from sync.init_tables import hubspot_url, pipedrive_url, salesforce_url

    expand = {"pipedrive": pipedrive_url, "hubspot": hubspot_url, "salesforce": salesforce_url}
    return expand.get(kind, str.strip)(url)


def non_interactive(args: argparse.Namespace, plan: Plan, store: TokenStore) -> int:
    """`syncd init --non-interactive`: everything from flags and stdin."""
    plan_from_flags(args, plan)
    given = read_credentials(sys.stdin) if args.credentials_from_stdin else {}
    known = set(plan.instances) | set(plan.existing_crms()) | {"source"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UsageError(
            f"stdin has a credential for {', '.join(unknown)}, which is not configured; "
            "add it with --crm NAME=TYPE or drop that line"
        )
    for name in given:
        if name not in plan.instances:
            _existing_instance(plan, name, plan.existing_crms())
    settings = {name: plan.settings(i) for name, i in plan.instances.items()}
    missing = [n for n in plan.instances if n not in given and store.get(n) is None]
    if missing:
        raise UsageError(
            f"missing the credential of {', '.join(missing)}: pipe NAME=VALUE lines with "
            "--credentials-from-stdin (never on the command line)"
        )
    results: dict[str, tuple[str, Outcome]] = {}
    for name, value in given.items():
        outcome = Outcome("unchecked") if args.no_check else check_credential(settings[name], value)
        results[name] = (value, outcome)
    return finish(plan, results, store, sys.stdout, sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """`syncd init`: ask (or take from flags) the CRMs, URLs and credentials; write the config."""
    from sync.config import resolve_path
    from sync.secrets import KeyringTokenStore

    scripted = any((args.crm, args.base_url, args.option, args.credentials_from_stdin))
    if scripted and not args.non_interactive:
        raise UsageError(
            "--crm, --base-url, --option and --credentials-from-stdin go with --non-interactive; "
            "add it, or drop them to be asked"
        )
    if not args.non_interactive and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "no terminal to ask questions on; run `syncd init --non-interactive` with flags "
            "(see `syncd init --help`)"
        )
    plan = Plan(resolve_path(args.config))
    store = KeyringTokenStore()
    if args.non_interactive:
        return non_interactive(args, plan, store)
    from sync.init_guide import TerminalPrompter, interview

    results = interview(plan, TerminalPrompter(), store, check=not args.no_check)
    return finish(plan, results, store, sys.stdout, sys.stderr)
