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

    async def _account_ids(self, names: Iterable[str]) -> dict[str, str | TargetOutcome]:
        """The Account id of each company name (found, else created), keyed by
        :func:`account_key`; the failed outcome where one cannot be created."""
        wanted = {account_key(n): n.strip() for n in names}
        unknown = [n for k, n in wanted.items() if k not in self._accounts]
        for query in soql.account_queries(unknown):
            # Several accounts with one name: the oldest (lowest Id) wins, every time.
            for record in sorted(await self._query(query), key=lambda r: str(r.get("Id"))):
                name, rid = text(record, "Name"), text(record, "Id")
                if name and rid:
                    self._accounts.setdefault(account_key(name), rid)
        out: dict[str, str | TargetOutcome] = {}
        for key, name in wanted.items():
            if key not in self._accounts:
                path = f"{self._data}/sobjects/Account"
                made = await self._call("POST", path, body={"Name": name}, ok={200, 201, 400})
                rid = outcomes.result_id(made) if made.is_success else None
                if rid is None:
                    out[key] = outcomes.rejected(self._connector, made, "the account of the record")
                    continue
                self._accounts[key] = rid
            out[key] = self._accounts[key]
        return out

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
