"""The questions of `syncd init` on a terminal, through a :class:`Prompter` that tests replace.

Each credential is read hidden and checked with the service at once; a rejected one is
said in a sentence, never stored, and can be typed again. Standard library only at import.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from connectors import registry
from sync.cli_init import Outcome, Plan, check_credential
from sync.config_check import url_problem
from sync.errors import SyncdError, UsageError
from sync.init_tables import (
    CRM_TYPES,
    HUBSPOT_URLS,
    Instance,
    hubspot_url,
    pipedrive_url,
    salesforce_url,
    vendor,
)

if TYPE_CHECKING:
    from sync.secrets import TokenStore


class Prompter(Protocol):
    """How the guide talks to the user."""

    def ask(self, question: str, default: str = "") -> str:
        """One answer (``default`` when the user just presses Enter)."""
        ...

    def secret(self, question: str) -> str:
        """One answer typed without echo."""
        ...

    def say(self, text: str) -> None:
        """Tell the user something."""
        ...


class TerminalPrompter:
    """Questions on the terminal: ``input`` for answers, ``getpass`` for credentials."""

    def ask(self, question: str, default: str = "") -> str:
        """One answer (``default`` when the user just presses Enter)."""
        shown = f"{question} [{default}]: " if default else f"{question}: "
        try:
            return input(shown).strip() or default
        except EOFError:
            raise UsageError("init was cut short before the end; nothing was written") from None

    def secret(self, question: str) -> str:
        """One answer typed without echo."""
        try:
            return getpass.getpass(f"{question}: ").strip()
        except EOFError:
            raise UsageError("init was cut short before the end; nothing was written") from None

    def say(self, text: str) -> None:
        """Tell the user something."""
        print(text, flush=True)


Check = Callable[[Instance, str], Outcome]


def interview(
    plan: Plan,
    prompter: Prompter,
    store: TokenStore,
    *,
    check: bool = True,
    checker: Check | None = None,
) -> dict[str, tuple[str, Outcome]]:
    """Ask for the source and the CRMs, filling ``plan``; the credentials typed, each with
    what its service said (only accepted or deliberately unchecked ones are kept)."""
    ask = _Guide(plan, prompter, store, check, checker)
    return ask.run()


class _Guide:
    def __init__(
        self, plan: Plan, p: Prompter, store: TokenStore, check: bool, checker: Check | None
    ) -> None:
        self.plan, self.p, self.store, self.check = plan, p, store, check
        self.checker: Check = checker or (lambda i, v: check_credential(plan.settings(i), v))
        self.results: dict[str, tuple[str, Outcome]] = {}

    def run(self) -> dict[str, tuple[str, Outcome]]:
        p, plan = self.p, self.plan
        where = "edit" if plan.before is not None else "write"
        p.say(f"syncd init will {where} {plan.path}. Press Enter to take the [default].")
        p.say("Credentials are typed hidden, checked with the service, and kept in the OS keyring.")
        source_table = plan.existing_table(("source",))
        source = Instance("source", str(source_table.get("type", "linkedin")))
        default = str(source_table.get("base_url") or registry.info(source.type).default_base_url)
        source.values["base_url"] = self._url("The source's API URL", default, str.strip, source)
        plan.instances["source"] = source
        self._credential(source)
        existing = plan.existing_crms()
        if existing:
            listed = ", ".join(f"{n} ({t})" for n, t in existing.items())
            p.say(f"Already configured: {listed}. They stay; name one again to change it.")
        while True:
            kind = p.ask(f"Add a CRM: {', '.join(CRM_TYPES)} (Enter when done)").lower()
            if not kind:
                if existing or any(i.kind == "crm" for i in plan.instances.values()):
                    return self.results
                p.say("syncd needs at least one CRM to relay people to.")
                continue
            if kind not in CRM_TYPES:
                p.say(f"{kind!r} is not a CRM syncd knows; choose {', '.join(CRM_TYPES)}.")
                continue
            self._crm(kind, existing)

    def _crm(self, kind: str, existing: dict[str, str]) -> None:
        from sync.config import INSTANCE_NAME

        taken = set(existing) | set(self.plan.instances)
        default = (
            kind
            if kind not in taken
            else next(f"{kind}-{n}" for n in range(2, 99) if f"{kind}-{n}" not in taken)
        )
        while True:
            name = self.p.ask("Its instance name (used by --to and `syncd auth set`)", default)
            if INSTANCE_NAME.fullmatch(name) and name != "source":
                break
            self.p.say("Use lowercase letters, digits, - and _ (at most 32), and not 'source'.")
        if name in existing and existing[name] != kind:
            self.p.say(f"{name} is a {existing[name]} instance; its type becomes {kind}.")
        instance = Instance(name, kind)
        old = self.plan.existing_table(instance.table) if name in existing else {}
        if kind == "hubspot":
            current = str(old.get("base_url") or "")
            default = (
                next((k for k, v in HUBSPOT_URLS.items() if v == current), current) or "global"
            )
            question = (
                "HubSpot data centre: global (api.hubapi.com, every account), "
                "eu1 (api-eu1.hubapi.com), or a URL"
            )
            url = self._url(question, default, hubspot_url, instance)
        elif kind == "pipedrive":
            question = "Your Pipedrive company domain (COMPANY in https://COMPANY.pipedrive.com)"
            url = self._url(question, str(old.get("base_url") or ""), pipedrive_url, instance)
        else:
            current = str(old.get("login_url") or "production")
            question = (
                "Salesforce login: production (login.salesforce.com), "
                "sandbox (test.salesforce.com), or your My Domain URL"
            )
            url = self._url(question, current, salesforce_url, instance)
        instance.values[instance.url_key] = url
        self.plan.instances[name] = instance
        self._credential(instance)

    def _url(
        self, question: str, default: str, expand: Callable[[str], str], instance: Instance
    ) -> str:
        while True:
            answer = self.p.ask(question, default)
            if not answer:
                self.p.say("An answer is needed here.")
                continue
            url = expand(answer)
            problem = url_problem(url, instance.name)
            if problem is None:
                return url
            self.p.say(f"That URL {problem}; try again.")

    def _credential(self, instance: Instance) -> None:
        name, p = instance.name, self.p
        if self.store.get(name) is not None:
            again = p.ask(
                f"The keyring already holds a credential for {name}; replace it? (y/N)", "n"
            )
            if not again.lower().startswith("y"):
                return
        what = registry.info(instance.type).credential
        while True:
            value = p.secret(f"Credential for {name}, {what} (hidden; Enter to skip)")
            if not value:
                p.say(f"Skipped: store it later with `syncd auth set {name}`.")
                self.results[name] = ("", Outcome("skipped"))
                return
            if not self.check:
                self.results[name] = (value, Outcome("unchecked"))
                return
            try:
                outcome = self.checker(instance, value)
            except SyncdError as error:
                outcome = Outcome("unchecked", str(error))
            host = vendor(str(instance.values.get(instance.url_key, "")))
            if outcome.verdict == "accepted":
                p.say(f"{name}: {host} accepted the credential.")
                self.results[name] = (value, outcome)
                return
            if outcome.verdict == "rejected":
                p.say(
                    f"{name}: {host} rejected this credential ({outcome.detail}); it was not "
                    "stored. Type it again, or press Enter to skip."
                )
                continue
            p.say(f"{name}: {host} could not be asked ({outcome.detail}).")
            if p.ask("Store the credential unchecked? (y/N)", "n").lower().startswith("y"):
                self.results[name] = (value, outcome)
                return
            p.say("Not stored. Type it again, or press Enter to skip.")
