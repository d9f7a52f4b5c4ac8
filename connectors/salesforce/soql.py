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

#: A query sent as ``GET …/query?q=`` keeps its URL well under the 16,384 bytes Salesforce
#: takes for the URI and headers together (414/431 past it); a longer one goes in the body
#: of a Composite request (Salesforce's own advice, knowledge article 000386264:
#: https://help.salesforce.com/s/articleView?id=000386264&type=1).
MAX_QUERY_CHARS = 8_000
#: One SOQL statement stays at half the documented 100,000 characters: Salesforce expands a
#: statement before it runs it, so the margin keeps a batch's query clear of the limit.
#: https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
MAX_STATEMENT_CHARS = 50_000


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
    obj: SObject,
    contacts: Sequence[Contact],
    external_id_field: str,
    *,
    strict: bool,
    max_chars: int = MAX_STATEMENT_CHARS,
) -> Iterator[str]:
    """As few statements of at most ``max_chars`` as together fetch every candidate of
    ``contacts``: member ids and emails each in one ``IN`` list, profile URLs and names
    one condition a person, all OR-ed."""
    # Field and object names are the client's own checked identifiers; values are literals.
    fields = ", ".join(select_fields(obj, external_id_field))
    head = f"SELECT {fields} FROM {obj} WHERE "  # noqa: S608
    batch = _Where(external_id_field)
    for contact in contacts:
        mine = _Where(external_id_field)
        mine.add(conditions(obj, contact, external_id_field, strict=strict))
        if batch and len(head) + batch.size + mine.size > max_chars:
            yield head + batch.text()
            batch = _Where(external_id_field)
        batch.add(conditions(obj, contact, external_id_field, strict=strict))
    if batch:
        yield head + batch.text()


class _Where:
    """An OR of conditions where the equalities on one field share an ``IN`` list; ``size``
    is the length of :meth:`text`, kept as conditions come."""

    def __init__(self, external_id_field: str) -> None:
        self._lists: dict[str, list[str]] = {external_id_field: [], "Email": []}
        self._others: list[str] = []
        self._seen: set[str] = set()
        self.size = 0

    def __bool__(self) -> bool:
        return bool(self._others) or any(self._lists.values())

    def add(self, clauses: Iterable[str]) -> None:
        for clause in clauses:
            if clause in self._seen:
                continue
            self._seen.add(clause)
            field, _, value = clause.partition(" = ")
            values = self._lists.get(field) if value.startswith("'") else None
            if values is not None:
                # "F IN (v)" is 8 longer than its value; each further value adds ", v".
                self.size += len(value) + (2 if values else len(field) + 8 + 4)
                values.append(value)
            else:
                self._others.append(clause)
                self.size += len(clause) + 4

    def text(self) -> str:
        lists = [f"{f} IN ({', '.join(v)})" for f, v in self._lists.items() if v]
        return " OR ".join([*lists, *self._others])


def account_queries(names: Iterable[str]) -> Iterator[str]:
    """Queries for the Accounts with one of ``names`` (case-insensitive, exact)."""
    head = "SELECT Id, Name FROM Account WHERE Name IN ("
    pending: list[str] = []
    size = len(head)
    for name in dict.fromkeys(names):
        value = literal(name)
        if pending and size + len(value) + 3 > MAX_STATEMENT_CHARS:
            yield head + ", ".join(pending) + ")"
            pending, size = [], len(head)
        pending.append(value)
        size += len(value) + 2
    if pending:
        yield head + ", ".join(pending) + ")"


def fits_url(query: str) -> bool:
    """Whether ``query`` is short enough to go as ``GET …/query?q=``."""
    return len(url_quote(query, safe="")) <= MAX_QUERY_CHARS


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
