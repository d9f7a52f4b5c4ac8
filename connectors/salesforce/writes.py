"""How planned writes reach a Salesforce org: each person's sObject body (mapped fields,
``syncd_synced_at__c``, the Account of a Contact's company, a Lead's company fallback),
the Accounts found by name or created, then upserts by external id and updates by Id, one
``PATCH`` for one record and sObject Collections (``allOrNone: false``) for more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from connectors.base import Contact, TargetOutcome
from connectors.salesforce import outcomes, soql
from connectors.salesforce.mapping import (
    BATCH_LIMIT,
    LEAD_COMPANY_FALLBACK,
    SYNCED_AT_FIELD,
    SObject,
    salesforce_datetime,
    text,
    to_sobject,
)
from connectors.salesforce.query import Call
from connectors.salesforce.tasks import Query

_RECORD_ANSWERS = frozenset({200, 201, 204, 300, 400, 404})

#: What one write needs: the member id, the record's Id if known, and the sObject body.
Write = tuple[str, str | None, dict[str, str]]


class RecordWriter:
    """Sends the Contact (or Lead) writes of one org; remembers Account ids by name."""

    def __init__(
        self, connector: str, data: str, obj: SObject, ext: str, call: Call, query: Query
    ) -> None:
        self._connector = connector
        self._data = data
        self._object = obj
        self._ext = ext
        self._call = call
        self._query = query
        self._accounts: dict[str, str] = {}
        #: The names :meth:`account_lookups` gave out for the batch being written: not
        #: asked again before its writes.
        self._asked: set[str] = set()

    async def write(
        self,
        contacts: Sequence[Contact],
        by_external: Mapping[int, tuple[str | None, dict[str, str]]],
        by_id: Mapping[int, tuple[str, dict[str, str]]],
    ) -> dict[int, TargetOutcome]:
        """Resolve companies, then send the planned writes; an outcome per planned person."""
        plans = [*by_external.values(), *by_id.values()]
        companies = [fields["company"] for _, fields in plans if "company" in fields]
        accounts = await self._account_ids(companies) if self._object == "Contact" else {}
        done: dict[int, TargetOutcome] = {}
        upserts: dict[int, Write] = {}
        updates: dict[int, Write] = {}
        stamp = salesforce_datetime(datetime.now(UTC))
        for planned, target in ((by_external, upserts), (by_id, updates)):
            for i, (rid, fields) in planned.items():
                body = self._body(fields, accounts, new=rid is None, stamp=stamp)
                if isinstance(body, TargetOutcome):
                    done[i] = body
                    continue
                if target is updates:
                    body[self._ext] = contacts[i].member_id
                target[i] = (contacts[i].member_id, rid, body)
        done |= await self._write_by_external_id(upserts)
        done |= await self._write_by_id(updates)
        for i, (_, _, body) in {**upserts, **updates}.items():
            if done[i].outcome == "failed" and "AccountId" in body:
                # The account may be gone since it was cached; look it up again next time.
                self._accounts = {k: v for k, v in self._accounts.items() if v != body["AccountId"]}
        return done

    def _body(
        self,
        fields: Mapping[str, str],
        accounts: Mapping[str, str | TargetOutcome],
        *,
        new: bool,
        stamp: str,
    ) -> dict[str, str] | TargetOutcome:
        """The sObject fields to send for ``fields`` (with the time of the write), or the
        outcome if they cannot be."""
        body = to_sobject(self._object, fields) | {SYNCED_AT_FIELD: stamp}
        company = fields.get("company")
        if self._object == "Contact" and company:
            account = accounts[account_key(company)]
            if isinstance(account, TargetOutcome):
                return account
            body["AccountId"] = account
        if self._object == "Lead" and new and "Company" not in body:
            body["Company"] = LEAD_COMPANY_FALLBACK
        return body

    def account_lookups(self, names: Iterable[str]) -> list[str]:
        """The queries for the Accounts of ``names`` not known yet (none for Leads), for
        the caller to send with its own, then hand the rows to :meth:`remember`."""
        if self._object != "Contact":
            return []
        unknown = {account_key(n): n.strip() for n in names if n.strip()}
        unknown = {k: n for k, n in unknown.items() if k not in self._accounts}
        self._asked = set(unknown)
        return list(soql.account_queries(unknown.values()))

    def remember(self, rows: Iterable[dict[str, object]]) -> None:
        """Learn the Account ids an account query answered."""
        # Several accounts with one name: the oldest (lowest Id) wins, every time.
        for record in sorted(rows, key=lambda r: str(r.get("Id"))):
            name, rid = text(record, "Name"), text(record, "Id")
            if name and rid:
                self._accounts.setdefault(account_key(name), rid)

    async def _account_ids(self, names: Iterable[str]) -> dict[str, str | TargetOutcome]:
        """The Account id of each company name (found, else created), keyed by
        :func:`account_key`; the failed outcome where one cannot be created. Accounts not
        known yet are looked up in one query and the missing ones made by sObject
        Collections create, 200 a call."""
        wanted = {account_key(n): n.strip() for n in names}
        asked, self._asked = self._asked, set()
        for query in self.account_lookups(n for k, n in wanted.items() if k not in asked):
            self.remember(await self._query(query))
        self._asked = set()
        out: dict[str, str | TargetOutcome] = {}
        missing = [(k, n) for k, n in wanted.items() if k not in self._accounts]
        for start in range(0, len(missing), BATCH_LIMIT):
            out |= await self._create_accounts(missing[start : start + BATCH_LIMIT])
        return out | {k: self._accounts[k] for k in wanted if k in self._accounts}

    async def _create_accounts(self, names: Sequence[tuple[str, str]]) -> dict[str, TargetOutcome]:
        """Create the Accounts ``names`` (key, name) lists; the failed outcome of each that
        Salesforce refused."""
        what = "the account of the record"
        if len(names) == 1:
            ((key, name),) = names
            path = f"{self._data}/sobjects/Account"
            made = await self._call("POST", path, body={"Name": name}, ok={200, 201, 400})
            rid = outcomes.result_id(made) if made.is_success else None
            if rid is None:
                return {key: outcomes.rejected(self._connector, made, what)}
            self._accounts[key] = rid
            return {}
        records = [{"attributes": {"type": "Account"}, "Name": name} for _, name in names]
        body = {"allOrNone": False, "records": records}
        path = f"{self._data}/composite/sobjects"
        made = await self._call("POST", path, body=body, ok={200, 400})
        refused: dict[str, TargetOutcome] = {}
        answers = outcomes.collection(self._connector, made, [None] * len(names), what)
        for (key, _), answer in zip(names, answers, strict=True):
            if answer.outcome == "failed" or answer.id is None:
                refused[key] = answer
            else:
                self._accounts[key] = answer.id
        return refused

    async def _write_by_external_id(self, writes: Mapping[int, Write]) -> dict[int, TargetOutcome]:
        """Upsert by external id: one PATCH for one record, sObject Collections for more."""
        if len(writes) == 1:
            ((i, (member_id, known, body)),) = writes.items()
            path = f"{self._data}/sobjects/{self._object}/{self._ext}/{quote(member_id, safe='')}"
            response = await self._call("PATCH", path, body=body, ok=_RECORD_ANSWERS)
            return {i: outcomes.single(self._connector, response, known)}
        if not writes:
            return {}
        path = f"{self._data}/composite/sobjects/{self._object}/{self._ext}"
        records: list[dict[str, object]] = [
            {"attributes": {"type": self._object}, **body, self._ext: member_id}
            for member_id, _, body in writes.values()
        ]
        return await self._collection(path, records, writes)

    async def _write_by_id(self, writes: Mapping[int, Write]) -> dict[int, TargetOutcome]:
        """Update records by Id: one PATCH for one record, sObject Collections for more."""
        if len(writes) == 1:
            ((i, (_, rid, body)),) = writes.items()
            assert rid is not None
            path = f"{self._data}/sobjects/{self._object}/{rid}"
            response = await self._call("PATCH", path, body=body, ok=_RECORD_ANSWERS)
            return {i: outcomes.single(self._connector, response, rid)}
        if not writes:
            return {}
        records: list[dict[str, object]] = [
            {"attributes": {"type": self._object}, "id": rid, **body}
            for _, rid, body in writes.values()
        ]
        return await self._collection(f"{self._data}/composite/sobjects", records, writes)

    async def _collection(
        self, path: str, records: list[dict[str, object]], writes: Mapping[int, Write]
    ) -> dict[int, TargetOutcome]:
        body = {"allOrNone": False, "records": records}
        response = await self._call("PATCH", path, body=body, ok={200, 400})
        known = [rid for _, rid, _ in writes.values()]
        return dict(zip(writes, outcomes.collection(self._connector, response, known), strict=True))


def account_key(name: str) -> str:
    """A company name as the Account cache keys it."""
    # SOQL's = ignores case, and only case: the cache compares names the same way.
    return name.strip().casefold()
