"""The small SOQL subset the sandbox understands, parsed and run against its org.

``SELECT f, Rel.f FROM Object [WHERE cond] [LIMIT n]`` where ``cond`` combines
``field = | != | LIKE literal`` (a string, a number, ``true``, ``false`` or ``null``) and
``field IN ('a', 'b')`` with AND, OR and parentheses; a plain query leaves archived Tasks
out, ``queryAll`` also sees them and the Recycle Bin. String literals take the backslash escapes of
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
(any other backslash is an error, as is an unescaped quote); string comparisons ignore
case, as SOQL's do. Errors are Salesforce's: 400 MALFORMED_QUERY, INVALID_FIELD,
INVALID_TYPE.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from connectors.salesforce.sandbox.store import Org, SalesforceError

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<bad>')|(?P<num>\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|(?P<sym>!=|=|\(|\)|,))"
)
_ESCAPES = {
    "n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t",
    "b": "\b", "B": "\b", "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\",
}  # fmt: skip
#: Marks a LIKE escape (``\\%``, ``\\_``) in an unescaped literal.
_LITERAL = "\x00"
_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "LIMIT", "LIKE", "IN", "NULL", "TRUE", "FALSE"
}  # fmt: skip
#: Relationship name -> (object it belongs to, lookup field, related object).
RELATIONSHIPS = {("Contact", "Account"): ("AccountId", "Account")}


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; ``value`` None is ``null``; ``IN`` has its ``values``."""

    field: str
    op: str
    value: str | None
    values: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Junction:
    """Conditions joined by AND or OR."""

    op: str
    items: tuple[Compare | Junction, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """One parsed SELECT."""

    fields: tuple[str, ...]
    obj: str
    where: Compare | Junction | None
    limit: int | None


def malformed(detail: str) -> SalesforceError:
    """A 400 MALFORMED_QUERY (Salesforce's message quotes the offending text)."""
    return SalesforceError(400, "MALFORMED_QUERY", detail)


def _unescape(raw: str) -> str:
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1 : i + 2]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt in ("%", "_"):
                out.append(_LITERAL + nxt)  # kept for LIKE, which decides what it means
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                raise malformed(f"Invalid string literal {raw}. Illegal character sequence")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) pairs; kind is str, num, name, kw or sym."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        found = _TOKEN.match(text, pos)
        if found is None or found.lastgroup is None:
            raise malformed(f"unexpected token: '{text[pos:].split()[0]}'")
        kind, value = found.lastgroup, found.group(found.lastgroup)
        if kind == "bad":
            raise malformed(f"line 1:{pos} mismatched character '<EOF>' expecting '''")
        if kind == "str":
            value = _unescape(value)
        elif kind == "name" and value.upper() in _KEYWORDS:
            kind, value = "kw", value.upper()
        out.append((kind, value))
        pos = found.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.pos] if self.pos < len(self.toks) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got = self.peek()
        if got[0] != kind or (value is not None and got[1] != value):
            raise malformed(f"unexpected token: '{got[1] or '<EOF>'}'")
        self.pos += 1
        return got[1]

    def query(self) -> Query:
        self.take("kw", "SELECT")
        fields = [self.take("name")]
        while self.peek() == ("sym", ","):
            self.pos += 1
            fields.append(self.take("name"))
        self.take("kw", "FROM")
        obj = self.take("name")
        where = None
        if self.peek() == ("kw", "WHERE"):
            self.pos += 1
            where = self.disjunction()
        limit = None
        if self.peek() == ("kw", "LIMIT"):
            self.pos += 1
            limit = int(self.take("num"))
        if self.peek()[0] != "end":
            raise malformed(f"unexpected token: '{self.peek()[1]}'")
        return Query(tuple(fields), obj, where, limit)

    def disjunction(self) -> Compare | Junction:
        items = [self.conjunction()]
        while self.peek() == ("kw", "OR"):
            self.pos += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Junction("OR", tuple(items))

    def conjunction(self) -> Compare | Junction:
        items = [self.atom()]
        while self.peek() == ("kw", "AND"):
            self.pos += 1
            items.append(self.atom())
        return items[0] if len(items) == 1 else Junction("AND", tuple(items))

    def atom(self) -> Compare | Junction:
        if self.peek() == ("sym", "("):
            self.pos += 1
            inner = self.disjunction()
            self.take("sym", ")")
            return inner
        field = self.take("name")
        kind, op = self.peek()
        if (kind, op) == ("kw", "IN"):
            self.pos += 1
            return Compare(
                field, "IN", None, frozenset(_plain(v).casefold() for v in self.value_list())
            )
        if (kind, op) not in (("sym", "="), ("sym", "!="), ("kw", "LIKE")):
            raise malformed(f"unexpected token: '{op or '<EOF>'}'")
        self.pos += 1
        kind, value = self.peek()
        self.pos += 1
        if (kind, value) == ("kw", "NULL") and op != "LIKE":
            return Compare(field, op, None)
        if kind == "kw" and value in ("TRUE", "FALSE") and op != "LIKE":
            return Compare(field, op, value.lower())
        if kind not in ("str", "num"):
            raise malformed(f"unexpected token: '{value or '<EOF>'}'")
        return Compare(field, op, value)

    def value_list(self) -> tuple[str, ...]:
        self.take("sym", "(")
        values = [self.take("str")]
        while self.peek() == ("sym", ","):
            self.pos += 1
            values.append(self.take("str"))
        self.take("sym", ")")
        return tuple(values)


