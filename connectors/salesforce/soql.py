"""The SOQL the client sends: string literals escaped, candidate queries that OR every way a
person can be recognised, and account look-ups by name.

Escaping follows https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm:
a backslash escapes ``'``, ``"``, ``\\`` and the control characters; in a LIKE pattern
``\\%`` and ``\\_`` are the literal characters. String ``=`` is case-insensitive in SOQL,
so the query finds ``ADA@x.example`` for ``ada@x.example``; :func:`connectors.base.match`
then judges the candidates exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import quote as url_quote

from connectors.base import Contact, name_key, profile_key
from connectors.salesforce.mapping import (
    ACCOUNT_NAME,
    FIELD_OF,
    FOLLOW_FIELD,
    MESSAGE_ID_FIELD,
    SObject,
    select_fields,
)

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}

#: Keep a query's URL well under the ~16 kB Salesforce accepts for a GET.
MAX_QUERY_CHARS = 8_000


def literal(value: str) -> str:
    """``value`` as a quoted SOQL string literal."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"


def like_literal(value: str) -> str:
    """``value`` as a LIKE pattern matching it anywhere (``%`` and ``_`` taken literally)."""
    escaped = "".join(_ESCAPES.get(ch, ch) for ch in value)
    escaped = escaped.replace("%", "\\%").replace("_", "\\_")
    return f"'%{escaped}%'"


def conditions(
    obj: SObject, contact: Contact, external_id_field: str, *, strict: bool
) -> list[str]:
    """Every way ``contact`` can be recognised: member id, profile URL, email, and unless
    ``strict`` first and last name within the company."""
    fields = contact.fields
    # No member id: a forget of a profile the source no longer shows, found by its URL.
    out = [f"{external_id_field} = {literal(contact.member_id)}"] if contact.member_id else []
    key = profile_key(fields.get("linkedin_url"))
    if key:
        # The stored URL may differ in host, case or trailing slash; match() judges.
        out.append(f"{FIELD_OF[obj]['linkedin_url']} LIKE {like_literal('/' + key)}")
    if fields.get("email"):
        out.append(f"Email = {literal(fields['email'].strip())}")
    if not strict and name_key(fields):
        company = "Company" if obj == "Lead" else ACCOUNT_NAME
        out.append(
            f"(FirstName = {literal(fields['first_name'].strip())}"
            f" AND LastName = {literal(fields['last_name'].strip())}"
            f" AND {company} = {literal(fields['company'].strip())})"
        )
    return out


def candidate_queries(
    obj: SObject, contacts: Sequence[Contact], external_id_field: str, *, strict: bool
) -> Iterator[str]:
    """As few queries as fit a URL, that together fetch every candidate of ``contacts``."""
    # Field and object names are the client's own checked identifiers; values are literals.
    fields = ", ".join(select_fields(obj, external_id_field))
    head = f"SELECT {fields} FROM {obj} WHERE "  # noqa: S608
    pending: list[str] = []
    for contact in contacts:
        mine = conditions(obj, contact, external_id_field, strict=strict)
        if pending and _size(head, [*pending, *mine]) > MAX_QUERY_CHARS:
            yield head + " OR ".join(pending)
            pending = []
        pending += [c for c in mine if c not in pending]
    if pending:
        yield head + " OR ".join(pending)


def account_queries(names: Iterable[str]) -> Iterator[str]:
    """Queries for the Accounts with one of ``names`` (case-insensitive, exact)."""
    head = "SELECT Id, Name FROM Account WHERE "
    pending: list[str] = []
    for name in dict.fromkeys(names):
        clause = f"Name = {literal(name)}"
        if pending and _size(head, [*pending, clause]) > MAX_QUERY_CHARS:
            yield head + " OR ".join(pending)
            pending = []
        pending.append(clause)
    if pending:
        yield head + " OR ".join(pending)


def task_query(record_id: str) -> str:
    """The Tasks syncd wrote on one person (those carrying a message id), with what `syncd
    export` dates them by. For ``queryAll``, which alone sees archived Tasks (closed ones
    older than a year): the Recycle Bin's are left out by ``IsDeleted``."""
    return (
        f"SELECT Id, {MESSAGE_ID_FIELD}, Subject, ActivityDate, CreatedDate FROM Task "  # noqa: S608
        f"WHERE WhoId = {literal(record_id)} AND {MESSAGE_ID_FIELD} != null "
        "AND IsDeleted = false"
    )


def followed_query(obj: SObject) -> str:
    """The records whose follow checkbox is set, with the profile URL that names them."""
    url = FIELD_OF[obj]["linkedin_url"]
    return f"SELECT Id, {url} FROM {obj} WHERE {FOLLOW_FIELD} = true"  # noqa: S608


def _size(head: str, clauses: list[str]) -> int:
    return len(url_quote(head + " OR ".join(clauses), safe=""))
