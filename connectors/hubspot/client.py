"""The HubSpot CRM v3 client: contacts upserted on the source's member id.

Per chunk of at most 100 contacts: gather candidates (:mod:`connectors.hubspot.lookup`:
identity and email by ``batch/read``, profile URL and name+company by search), let
:func:`connectors.base.match` decide (several candidates: ``ambiguous``, nothing written),
write only what :func:`connectors.base.fields_to_write` allows, create the rest in one
``batch/create`` associated with their company (:mod:`connectors.hubspot.companies`), and
turn a 409 "Existing ID: N" into an update of N. Every create and update also sets
``syncd_synced_at`` to the time of the write; an ``unchanged`` contact is not written.

``erase`` finds the person the same way and sends HubSpot's GDPR delete, never a plain
``DELETE`` (which HubSpot keeps restorable for 90 days); ``export`` reads the record back.
LinkedIn messages go in as Communications (:mod:`connectors.hubspot.communications`); the
follow flag is the contact property ``syncd_follow``, found again by search.
Docs: https://developers.hubspot.com/docs/api/crm/contacts
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from functools import partial
from typing import ClassVar

import httpx

from connectors._concurrent import both
from connectors._http import json_object
from connectors._ratelimit import Layered, Limiter
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
    profile_key,
)
from connectors.hubspot import errors, ratelimit
from connectors.hubspot.communications import Communications, instant
from connectors.hubspot.companies import Companies, association
from connectors.hubspot.lookup import Lookup, candidate, record, records
from connectors.hubspot.mapping import (
    BATCH_LIMIT,
    BODY_LIMIT,
    CUSTOM_PROPERTIES,
    EXPORT_PROPERTIES,
    FOLLOW_DEFINITION,
    FOLLOW_PROPERTY,
    IDENTITY_PROPERTY,
    LINKEDIN_PROPERTY,
    READ_PROPERTIES,
    SYNCED_AT_PROPERTY,
    SimplePublicObject,
    canonical,
    synced_at_now,
    to_fields,
    to_properties,
)
from sync.errors import ActivitiesRefused, FatalConnectorError
from sync.retry import RetryPolicy

CONTACTS = "/crm/v3/objects/contacts"
#: Permanent deletion of a contact and its associated content; body ``{"objectId"}``
#: (the record id; ``idProperty`` is left out, so the id is the record's own).
GDPR_DELETE = f"{CONTACTS}/gdpr-delete"
PROPERTIES = "/crm/v3/properties/contacts"
ACCOUNT_DETAILS = "/account-info/v3/details"
TOKEN_PATH = "/oauth/v1/token"  # noqa: S105 - an endpoint path, not a secret
_OK = range(200, 300)
#: Answers about one record rather than the whole call: the caller sorts them out.
_RECORD_ANSWERS = frozenset({*_OK, 400, 404, 409})
#: A record gone since the lookup (deleted meanwhile, or a lagging search index).
_GONE_OK = frozenset({*_OK, 404})
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
_DEFAULT_RETRY = RetryPolicy()


class HubSpotCRM:
    """Upserts contacts into one HubSpot account (implements ``connectors.base.CRM``)."""

    name: ClassVar[str] = "hubspot"
    #: The longest activity body (a message, or one part of a long one) syncd writes.
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
        if limiter is None:
            window, search = ratelimit.limiters(retry.sleep)
            limiter = window
            self._search_limiter: Limiter = Layered([search, window])
        else:
            self._search_limiter = limiter
        # A private-app token or an OAuth access token, both as Bearer; the refresh sends
        # the app's id and secret in the form.
        vendor = Vendor(errors.classify, token_url=settings.base_url.rstrip("/") + TOKEN_PATH)
        self._api = Session(
            self._connector,
            credential,
            vendor,
            base_url=settings.base_url,
            transport=transport,
            retry=retry,
            limiter=limiter,
        )
        self._properties_ready = False
        self._strict = settings.strict_match
        self._lookup = Lookup(self._connector, self._call)
        self._companies = Companies(self._connector, self._call)
        self._communications = Communications(self._connector, self._call)
        self._follow_ready = False
        self._account: tuple[str, str] | None = None  # (portal id, UI domain)

    # -- the CRM protocol ----------------------------------------------------------------

    async def check_auth(self) -> None:
        """Raise AuthError unless HubSpot accepts the credential (one cheap read)."""
        await self._call("GET", CONTACTS, params={"limit": "1"})

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; one outcome per contact, in order."""
        outcomes: list[TargetOutcome] = []
        for start in range(0, len(contacts), BATCH_LIMIT):
            chunk = contacts[start : start + BATCH_LIMIT]
            await self._ensure_properties()
            # The same person twice in a chunk is written once; both get its outcome.
            distinct = list({c.member_id: c for c in reversed(chunk)}.values())[::-1]
            written = await self._upsert(distinct)
            done = {c.member_id: o for c, o in zip(distinct, written, strict=True)}
            outcomes += [done[c.member_id] for c in chunk]
        return outcomes

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()

    # -- HTTP ----------------------------------------------------------------------------

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
        """One API call; ``idempotent=True`` marks a POST that only reads (batch/read,
        search), which may be sent again after a broken connection."""
        search = self._search_limiter if path.endswith("/search") else None
        return await self._api.call(
            method, path, body=body, params=params, ok=ok, idempotent=idempotent, limiter=search
        )

    async def _ensure_properties(self) -> None:
        """Create syncd's custom contact properties unless they exist: one batch read of
        their definitions, once per client (https://developers.hubspot.com/docs/api-reference/
        latest/crm/properties/batch/read-properties)."""
        if self._properties_ready:
            return
        body = {"inputs": [{"name": d["name"]} for d in CUSTOM_PROPERTIES]}
        path = f"{PROPERTIES}/batch/read"
        read = await self._call("POST", path, body=body, ok={200, 207}, idempotent=True)
        results = json_object(self._connector, read).get("results")
        existing = {
            str(r.get("name")): r
            for r in (results if isinstance(results, list) else [])
            if isinstance(r, dict)
        }
        for definition in CUSTOM_PROPERTIES:
            name = definition["name"]
            found = existing.get(name)
            if found is None:
                await self._call("POST", PROPERTIES, body=definition, ok={200, 201, 409})
            elif definition.get("hasUniqueValue") and found.get("hasUniqueValue") is not True:
                raise FatalConnectorError(
                    self._connector,
                    f"the {self._connector} contact property {name} exists but does not require "
                    "unique values; delete it in HubSpot so syncd can create it properly",
                )
        self._properties_ready = True

    # -- matching ------------------------------------------------------------------------

    async def find(self, contact: Contact) -> Presence:
        """Whether ``contact`` is in HubSpot, with id, owner and a link; writes nothing."""
        verdict = await self._locate(contact)
        if verdict.ambiguous:
            return Presence(False, step=verdict.step, candidates=verdict.ambiguous)
        if verdict.record is None:
            return Presence(False)
        found = verdict.record
        return Presence(
            True, id=found.id, owner=found.owner, url=await self._url(found.id), step=verdict.step
        )

    async def erase(self, contact: Contact) -> Erasure:
        """GDPR-delete the contact :func:`match` finds for ``contact``: permanent at once,
        with its associated content; the companies it was linked to stay.

        ``activities`` counts the communications syncd wrote on the contact (those carrying
        ``syncd_message_id``), counted before the delete, which takes them with it (0 when
        the token may not read communications). A lost answer raises WriteUncertain;
        erasing again then finds the person ``absent``.
        """
        verdict = await self._locate(contact)
        if verdict.ambiguous:
            return Erasure("ambiguous", step=verdict.step, candidates=verdict.ambiguous)
        if verdict.record is None:
            return Erasure("absent")
        record_id = verdict.record.id
        try:
            written = len(await self._communications.held(record_id))
        except ActivitiesRefused:
            written = 0
        body = {"objectId": record_id}
        answer = await self._call("POST", GDPR_DELETE, body=body, ok=_GONE_OK)
        if answer.status_code == 404:
            # Gone since the lookup; any other 404 (a proxy, a wrong path) is no erasure.
            if errors.error_fields(answer).get("category") != "OBJECT_NOT_FOUND":
                raise errors.classify(self._connector, answer)
            return Erasure("absent")
        return Erasure("erased", id=record_id, activities=written, step=verdict.step)

    async def export(self, contact: Contact) -> Holding:
        """What HubSpot holds now about the contact :func:`match` finds for ``contact``:
        the mapped fields, read back by id, ``syncd_synced_at``, and the dates of the
        communications syncd wrote on it (none when the token may not read them); writes
        nothing."""
        verdict = await self._locate(contact)
        if verdict.ambiguous:
            return Holding(False, step=verdict.step, candidates=verdict.ambiguous)
        if verdict.record is None:
            return Holding(False)
        record_id = verdict.record.id
        params = {"properties": ",".join(EXPORT_PROPERTIES)}
        answer = await self._call("GET", f"{CONTACTS}/{record_id}", params=params, ok=_GONE_OK)
        if answer.status_code == 404:
            return Holding(False)
        held = record(json_object(self._connector, answer))
        if held is None:
            raise FatalConnectorError(self._connector, f"{self._connector} sent a malformed record")
        props = held["properties"]
        try:
            logged = await self._communications.held(record_id)
        except ActivitiesRefused:
            logged = []
        dates = sorted(d for _, stamp in logged if (d := instant(stamp)) is not None)
        return Holding(
            True,
            id=record_id,
            url=await self._url(record_id),
            fields=to_fields(props),
            activities=tuple(dates),
            synced_at=props.get(SYNCED_AT_PROPERTY) or None,
            step=verdict.step,
        )

    # -- messages and follow mode --------------------------------------------------------

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The ``syncd_message_id`` of each communication syncd wrote on the contact."""
        return frozenset(key for key, _ in await self._communications.held(record_id))

    async def add_messages(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write each activity as a LinkedIn communication on the contact (see
        :mod:`connectors.hubspot.communications`); a lost answer raises WriteUncertain."""
        return await self._communications.add(record_id, activities)

    async def set_follow(self, contact: Contact, follow: bool) -> Presence:
        """Set or clear ``syncd_follow`` on the contact :func:`match` finds."""
        verdict = await self._locate(contact)
        if verdict.ambiguous:
            return Presence(False, step=verdict.step, candidates=verdict.ambiguous)
        if verdict.record is None:
            return Presence(False)
        found = verdict.record
        await self._ensure_properties()
        await self._ensure_follow()
        props = {
            FOLLOW_PROPERTY: "true" if follow else "false",
            SYNCED_AT_PROPERTY: synced_at_now(),
        }
        path = f"{CONTACTS}/{found.id}"
        answer = await self._call("PATCH", path, body={"properties": props}, ok=_GONE_OK)
        if answer.status_code == 404:
            return Presence(False)
        return Presence(
            True, id=found.id, owner=found.owner, url=await self._url(found.id), step=verdict.step
        )

    async def followed(self) -> list[Followed]:
        """Every contact whose ``syncd_follow`` is true, by search (every page), with the
        publicId of the profile URL syncd wrote; one without that URL cannot be relayed
        and is left out. HubSpot's search lags seconds behind a write."""
        if not self._follow_ready:
            path = f"{PROPERTIES}/{FOLLOW_PROPERTY}"
            if (await self._call("GET", path, ok={200, 404})).status_code == 404:
                return []  # nobody was ever followed in this account
        group = {"filters": [{"propertyName": FOLLOW_PROPERTY, "operator": "EQ", "value": "true"}]}
        out: list[Followed] = []
        for hit in await self._lookup.search([group]):
            key = profile_key(hit["properties"].get(LINKEDIN_PROPERTY))
            if key is not None:
                out.append(Followed(hit["id"], key.split("/", 1)[1]))
        return out

    async def _ensure_follow(self) -> None:
        """Create the ``syncd_follow`` contact property unless it exists (once per client)."""
        if self._follow_ready:
            return
        path = f"{PROPERTIES}/{FOLLOW_PROPERTY}"
        if (await self._call("GET", path, ok={200, 404})).status_code == 404:
            await self._call("POST", PROPERTIES, body=FOLLOW_DEFINITION, ok={200, 201, 409})
        self._follow_ready = True

    async def _locate(self, contact: Contact) -> Match:
        """:func:`match`'s verdict on ``contact`` among HubSpot's candidates, as upserts
        find people; creates nothing (not even syncd's properties)."""
        identity = await self._identity_exists()
        pool = await self._lookup.candidates([contact], strict=self._strict, identity=identity)
        return match(contact, map(candidate, pool), strict=self._strict)

    async def _identity_exists(self) -> bool:
        """Whether syncd's identity property exists (checked, never created, by ``find``)."""
        if self._properties_ready:
            return True
        path = f"{PROPERTIES}/{IDENTITY_PROPERTY}"
        return (await self._call("GET", path, ok={200, 404})).status_code == 200

    async def _url(self, record_id: str) -> str:
        """The contact's page in HubSpot's web app."""
        if self._account is None:
            details = json_object(self._connector, await self._call("GET", ACCOUNT_DETAILS))
            portal, domain = details.get("portalId"), details.get("uiDomain") or "app.hubspot.com"
            self._account = (str(portal), str(domain))
        portal, domain = self._account
        return f"https://{domain}/contacts/{portal}/record/0-1/{record_id}"

    # -- upsert --------------------------------------------------------------------------

    async def _upsert(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        desired = [canonical(c.fields) for c in contacts]
        found, searched = await self._candidates_and_companies(contacts, desired)
        pool = [candidate(r) for r in found]
        outcomes: dict[int, TargetOutcome] = {}
        updates: dict[int, tuple[str, dict[str, str]]] = {}
        creates: list[int] = []
        for i, contact in enumerate(contacts):
            verdict = match(contact, pool, strict=self._strict)
            if verdict.ambiguous:
                outcomes[i] = TargetOutcome(
                    "ambiguous",
                    detail=f"{len(verdict.ambiguous)} {self._connector} contacts match by "
                    f"{verdict.step}; nothing was written: merge them or add the person by hand",
                    candidates=verdict.ambiguous,
                )
            elif verdict.record is None:
                creates.append(i)
            else:
                plan = self._plan(contact, desired[i], verdict.record)
                if isinstance(plan, TargetOutcome):
                    outcomes[i] = plan
                else:
                    updates[i] = (verdict.record.id, plan)
        companies = await self._company_ids(
            [desired[i].get("company") for i in creates]
            + [desired[i].get("company") for i, (_, w) in updates.items() if "company" in w],
            searched,
        )
        outcomes |= await self._create(contacts, desired, creates, companies)
        outcomes |= await self._update(updates, companies)
        return [outcomes[i] for i in range(len(contacts))]

    async def _candidates_and_companies(
        self, contacts: Sequence[Contact], desired: Sequence[Mapping[str, str]]
    ) -> tuple[list[SimplePublicObject], frozenset[str]]:
        """The candidate records, and for a lone person the company names already looked up
        alongside them (the company search waits for nothing: one round trip less)."""
        if len(contacts) != 1:
            return await self._lookup.candidates(contacts, strict=self._strict), frozenset()
        names = [n for d in desired if (n := d.get("company"))]
        return await both(
            partial(self._lookup.candidates, contacts, strict=self._strict),
            partial(self._companies.find, names),
        )

    async def _company_ids(
        self, names: Sequence[str | None], searched: frozenset[str] = frozenset()
    ) -> dict[str, str]:
        """Company ids by name, found or created (see :mod:`connectors.hubspot.companies`)."""
        return await self._companies.ids_of(
            [n for n in dict.fromkeys(names) if n], searched=searched
        )

    def _plan(
        self, contact: Contact, desired: Mapping[str, str], record: Candidate
    ) -> TargetOutcome | dict[str, str]:
        """What to write to ``record`` for ``contact``, or the outcome if nothing."""
        if record.member_id and record.member_id != contact.member_id:
            return TargetOutcome(
                "failed",
                detail=f"{self._connector}: a contact with the same email belongs to another "
                f"person synced by syncd (record {record.id}); nothing was written",
                reason="rejected",
            )
        write = to_properties(fields_to_write(record.fields, desired, self._settings.overwrite))
        if not record.member_id:
            write[IDENTITY_PROPERTY] = contact.member_id
        return write or TargetOutcome("unchanged", id=record.id)

    async def _create(
        self,
        contacts: Sequence[Contact],
        desired: Sequence[Mapping[str, str]],
        which: list[int],
        companies: Mapping[str, str],
    ) -> dict[int, TargetOutcome]:
        if not which:
            return {}
        inputs: list[dict[str, object]] = []
        for i in which:
            item: dict[str, object] = {
                "properties": {
                    **to_properties(desired[i]),
                    IDENTITY_PROPERTY: contacts[i].member_id,
                    SYNCED_AT_PROPERTY: synced_at_now(),
                }
            }
            company_id = companies.get(desired[i].get("company", ""))
            if company_id:
                item["associations"] = [association(company_id)]
            inputs.append(item)
        path = f"{CONTACTS}/batch/create"
        response = await self._call("POST", path, body={"inputs": inputs}, ok=_RECORD_ANSWERS)
        if response.is_success:
            ids = {
                r["properties"].get(IDENTITY_PROPERTY): r["id"]
                for r in records(self._connector, response)
            }
            return {i: TargetOutcome("created", id=ids.get(contacts[i].member_id)) for i in which}
        if len(which) > 1:  # HubSpot refuses a batch whole: find the culprit one by one
            out: dict[int, TargetOutcome] = {}
            for i in which:
                out |= await self._create(contacts, desired, [i], companies)
            return out
        (i,) = which
        existing = _EXISTING_ID.search(errors.error_fields(response).get("message", ""))
        if response.status_code == 409 and existing:
            return {i: await self._claim(contacts[i], desired[i], existing.group(1), companies)}
        return {i: self._rejected(response)}

    async def _claim(
        self,
        contact: Contact,
        desired: Mapping[str, str],
        record_id: str,
        companies: Mapping[str, str],
    ) -> TargetOutcome:
        """Someone created the person's record since our read: update it instead."""
        path = f"{CONTACTS}/{record_id}"
        params = {"properties": ",".join(READ_PROPERTIES)}
        response = await self._call("GET", path, params=params, ok=_RECORD_ANSWERS)
        if not response.is_success:
            return self._rejected(response)
        found = record(json_object(self._connector, response))
        if found is None:
            raise FatalConnectorError(self._connector, f"{self._connector} sent a malformed record")
        plan = self._plan(contact, desired, candidate(found))
        if isinstance(plan, TargetOutcome):
            return plan
        if "company" in plan:
            companies = {**companies, **await self._company_ids([desired.get("company")])}
        return (await self._update({0: (record_id, plan)}, companies))[0]

    async def _update(
        self, updates: Mapping[int, tuple[str, dict[str, str]]], companies: Mapping[str, str]
    ) -> dict[int, TargetOutcome]:
        if not updates:
            return {}
        stamp = synced_at_now()
        inputs = [
            {"id": rid, "properties": {**props, SYNCED_AT_PROPERTY: stamp}}
            for rid, props in updates.values()
        ]
        path = f"{CONTACTS}/batch/update"
        response = await self._call("POST", path, body={"inputs": inputs}, ok=_RECORD_ANSWERS)
        if response.is_success:
            for rid, props in updates.values():
                company_id = companies.get(props.get("company", ""))
                if company_id:
                    await self._companies.link(rid, company_id)
            return {i: TargetOutcome("updated", id=rid) for i, (rid, _) in updates.items()}
        if len(updates) > 1:
            out: dict[int, TargetOutcome] = {}
            for i, update in updates.items():
                out |= await self._update({i: update}, companies)
            return out
        return {i: self._rejected(response) for i in updates}

    def _rejected(self, response: httpx.Response) -> TargetOutcome:
        """A failed outcome naming the status, category and request id; never the
        vendor's message, which can quote the person's data."""
        fields = errors.error_fields(response)
        codes = [errors.code_of(fields.get(k)) for k in ("category", "detailCode")]
        what = " ".join(["HTTP", str(response.status_code), *(c for c in codes if c)])
        rid = errors.request_id(response, fields)
        detail = f"{self._connector} refused the record ({what})" + (
            f"; request id {rid}" if rid else ""
        )
        return TargetOutcome("failed", detail=detail, reason="rejected")
