"""The Salesforce REST client: Contacts (or Leads) upserted on the source's member id.

Per chunk of at most 200 people: one SOQL query (or as few as fit a URL) fetches every
candidate by external id, profile URL, email and, unless strict, name within the company;
:func:`connectors.base.match` decides. A new person, or one already carrying their member
id, is written by external id (``PATCH …/sobjects/<Object>/<Field>/<value>``, or sObject
Collections for several); a record a human made is updated by Id and gets the member id.
Only what :func:`connectors.base.fields_to_write` allows is sent, with
``syncd_synced_at__c`` set to the time of the write; nothing when nothing changes. Duplicate
rules are left on (no ``Sforce-Duplicate-Rule-Header``): a ``DUPLICATES_DETECTED`` record is
reported failed, never forced in.

The writes are sent by :mod:`connectors.salesforce.writes`. Messages are completed Tasks
on the person (:mod:`connectors.salesforce.tasks`); the follow flag is a checkbox on the
record (:mod:`connectors.salesforce.follow`).

``erase`` finds the person as an upsert would, deletes the Tasks syncd wrote on them (those
carrying ``syncd_message_id__c``, archived ones too; sObject Collections DELETE, 200 ids a
call), then the record (a DELETE of the row); Salesforce keeps both in its Recycle Bin for
15 days. A DELETE is never resent after a lost answer: WriteUncertain goes up, and
``erase`` run again finds the person absent or deletes what is left. ``export`` reads the
same record, its ``syncd_synced_at__c`` and when the messages of syncd's Tasks happened,
and writes nothing.

Every request passes :func:`connectors.salesforce.hosts.may_receive_token` before it leaves:
the access token goes only to a Salesforce host or the login host.
Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar, cast
from urllib.parse import quote

import httpx

from connectors._ratelimit import Limiter
from connectors._session import Session, Vendor
from connectors.base import (
    Activity,
    Candidate,
    ConnectorSettings,
    Contact,
    Erasure,
    Followed,
    Holding,
    Logged,
    Match,
    Presence,
    TargetOutcome,
    fields_to_write,
    match,
)
from connectors.salesforce import errors, hosts, outcomes, ratelimit, soql, tasks
from connectors.salesforce import follow as flag
from connectors.salesforce import query as pages
from connectors.salesforce.mapping import (
    BATCH_LIMIT,
    BODY_LIMIT,
    EXTERNAL_ID_FIELD,
    OBJECTS,
    RETENTION,
    SYNCED_AT_FIELD,
    SObject,
    canonical,
    has_name,
    record_fields,
    salesforce_datetime,
    text,
)
from connectors.salesforce.writes import RecordWriter
from sync.errors import AuthError, ConnectorError, FatalConnectorError, SyncdError
from sync.retry import RetryPolicy

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - an endpoint path, not a secret
_OK = range(200, 300)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_VERSION = re.compile(r"^v\d{2,3}\.0$")
_DEFAULT_RETRY = RetryPolicy()

#: A candidate record, and the row the query answered for it.
Found = tuple[Candidate, dict[str, object]]


class SalesforceCRM:
    """Upserts people into one Salesforce org (implements ``connectors.base.CRM``)."""

    name: ClassVar[str] = "salesforce"
    #: The longest activity body (note / Task description) one activity takes.
    body_limit: ClassVar[int] = BODY_LIMIT

    def __init__(
        self,
        settings: ConnectorSettings,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
        limiter: Limiter | None = None,
    ) -> None:
        self._settings = settings
        self._connector = settings.instance
        options = settings.options
        self._object = cast(SObject, str(options.get("object", "Contact")))
        self._ext = str(options.get("external_id_field", EXTERNAL_ID_FIELD))
        version = str(options.get("api_version", "v62.0"))
        self._data = f"/services/data/{version}"
        #: The org's daily API usage from the last ``Sforce-Limit-Info`` header.
        self.api_usage: tuple[int, int] | None = None
        self._problem: SyncdError | None = self._check_options(version)
        try:
            self._login = httpx.URL(self._login_url())
            token_url = str(self._login.join(TOKEN_PATH))
        except httpx.InvalidURL:
            self._login = httpx.URL(DEFAULT_LOGIN_URL)
            token_url = str(self._login.join(TOKEN_PATH))
            self._problem = FatalConnectorError(
                self._connector, f"{self._connector}: login_url is not a URL; fix it in the config"
            )
        # OAuth only: the refresh sends the app's id and secret in the form, and its answer
        # names the org's instance, where every API call then goes.
        vendor = Vendor(errors.classify, token_url=token_url, plain=None, instance_url=True)
        self._session = Session(
            self._connector,
            credential,
            vendor,
            transport=transport,
            retry=retry,
            limiter=ratelimit.limiter(retry.sleep) if limiter is None else limiter,
            on_request=[self._guard],
            on_response=[self._saw],
        )
        self._tasks = tasks.TaskLog(self._connector, self._data, self._call, self._query)
        self._writer = RecordWriter(
            self._connector, self._data, self._object, self._ext, self._call, self._query
        )

    # -- the CRM protocol ----------------------------------------------------------------

    async def check_auth(self) -> None:
        """Raise AuthError unless Salesforce accepts the credential (the limits resource)."""
        await self._call("GET", f"{self._data}/limits")

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; one outcome per contact, in order."""
        results: list[TargetOutcome] = []
        for start in range(0, len(contacts), BATCH_LIMIT):
            chunk = contacts[start : start + BATCH_LIMIT]
            # The same person twice in a chunk is written once; both get its outcome.
            distinct = list({c.member_id: c for c in reversed(chunk)}.values())[::-1]
            written = await self._upsert(distinct)
            done = dict(zip((c.member_id for c in distinct), written, strict=True))
            results += [done[c.member_id] for c in chunk]
        return results

    async def find(self, contact: Contact) -> Presence:
        """Whether ``contact`` is in the org, by :func:`match`; writes nothing."""
        verdict, _ = await self._person(contact)
        return await self._presence(verdict)

    async def erase(self, contact: Contact) -> Erasure:
        """Delete the person :func:`match` finds and the Tasks syncd wrote on them (to the
        Recycle Bin, for 15 days); Accounts stay."""
        verdict, _ = await self._person(contact)
        if verdict.record is None:
            if verdict.ambiguous:
                return Erasure("ambiguous", step=verdict.step, candidates=verdict.ambiguous)
            return Erasure("absent")
        rid = verdict.record.id
        ours = [t for t in (text(r, "Id") for r in await self._tasks.rows(rid)) if t]
        deleted = 0
        for start in range(0, len(ours), BATCH_LIMIT):
            deleted += await self._tasks.delete(ours[start : start + BATCH_LIMIT])
        path = f"{self._data}/sobjects/{self._object}/{quote(rid, safe='')}"
        # A lost answer is not resent: erase runs again and finds what is left.
        response = await self._call("DELETE", path, ok={204, 404}, idempotent=False)
        if response.status_code == 404 and errors.first_code(response) != "ENTITY_IS_DELETED":
            return Erasure("absent", activities=deleted)
        return Erasure("erased", id=rid, activities=deleted, retention=RETENTION, step=verdict.step)

    async def export(self, contact: Contact) -> Holding:
        """What the org holds about the person :func:`match` finds; writes nothing."""
        verdict, row = await self._person(contact)
        if verdict.record is None or row is None:
            return Holding(False, step=verdict.step, candidates=verdict.ambiguous)
        rid = verdict.record.id
        dates = [tasks.task_time(row) for row in await self._tasks.rows(rid)]
        return Holding(
            True,
            id=rid,
            url=await self._link(rid),
            fields=dict(verdict.record.fields),
            activities=tuple(sorted(d for d in dates if d is not None)),
            synced_at=text(row, SYNCED_AT_FIELD),
            step=verdict.step,
        )

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The message keys of the Tasks syncd wrote on the record (never a person's)."""
        return await self._tasks.message_ids(record_id)

    async def add_messages(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write each activity as a completed Task on the record, 200 a call."""
        return await self._tasks.add(record_id, activities)

    async def set_follow(self, contact: Contact, follow: bool) -> Presence:
        """Check (or clear) ``syncd_follow__c`` on the record :func:`match` finds."""
        verdict, _ = await self._person(contact)
        if verdict.record is not None:
            path = f"{self._data}/sobjects/{self._object}/{quote(verdict.record.id, safe='')}"
            stamp = salesforce_datetime(datetime.now(UTC))
            body = flag.body(follow, stamp)
            response = await self._call("PATCH", path, body=body, ok={*_OK, 400, 404})
            flag.check_set(self._connector, self._object, response)
        return await self._presence(verdict)

    async def followed(self) -> list[Followed]:
        """Every record whose ``syncd_follow__c`` is checked (every page)."""
        rows = await self._query(soql.followed_query(self._object), fields=flag.hint(self._object))
        return flag.listed(self._object, rows)

    async def aclose(self) -> None:
        """Release connections."""
        await self._session.aclose()

    # -- setup and HTTP ------------------------------------------------------------------

    @property
    def _strict(self) -> bool:
        return self._settings.strict_match

    def _login_url(self) -> str:
        login = str(self._settings.options.get("login_url") or DEFAULT_LOGIN_URL)
        base = self._settings.base_url
        # ``base_url`` stands in for the login URL when only it was changed.
        return base if login == DEFAULT_LOGIN_URL and base else login

    def _check_options(self, version: str) -> SyncdError | None:
        c = self._connector
        if self._object not in OBJECTS:
            return FatalConnectorError(c, f"{c}: object must be Contact or Lead")
        if not _NAME.match(self._ext):
            return FatalConnectorError(c, f"{c}: external_id_field is not a field API name")
        if not _VERSION.match(version):
            return FatalConnectorError(c, f"{c}: api_version must look like v62.0")
        return None

    async def _guard(self, request: httpx.Request) -> None:
        """Stop a request, before it leaves, to a host that must not get the token."""
        if not hosts.may_receive_token(request.url, self._login):
            c = self._connector
            raise AuthError(
                c,
                f"{c} named an instance that is not https on a Salesforce host "
                "(*.salesforce.com, *.force.com) or the login host, so syncd sent it nothing; "
                f"check login_url in the config, then store the credential again with "
                f"`syncd auth set {c}`",
            )

    async def _presence(self, verdict: Match) -> Presence:
        if verdict.record is None:
            return Presence(False, step=verdict.step, candidates=verdict.ambiguous)
        rid = verdict.record.id
        url = await self._link(rid)
        return Presence(True, id=rid, owner=verdict.record.owner, url=url, step=verdict.step)

    async def _link(self, record_id: str) -> str:
        """The record's page in Lightning Experience."""
        instance = httpx.URL(await self._session.ready())
        path = f"/lightning/r/{self._object}/{quote(record_id, safe='')}/view"
        return str(instance.join(path))

    async def _saw(self, response: httpx.Response) -> None:
        usage = errors.api_usage(response)
        if usage is not None:
            self.api_usage = usage

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        ok: Container[int] = _OK,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        if self._problem is not None:
            raise self._problem
        return await self._session.call(
            method, path, body=body, params=params, ok=ok, idempotent=idempotent
        )

    async def _query(
        self,
        query: str,
        *,
        fields: str = "",
        missing_field_means_none: bool = False,
        all_rows: bool = False,
        refused: type[ConnectorError] = FatalConnectorError,
    ) -> list[dict[str, object]]:
        """Every record a SOQL query answers, following ``nextRecordsUrl``.

        ``fields`` names the custom fields a refusal (raised as ``refused``) hints at; with
        ``missing_field_means_none``, an org without one of them (400 INVALID_FIELD) holds
        no such record; ``all_rows`` asks ``queryAll`` (archived and deleted rows too).
        """
        resource = "queryAll" if all_rows else "query"
        response = await self._call(
            "GET", f"{self._data}/{resource}", params={"q": query}, ok={*_OK, 400, 404}
        )
        return await self._rows(response, fields, missing_field_means_none, refused)

    async def _fetch(self, queries: Sequence[str]) -> list[list[dict[str, object]]]:
        """The records of each query, in order: one GET for one query short enough for a
        URL, else Composite requests of up to five queries each (one API call apiece)."""
        if len(queries) == 1 and soql.fits_url(queries[0]):
            return [await self._query(queries[0])]
        out: list[list[dict[str, object]]] = []
        for start in range(0, len(queries), pages.COMPOSITE_QUERIES):
            group = queries[start : start + pages.COMPOSITE_QUERIES]
            body = pages.composite_body(self._data, group)
            # Queries only: sending them again changes nothing.
            response = await self._call(
                "POST", f"{self._data}/composite", body=body, idempotent=True
            )
            for answer in pages.composite_answers(self._connector, response, len(group)):
                out.append(await self._rows(answer))
        return out

    async def _rows(
        self,
        response: httpx.Response,
        fields: str = "",
        missing_field_means_none: bool = False,
        refused: type[ConnectorError] = FatalConnectorError,
    ) -> list[dict[str, object]]:
        """Every record of a query's answer, or its refusal raised (see :meth:`_query`)."""
        c = self._connector
        if response.status_code in (400, 404):
            if missing_field_means_none and errors.first_code(response) == "INVALID_FIELD":
                return []
            error = errors.classify(c, response)
            wanted = fields or (
                f"the fields {self._ext}, the profile URL field and {SYNCED_AT_FIELD} exist "
                f"on {self._object}"
            )
            raise refused(
                c,
                f"{c} refused syncd's query ({error}); check that {wanted} and that the "
                "connected app's user can see them",
                status=response.status_code,
            )
        if response.status_code not in _OK:
            raise errors.classify(c, response)
        return await pages.every_page(c, response, self._call)

    # -- matching ------------------------------------------------------------------------

    async def _found(
        self, contacts: Sequence[Contact], *, also: Sequence[str] = ()
    ) -> tuple[dict[str, Found], list[list[dict[str, object]]]]:
        """Every record that might be one of ``contacts``, with its row, by Id; and the
        records of the queries ``also``, sent along in the same request where they fit."""
        found: dict[str, Found] = {}
        obj = self._object
        queries = list(soql.candidate_queries(obj, contacts, self._ext, strict=self._strict))
        answers = await self._fetch([*queries, *also])
        for records in answers[: len(queries)]:
            for record in records:
                rid = text(record, "Id")
                if rid:
                    candidate = Candidate(
                        id=rid,
                        member_id=text(record, self._ext),
                        fields=record_fields(obj, record),
                        owner=text(record, "OwnerId"),
                    )
                    found[rid] = (candidate, record)
        return found, answers[len(queries) :]

    async def _person(self, contact: Contact) -> tuple[Match, dict[str, object] | None]:
        """The verdict of :func:`match` for one person, and the matched record's row."""
        found, _ = await self._found([contact])
        verdict = match(contact, [c for c, _ in found.values()], strict=self._strict)
        return verdict, found[verdict.record.id][1] if verdict.record else None

    # -- upsert --------------------------------------------------------------------------

    async def _upsert(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        done = {i: outcomes.nameless(self._connector) for i, c in enumerate(contacts)
                if not has_name(c.fields)}  # fmt: skip
        named = [i for i in range(len(contacts)) if i not in done]
        # The Accounts of the batch's companies are looked up with its candidates, in the
        # same request: a person found unchanged costs nothing more.
        companies = [contacts[i].fields.get("company", "") for i in named]
        lookups = self._writer.account_lookups(companies)
        found, accounts = await self._found([contacts[i] for i in named], also=lookups)
        for rows in accounts:
            self._writer.remember(rows)
        pool = [candidate for candidate, _ in found.values()]
        by_external: dict[int, tuple[str | None, dict[str, str]]] = {}
        by_id: dict[int, tuple[str, dict[str, str]]] = {}
        for i in named:
            contact = contacts[i]
            desired = canonical(self._object, contact.fields)
            verdict = match(contact, pool, strict=self._strict)
            record = verdict.record
            if verdict.ambiguous:
                done[i] = outcomes.ambiguous(self._connector, verdict.step, verdict.ambiguous)
            elif record is None:
                by_external[i] = (None, desired)
            else:
                write = fields_to_write(record.fields, desired, self._settings.overwrite)
                if record.member_id is None:
                    by_id[i] = (record.id, write)
                    # Claimed now: later people of this chunk must not take it too.
                    claimed = replace(record, member_id=contact.member_id)
                    pool = [claimed if c is record else c for c in pool]
                elif write:
                    by_external[i] = (record.id, write)
                else:
                    done[i] = TargetOutcome("unchanged", id=record.id)
        done |= await self._writer.write(contacts, by_external, by_id)
        return [done[i] for i in range(len(contacts))]
