"""What `syncd init` writes: vendor URL defaults, and each table with a comment per key.

The comments follow config.example.toml, so a newcomer who opens the written file can tell
what every key does. Standard library only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from connectors import registry
from connectors.base import FIELDS
from sync.config_edit import TableName, TomlDocument, literal

Entries = list[tuple[str, object, Sequence[str]]]
CRM_TYPES = ("hubspot", "pipedrive", "salesforce")
#: HubSpot's API host for every account, and the one of its EU data centre.
HUBSPOT_URLS = {"global": "https://api.hubapi.com", "eu1": "https://api-eu1.hubapi.com"}
SALESFORCE_LOGIN = {
    "production": "https://login.salesforce.com",
    "sandbox": "https://test.salesforce.com",
}
#: The key that holds each type's URL: Salesforce is reached through its login host.
URL_KEY = {"salesforce": "login_url"}


@dataclass
class Instance:
    """The source or one CRM instance as init will write it (never its credential)."""

    name: str  # "source" or the CRM instance name
    type: str
    values: dict[str, object] = field(default_factory=dict)  # the keys init sets

    @property
    def kind(self) -> Literal["source", "crm"]:
        """Whether this is the source or a CRM."""
        return "source" if self.name == "source" else "crm"

    @property
    def table(self) -> TableName:
        """Where it lives in the config."""
        return ("source",) if self.kind == "source" else ("crm", self.name)

    @property
    def url_key(self) -> str:
        """The key of the URL that says where this instance's service is."""
        return URL_KEY.get(self.type, "base_url")


def pipedrive_url(answer: str) -> str:
    """A Pipedrive company URL from a company name ("acme"), host or URL."""
    answer = answer.strip().rstrip("/")
    if "://" in answer:
        return answer
    if "." not in answer:
        return f"https://{answer}.pipedrive.com"
    return f"https://{answer}"


def hubspot_url(answer: str) -> str:
    """HubSpot's API URL from a data centre ("global", "eu1") or a URL."""
    return HUBSPOT_URLS.get(answer.strip().lower(), answer.strip())


def salesforce_url(answer: str) -> str:
    """Salesforce's login URL from "production", "sandbox", a My Domain host or a URL."""
    answer = answer.strip().rstrip("/")
    known = SALESFORCE_LOGIN.get(answer.lower())
    if known:
        return known
    return answer if "://" in answer else f"https://{answer}"


def vendor(url: str) -> str:
    """The host of ``url``, for sentences ("api.hubapi.com refused …")."""
    try:
        return urlsplit(url).hostname or "the service"
    except ValueError:
        return "the service"


_URL_RULE = "https:// only (http:// is accepted for 127.0.0.1, ::1 and localhost)."
_COMMENTS: Mapping[tuple[str, str], Sequence[str]] = {
    ("source", "type"): ['# Where people come from. Known types: "linkedin".'],
    ("source", "base_url"): [f"# The source's API root. {_URL_RULE}"],
    ("crm", "type"): ['# Which connector serves this CRM: "hubspot", "pipedrive" or "salesforce".'],
    ("hubspot", "base_url"): [
        "# HubSpot's API root: https://api.hubapi.com serves every account;",
        "# an account in HubSpot's EU data centre may use https://api-eu1.hubapi.com.",
    ],
    ("pipedrive", "base_url"): [
        "# Your company's Pipedrive URL, https://COMPANY.pipedrive.com.",
        f"# {_URL_RULE}",
    ],
    ("salesforce", "login_url"): [
        "# Where the OAuth refresh happens: https://login.salesforce.com, https://test.salesforce.com",
        "# for a sandbox org, or your My Domain URL. The API itself is reached at the",
        "# instance_url Salesforce answers.",
    ],
}
_OVERWRITE = [
    '# May syncd replace a value someone edited in the CRM? Default: "empty-only" (only',
    '# fill empty fields); "always" (syncd\'s value wins); or an array of the fields syncd',
    '# owns, e.g. ["title", "company"]. Uncomment to change:',
    '# overwrite = "empty-only"',
]
_CRM_LEAD = [
    "# A CRM instance. The table's name is the instance name used by `add-contact --to NAME`",
    "# and by `syncd auth set NAME` (its credential lives in the OS keyring, never here).",
]


