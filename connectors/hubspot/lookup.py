"""Finding the people of a chunk in HubSpot: the candidates :func:`connectors.base.match`
judges.

Identity and email are unique properties, so they are read with ``batch/read`` by
``idProperty`` — exact and current. The profile URL and name+company are not unique, so
they are searched; HubSpot's search index lags seconds behind writes, which is harmless
here: a record syncd wrote carries the identity property and is found by the read, and
search only ever has to find records people made earlier.
Docs: https://developers.hubspot.com/docs/api/crm/search
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import httpx

from connectors._concurrent import gather
from connectors._http import json_object
from connectors.base import Candidate, Contact, profile_key
from connectors.hubspot.mapping import (
    IDENTITY_PROPERTY,
    LINKEDIN_PROPERTY,
    OWNER_PROPERTY,
    READ_PROPERTIES,
    SimplePublicObject,
    canonical,
    to_fields,
)
from sync.errors import FatalConnectorError

CONTACTS = "/crm/v3/objects/contacts"
#: HubSpot's search limits: 5 filter groups a request (18 filters in all), 200 results a page.
MAX_GROUPS = 5
PAGE = 200

Call = Callable[..., Awaitable[httpx.Response]]


def candidate(record: SimplePublicObject) -> Candidate:
    """A contact record as matching sees it."""
    props = record["properties"]
    return Candidate(
        id=record["id"],
        member_id=props.get(IDENTITY_PROPERTY) or None,
        fields=to_fields(props),
        owner=props.get(OWNER_PROPERTY) or None,
    )


class Lookup:
    """Reads and searches one HubSpot account's contacts through ``call``."""

    def __init__(self, connector: str, call: Call) -> None:
        self._connector = connector
        self._call = call

    async def candidates(
        self, contacts: Sequence[Contact], *, strict: bool, identity: bool = True
    ) -> list[SimplePublicObject]:
        """Every record that might be one of ``contacts`` (``identity=False`` when the
        identity property does not exist yet, as before syncd's first write).

        In a batch, the email read and the searches ask only about people the identity read
        did not find (a bulk of people syncd wrote before costs one read). A lone person is
        looked up every way at once: one round trip instead of three, for at most two
        requests more when the identity read alone would have found them."""
        if len(contacts) == 1:
            return await self._at_once(contacts, strict=strict, identity=identity)
        found: dict[str, SimplePublicObject] = {}
        if identity:
            ids = [c.member_id for c in contacts if c.member_id]  # none: a forget by URL
            if ids:
                found |= await self.read(IDENTITY_PROPERTY, ids)
        known = {r["properties"].get(IDENTITY_PROPERTY) for r in found.values()}
        rest = [c for c in contacts if c.member_id not in known]
        emails = [e for c in rest if (e := canonical(c.fields).get("email"))]
        if emails:
            found |= await self.read("email", emails)
        for hit in await self._fallbacks(rest, strict=strict, identity=identity):
            found[hit["id"]] = hit
        return list(found.values())

    async def _at_once(
        self, contacts: Sequence[Contact], *, strict: bool, identity: bool
    ) -> list[SimplePublicObject]:
        """Identity read, email read and the fallback search side by side."""
        ids = [c.member_id for c in contacts if c.member_id] if identity else []
        emails = [e for c in contacts if (e := canonical(c.fields).get("email"))]
        calls: list[Callable[[], Awaitable[dict[str, SimplePublicObject]]]] = []
        if ids:
            calls.append(partial(self.read, IDENTITY_PROPERTY, ids))
        if emails:
            calls.append(partial(self.read, "email", emails))

        async def fallbacks() -> dict[str, SimplePublicObject]:
            hits = await self._fallbacks(contacts, strict=strict, identity=identity)
            return {hit["id"]: hit for hit in hits}

        calls.append(fallbacks)
        found: dict[str, SimplePublicObject] = {}
        for part in await gather(calls):
            found |= part
        return list(found.values())

    async def _fallbacks(
        self, contacts: Sequence[Contact], *, strict: bool, identity: bool
    ) -> list[SimplePublicObject]:
        """The records the profile-URL and name steps could pick for ``contacts``.

        A record carrying another member's id never counts for those steps (see
        :func:`connectors.base.match`), and one carrying the person's own id was read by
        identity already, so for people with a member id only records *without* one are
        wanted: every hand-entered profile URL and the name group fit in one search of a few
        filter groups. When that search has more than one page (a portal where people typed
        many URLs), the targeted groups (one per URL, five to a search) are cheaper.
        """
        broad = _groups(contacts, strict=strict, identity=identity, broad=True)
        if not broad:
            return []
        if len(broad) <= MAX_GROUPS:
            hits, complete = await self.search_first(broad)
            if complete:
                return hits
        out: list[SimplePublicObject] = []
        groups = _groups(contacts, strict=strict, identity=identity, broad=False)
        for start in range(0, len(groups), MAX_GROUPS):
            out += await self.search(groups[start : start + MAX_GROUPS])
        return out

    async def read(self, id_property: str, keys: Sequence[str]) -> dict[str, SimplePublicObject]:
        """The contacts whose unique ``id_property`` is one of ``keys``, by record id."""
        out: dict[str, SimplePublicObject] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            body = {
                "idProperty": id_property,
                "inputs": [{"id": key} for key in unique[start : start + 100]],
                "properties": list(READ_PROPERTIES),
            }
            path = f"{CONTACTS}/batch/read"
            response = await self._call("POST", path, body=body, ok={200, 207}, idempotent=True)
            out |= {r["id"]: r for r in records(self._connector, response)}
        return out

    async def search(self, groups: list[dict[str, Any]]) -> list[SimplePublicObject]:
        """Every contact matching any of ``groups`` (all pages)."""
        out: list[SimplePublicObject] = []
        after: str | None = "0"
        while after is not None:
            page, after = await self._page(groups, after)
            out += page
        return out

    async def search_first(
        self, groups: list[dict[str, Any]]
    ) -> tuple[list[SimplePublicObject], bool]:
        """The first page of contacts matching any of ``groups``, and whether it is all."""
        page, after = await self._page(groups, "0")
        return page, after is None

    async def _page(
        self, groups: list[dict[str, Any]], after: str
    ) -> tuple[list[SimplePublicObject], str | None]:
        body = {
            "filterGroups": groups,
            "properties": list(READ_PROPERTIES),
            "limit": PAGE,
            "after": after,
        }
        response = await self._call("POST", f"{CONTACTS}/search", body=body, idempotent=True)
        answer = json_object(self._connector, response)
        paging = answer.get("paging")
        nxt = paging.get("next") if isinstance(paging, dict) else None
        more = str(nxt["after"]) if isinstance(nxt, dict) and nxt.get("after") else None
        return records(self._connector, response), more