def parse(text: str) -> Query:
    """A parsed query, or SalesforceError 400 MALFORMED_QUERY."""
    return _Parser(text).query()


@functools.lru_cache(maxsize=4096)
def _like(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == _LITERAL and pattern[i + 1 : i + 2] in ("%", "_"):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _plain(value: str) -> str:
    # Outside LIKE, \% and \_ are not escapes; SOQL refuses them there.
    if _LITERAL in value:
        raise malformed("Invalid string literal. Illegal character sequence")
    return value


Getter = Callable[[dict[str, str | None], str], str | None]


def holds(cond: Compare | Junction, record: dict[str, str | None], get: Getter) -> bool:
    """Whether ``record`` satisfies ``cond``."""
    if isinstance(cond, Junction):
        results = (holds(c, record, get) for c in cond.items)
        return all(results) if cond.op == "AND" else any(results)
    actual = get(record, cond.field) or ""
    if cond.op == "IN":
        return actual.casefold() in cond.values
    if cond.op == "LIKE":
        return _like(cond.value or "").fullmatch(actual) is not None
    equal = actual.casefold() == _plain(cond.value or "").casefold()
    return equal if cond.op == "=" else not equal


def run(org: Org, query: Query, version: str, *, all_rows: bool = False) -> list[dict[str, object]]:
    """The records ``query`` selects, shaped as a query answer's ``records``; with
    ``all_rows`` (``queryAll``) the Recycle Bin's too."""
    obj = next((o for o in org.schemas if o.lower() == query.obj.lower()), None)
    if obj is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{query.obj}' is not supported.")

    resolved: dict[str, tuple[str, ...]] = {}

    def resolve(path: str) -> tuple[str, ...]:
        if path not in resolved:
            resolved[path] = resolve_once(path)
        return resolved[path]

    def resolve_once(path: str) -> tuple[str, ...]:
        head, _, tail = path.partition(".")
        if not tail:
            name = org.field(obj, head)
            if name is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{head}' on entity '{obj}'."
                )
            return (name,)
        rel = next((r for (o, r) in RELATIONSHIPS if o == obj and r.lower() == head.lower()), None)
        target = RELATIONSHIPS[(obj, rel)][1] if rel else None
        name = org.field(target, tail) if target else None
        if rel is None or name is None:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"Didn't understand relationship '{head}' in field path. If you are attempting "
                "to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name.",
            )
        return (rel, name)

    def related(record: dict[str, str | None], rel: str) -> dict[str, str | None] | None:
        lookup, target = RELATIONSHIPS[(obj, rel)]
        key = record.get(lookup)
        return org.find(target, key) if key else None

    def get(record: dict[str, str | None], path: str) -> str | None:
        parts = resolve(path)
        if len(parts) == 1:
            return org.view(obj, record).get(parts[0])
        parent = related(record, parts[0])
        return parent.get(parts[1]) if parent else None

    fields = [resolve(f) for f in query.fields]
    if query.where is not None:
        _check(query.where, resolve)
    # A plain query leaves archived activities out; queryAll sees them.
    every = (
        org.rows_all(obj)
        if all_rows
        else (r for r in org.rows(obj) if r.get("IsArchived") != "true")
    )
    rows = [r for r in every if query.where is None or holds(query.where, r, _memo(get))]
    out: list[dict[str, object]] = []
    for record in rows[: query.limit]:
        view = org.view(obj, record)
        item: dict[str, object] = {"attributes": _attributes(obj, view["Id"], version)}
        for parts in fields:
            if len(parts) == 1:
                item[parts[0]] = org.json_value(obj, parts[0], view.get(parts[0]))
                continue
            parent = related(record, parts[0])
            if parent is None:
                item[parts[0]] = None
                continue
            target = RELATIONSHIPS[(obj, parts[0])][1]
            nested = item.get(parts[0])
            shown = (
                nested
                if isinstance(nested, dict)
                else {"attributes": _attributes(target, parent["Id"], version)}
            )
            shown[parts[1]] = parent.get(parts[1])
            item[parts[0]] = shown
        out.append(item)
    return out


def _memo(get: Getter) -> Getter:
    """``get`` remembering each field of the one record it is asked about."""
    seen: dict[str, str | None] = {}

    def remembered(record: dict[str, str | None], path: str) -> str | None:
        if path not in seen:
            seen[path] = get(record, path)
        return seen[path]

    return remembered


def _check(cond: Compare | Junction, resolve: Callable[[str], tuple[str, ...]]) -> None:
    # Unknown fields are an error even where no record is looked at, as in Salesforce.
    if isinstance(cond, Junction):
        for item in cond.items:
            _check(item, resolve)
    else:
        resolve(cond.field)


def _attributes(obj: str, record_id: str | None, version: str) -> dict[str, str]:
    return {"type": obj, "url": f"/services/data/{version}/sobjects/{obj}/{record_id}"}
