"""The HubSpot CRM v3 client: contacts upserted on the source's member id.

Per chunk of at most 100 contacts: read by the identity property, then by email for the
rest (``batch/read`` by ``idProperty``, never search: HubSpot's search index lags behind
writes), write only what :func:`connectors.base.fields_to_write` allows, create the rest in
one ``batch/create``, and turn a 409 "Existing ID: N" into an update of N.
Docs: https://developers.hubspot.com/docs/api/crm/contacts
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from typing import ClassVar

import anyio
import httpx

from connectors._http import RetryPolicy, json_object, send
from connectors.base import ConnectorSettings, Contact, TargetOutcome, fields_to_write
from connectors.hubspot import auth
from connectors.hubspot.mapping import (
    BATCH_LIMIT,
    CUSTOM_PROPERTIES,
    IDENTITY_PROPERTY,
    READ_PROPERTIES,
    SimplePublicObject,
    canonical,
    to_fields,
    to_properties,
)
from sync.errors import AuthError, FatalConnectorError

CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"
_OK = range(200, 300)
#: Answers about one record rather than the whole call: the caller sorts them out.
_RECORD_ANSWERS = frozenset({*_OK, 400, 404, 409})
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
_DEFAULT_RETRY = RetryPolicy()


class HubSpotCRM:
    """Upserts contacts into one HubSpot account (implements ``connectors.base.CRM``)."""

    name: ClassVar[str] = "hubspot"

    def __init__(
        self,
        settings: ConnectorSettings,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
    ) -> None:
        self._settings = settings
        self._connector = settings.instance
        self._retry = retry
        self._bearer = auth.Bearer()
        self._http = httpx.AsyncClient(
            base_url=settings.base_url, transport=transport, auth=self._bearer, timeout=30.0
        )
        self._oauth: auth.OAuthCredential | None = None
        self._problem: AuthError | None = None
        try:
            parsed = auth.parse_credential(self._connector, credential)
        except AuthError as error:
            self._problem = error  # raised by the first call, not by the constructor
        else:
            if isinstance(parsed, auth.OAuthCredential):
                self._oauth = parsed
            else:
                self._bearer.token = parsed
        self._refresh_lock = anyio.Lock()
        self._properties_ready = False

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
        await self._http.aclose()

    # -- HTTP ----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        ok: Container[int] = _OK,
    ) -> httpx.Response:
        if self._problem is not None:
            raise self._problem
        if self._oauth is not None and self._bearer.token is None:
            await self._refresh()
        extra: dict[str, object] = {} if body is None else {"json": body}
        return await send(
            self._http,
            method,
            path,
            connector=self._connector,
            policy=self._retry,
            classify=auth.classify,
            ok=ok,
            refresh=self._refresh if self._oauth is not None else None,
            params=params,
            **extra,
        )

    async def _refresh(self) -> None:
        """Trade the refresh token for a new access token, held in memory only."""
        assert self._oauth is not None
        stale = self._bearer.token
        async with self._refresh_lock:
            if self._bearer.token != stale:
                return  # another request refreshed while this one waited
            response = await send(
                self._http,
                "POST",
                auth.TOKEN_PATH,
                connector=self._connector,
                policy=self._retry,
                classify=auth.classify_token,
                auth=None,
                data=self._oauth.form(),
            )
            token = json_object(self._connector, response).get("access_token")
            if not isinstance(token, str) or not token:
                raise FatalConnectorError(
                    self._connector, f"{self._connector} answered a refresh without a token"
                )
            self._bearer.token = token

    async def _ensure_properties(self) -> None:
        """Create syncd's custom contact properties unless they exist (once per client)."""
        if self._properties_ready:
            return
        for definition in CUSTOM_PROPERTIES:
            name = definition["name"]
            found = await self._call("GET", f"{PROPERTIES}/{name}", ok={200, 404})
            if found.status_code == 404:
                await self._call("POST", PROPERTIES, body=definition, ok={200, 201, 409})
            elif definition.get("hasUniqueValue") and not _is_unique(self._connector, found):
                raise FatalConnectorError(
                    self._connector,
                    f"the {self._connector} contact property {name} exists but does not require "
                    "unique values; delete it in HubSpot so syncd can create it properly",
                )
        self._properties_ready = True

    # -- upsert --------------------------------------------------------------------------

    async def _upsert(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        desired = [canonical(c.fields) for c in contacts]
        found: dict[int, SimplePublicObject] = {}
        by_member = await self._read(IDENTITY_PROPERTY, [c.member_id for c in contacts])
        for i, contact in enumerate(contacts):
            if contact.member_id in by_member:
                found[i] = by_member[contact.member_id]
        emails = {i: d["email"] for i, d in enumerate(desired) if i not in found and "email" in d}
        if emails:
            by_email = await self._read("email", sorted(set(emails.values())))
            found |= {i: by_email[e] for i, e in emails.items() if e in by_email}
        outcomes: dict[int, TargetOutcome] = {}
        updates: dict[int, tuple[str, dict[str, str]]] = {}
        for i, record in found.items():
            plan = self._plan(contacts[i], desired[i], record)
            if isinstance(plan, TargetOutcome):
                outcomes[i] = plan
            else:
                updates[i] = (record["id"], plan)
        creates = [i for i in range(len(contacts)) if i not in found]
        outcomes |= await self._create(contacts, desired, creates)
        outcomes |= await self._update(updates)
        return [outcomes[i] for i in range(len(contacts))]

    def _plan(
        self, contact: Contact, desired: Mapping[str, str], record: SimplePublicObject
    ) -> TargetOutcome | dict[str, str]:
        """What to write to ``record`` for ``contact``, or the outcome if nothing."""
        owner = record["properties"].get(IDENTITY_PROPERTY)
        if owner and owner != contact.member_id:
            return TargetOutcome(
                "failed",
                detail=f"{self._connector}: a contact with the same email belongs to another "
                f"person synced by syncd (record {record['id']}); nothing was written",
                reason="rejected",
            )
        existing = to_fields(record["properties"])
        write = to_properties(fields_to_write(existing, desired, self._settings.overwrite))
        if not owner:
            write[IDENTITY_PROPERTY] = contact.member_id
        return write or TargetOutcome("unchanged", id=record["id"])

    async def _read(self, id_property: str, keys: Sequence[str]) -> dict[str, SimplePublicObject]:
        """The contacts whose ``id_property`` is one of ``keys``, keyed by that value."""
        body = {
            "idProperty": id_property,
            "inputs": [{"id": key} for key in dict.fromkeys(keys)],
            "properties": list(READ_PROPERTIES),
        }
        response = await self._call("POST", f"{CONTACTS}/batch/read", body=body, ok={200, 207})
        out: dict[str, SimplePublicObject] = {}
        for record in _records(self._connector, response):
            value = (record["properties"].get(id_property) or "").strip()
            out[value.lower() if id_property == "email" else value] = record
        return out

    async def _create(
        self, contacts: Sequence[Contact], desired: Sequence[Mapping[str, str]], which: list[int]
    ) -> dict[int, TargetOutcome]:
        if not which:
            return {}
        inputs = [
            {"properties": {**to_properties(desired[i]), IDENTITY_PROPERTY: contacts[i].member_id}}
            for i in which
        ]
        path = f"{CONTACTS}/batch/create"
        response = await self._call("POST", path, body={"inputs": inputs}, ok=_RECORD_ANSWERS)
        if response.is_success:
            ids = {
                r["properties"].get(IDENTITY_PROPERTY): r["id"]
                for r in _records(self._connector, response)
            }
            return {i: TargetOutcome("created", id=ids.get(contacts[i].member_id)) for i in which}
        if len(which) > 1:  # HubSpot refuses a batch whole: find the culprit one by one
            out: dict[int, TargetOutcome] = {}
            for i in which:
                out |= await self._create(contacts, desired, [i])
            return out
        (i,) = which
        existing = _EXISTING_ID.search(auth.error_fields(response).get("message", ""))
        if response.status_code == 409 and existing:
            return {i: await self._claim(contacts[i], desired[i], existing.group(1))}
        return {i: self._rejected(response)}

    async def _claim(
        self, contact: Contact, desired: Mapping[str, str], record_id: str
    ) -> TargetOutcome:
        """Someone created the person's record since our read: update it instead."""
        path = f"{CONTACTS}/{record_id}"
        params = {"properties": ",".join(READ_PROPERTIES)}
        response = await self._call("GET", path, params=params, ok=_RECORD_ANSWERS)
        if not response.is_success:
            return self._rejected(response)
        record = _record(json_object(self._connector, response))
        if record is None:
            raise FatalConnectorError(self._connector, f"{self._connector} sent a malformed record")
        plan = self._plan(contact, desired, record)
        if isinstance(plan, TargetOutcome):
            return plan
        return (await self._update({0: (record_id, plan)}))[0]

    async def _update(
        self, updates: Mapping[int, tuple[str, dict[str, str]]]
    ) -> dict[int, TargetOutcome]:
        if not updates:
            return {}
        inputs = [{"id": rid, "properties": props} for rid, props in updates.values()]
        path = f"{CONTACTS}/batch/update"
        response = await self._call("POST", path, body={"inputs": inputs}, ok=_RECORD_ANSWERS)
        if response.is_success:
            return {i: TargetOutcome("updated", id=rid) for i, (rid, _) in updates.items()}
        if len(updates) > 1:
            out: dict[int, TargetOutcome] = {}
            for i, update in updates.items():
                out |= await self._update({i: update})
            return out
        return {i: self._rejected(response) for i in updates}

    def _rejected(self, response: httpx.Response) -> TargetOutcome:
        """A failed outcome naming the status, category and request id; never the
        vendor's message, which can quote the person's data."""
        fields = auth.error_fields(response)
        codes = [auth.code_of(fields.get(k)) for k in ("category", "detailCode")]
        what = " ".join(["HTTP", str(response.status_code), *(c for c in codes if c)])
        rid = auth.request_id(response, fields)
        detail = f"{self._connector} refused the record ({what})" + (
            f"; request id {rid}" if rid else ""
        )
        return TargetOutcome("failed", detail=detail, reason="rejected")


def _is_unique(connector: str, response: httpx.Response) -> bool:
    """Whether a property definition requires unique values."""
    return json_object(connector, response).get("hasUniqueValue") is True


def _record(item: object) -> SimplePublicObject | None:
    """One contact from JSON, or None if it is not shaped like one."""
    if not isinstance(item, dict):
        return None
    rid, props = item.get("id"), item.get("properties")
    if not isinstance(rid, str) or not isinstance(props, dict):
        return None
    return {
        "id": rid,
        "properties": {str(k): v if isinstance(v, str) else None for k, v in props.items()},
        "createdAt": str(item.get("createdAt", "")),
        "updatedAt": str(item.get("updatedAt", "")),
        "archived": item.get("archived") is True,
    }


def _records(connector: str, response: httpx.Response) -> list[SimplePublicObject]:
    """The ``results`` of a batch answer."""
    results = json_object(connector, response).get("results")
    if not isinstance(results, list):
        raise FatalConnectorError(connector, f"{connector} answered a batch without results")
    return [r for r in map(_record, results) if r is not None]