def _groups(
    contacts: Sequence[Contact], *, strict: bool, identity: bool, broad: bool = False
) -> list[dict[str, Any]]:
    """The search filter groups that find ``contacts`` by profile URL (the URL property is
    free text, matched as ``*in/<publicid>*``, one group each; ``broad``: one group for every
    record with a URL and no member id) and by name (one group per 100 last names,
    ``lastname IN``; :func:`connectors.base.match` then keeps only the same first name at
    the same company). While every contact has a member id, only records without one are
    asked for (``broad`` or not): they are the only ones those steps may pick."""
    groups: list[dict[str, Any]] = []
    last_names: list[str] = []
    # Only syncd writes the identity property, so "no member id" narrows every group.
    anonymous = identity and all(c.member_id for c in contacts)
    unclaimed = [_filter(IDENTITY_PROPERTY, "NOT_HAS_PROPERTY")] if anonymous else []
    any_url = False
    for contact in contacts:
        fields = canonical(contact.fields)
        key = profile_key(fields.get("linkedin_url"))
        if key and identity:  # the URL property is syncd's own: it exists when identity does
            if broad and contact.member_id:
                any_url = True
            else:
                groups.append(_group((LINKEDIN_PROPERTY, "CONTAINS_TOKEN", f"*{key}*")))
        names = (fields.get("first_name"), fields.get("last_name"), fields.get("company"))
        if not strict and all(names):
            last_names.append(str(names[1]).lower())
    if any_url:
        has_url = _filter(LINKEDIN_PROPERTY, "HAS_PROPERTY")
        groups.append({"filters": [has_url, _filter(IDENTITY_PROPERTY, "NOT_HAS_PROPERTY")]})
    unique = list(dict.fromkeys(last_names))
    for start in range(0, len(unique), 100):
        values = unique[start : start + 100]
        by_name = {"propertyName": "lastname", "operator": "IN", "values": values}
        groups.append({"filters": [by_name, *unclaimed]})
    return groups


def _filter(name: str, operator: str) -> dict[str, Any]:
    return {"propertyName": name, "operator": operator}


def _group(*filters: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "filters": [
            {"propertyName": name, "operator": operator, "value": value}
            for name, operator, value in filters
        ]
    }


def record(item: object) -> SimplePublicObject | None:
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


def records(connector: str, response: httpx.Response) -> list[SimplePublicObject]:
    """The ``results`` of a batch or search answer."""
    results = json_object(connector, response).get("results")
    if not isinstance(results, list):
        raise FatalConnectorError(connector, f"{connector} answered without results")
    return [r for r in map(record, results) if r is not None]


__all__ = ["Call", "Lookup", "candidate", "record", "records"]