def comment_for(instance: Instance, key: str) -> Sequence[str]:
    """The comment lines written above ``key`` in a new table of ``instance``."""
    if key == "type":
        return _COMMENTS.get((instance.kind, "type"), ())
    found = _COMMENTS.get((instance.type, key)) or _COMMENTS.get((instance.kind, key))
    if found:
        return found
    option = registry.info(instance.type).options.get(key)
    if option is not None and option.help:
        return _wrapped(f"{option.help[:1].upper()}{option.help[1:]}.")
    return [f"# See config.example.toml for {key}."]


def _wrapped(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width=86)]


def _optional(instance: Instance) -> list[str]:
    """Commented-out lines for the connector's options init did not set."""
    lines: list[str] = []
    for key, option in registry.info(instance.type).options.items():
        if key in instance.values:
            continue
        lines += _wrapped(f"{option.help[:1].upper()}{option.help[1:]}. Uncomment to change:")
        lines.append(f"# {key} = {literal(option.default)}")
    return lines


def add_instance(document: TomlDocument, instance: Instance) -> None:
    """Add a new, commented table for ``instance``."""
    entries: Entries = [("type", instance.type, comment_for(instance, "type"))]
    entries += [(k, v, comment_for(instance, k)) for k, v in instance.values.items()]
    if instance.kind == "source":
        document.add_table(instance.table, entries, after=("daemon",))
    else:
        after = ("crm", "source", "daemon")
        tail = [*_optional(instance), *_OVERWRITE]
        document.add_table(instance.table, entries, lead=_CRM_LEAD, tail=tail, after=after)


PREAMBLE = [
    "# syncd configuration, written by `syncd init` (run it again to add or change a CRM;",
    "# it edits this file and keeps your other tables, keys and comments).",
    "# Check it with `syncd config check`. Every key is described in config.example.toml.",
    "#",
    "# Credentials never go in this file: they live in the OS keyring. Store or replace one",
    '# with `syncd auth set NAME`, where NAME is "source" or a CRM table\'s name below.',
]


def new_document(source: Instance, crms: Sequence[Instance]) -> TomlDocument:
    """A whole new config: every table, each key with its comment."""
    document = TomlDocument()
    document.set_preamble(PREAMBLE)
    document.add_table(("daemon",), _DAEMON)
    add_instance(document, source)
    for crm in crms:
        add_instance(document, crm)
    document.add_table(("match",), _MATCH)
    document.add_table(("privacy",), _PRIVACY)
    return document


_DAEMON: Entries = [
    (
        "socket",
        "",
        [
            '# The control socket. Default (""): $XDG_RUNTIME_DIR/syncd/syncd.sock, created 0600',
            "# in a 0700 directory. A relative path is relative to this file.",
        ],
    ),
    (
        "log_level",
        "info",
        [
            '# How much to log: "debug", "info", "warning" or "error". Logs never hold anyone\'s',
            "# data or a credential, at any level.",
        ],
    ),
    (
        "log_file",
        "",
        ['# Where to log (JSON lines). Default (""): <user log dir>/syncd.log; "-": stderr.'],
    ),
    (
        "log_keep_days",
        30,
        ["# The log rotates by size; rotated files older than this many days are deleted."],
    ),
    (
        "journal_dir",
        "",
        [
            "# Where accepted selections wait until every CRM has answered, encrypted with a key",
            '# kept in the OS keyring. Default (""): <user state dir>/journal.',
        ],
    ),
]
_MATCH: Entries = [
    (
        "strict",
        False,
        [
            "# true: recognise a person in a CRM only by member id, profile URL or email, never",
            "# by name within the same company.",
        ],
    ),
]
_PRIVACY: Entries = [
    (
        "blocked_email_domains",
        [],
        [
            "# People whose email is in one of these domains (or a subdomain) are refused before",
            '# anything is sent, e.g. ["gmail.com"] to keep personal mail out of your CRMs.',
        ],
    ),
    (
        "blocked_companies",
        [],
        ["# People whose current company is one of these are refused (any case)."],
    ),
    (
        "fields",
        list(FIELDS),
        ["# The only fields that may leave this computer. Default: all of them."],
    ),
]
