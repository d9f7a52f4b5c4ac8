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
from typing import Any

import httpx

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
        identity property does not exist yet, as before syncd's first write)."""
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
        groups = _groups(rest, strict=strict, identity=identity)
        # A group has at most 3 filters, so 5 groups stay under the 18-filter limit.
        for start in range(0, len(groups), MAX_GROUPS):
            for hit in await self.search(groups[start : start + MAX_GROUPS]):
                found[hit["id"]] = hit
        return list(found.values())

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
        after = "0"
        while True:
            body = {
                "filterGroups": groups,
                "properties": list(READ_PROPERTIES),
                "limit": PAGE,
                "after": after,
            }
            response = await self._call("POST", f"{CONTACTS}/search", body=body, idempotent=True)
            answer = json_object(self._connector, response)
            out += records(self._connector, response)
            paging = answer.get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(nxt, dict) or not nxt.get("after"):
                return out
            after = str(nxt["after"])


def _groups(contacts: Sequence[Contact], *, strict: bool, identity: bool) -> list[dict[str, Any]]:
    """The search filter groups that find ``contacts`` by profile URL (one group each: the
    URL property is free text, matched as ``*in/<publicid>*``) and by name (one group per
    100 last names, ``lastname IN``; :func:`connectors.base.match` then keeps only the same
    first name at the same company)."""
    groups: list[dict[str, Any]] = []
    last_names: list[str] = []
    for contact in contacts:
        fields = canonical(contact.fields)
        key = profile_key(fields.get("linkedin_url"))
        if key and identity:  # the URL property is syncd's own: it exists when identity does
            groups.append(_group((LINKEDIN_PROPERTY, "CONTAINS_TOKEN", f"*{key}*")))
        names = (fields.get("first_name"), fields.get("last_name"), fields.get("company"))
        if not strict and all(names):
            last_names.append(str(names[1]).lower())
    unique = list(dict.fromkeys(last_names))
    for start in range(0, len(unique), 100):
        values = unique[start : start + 100]
        groups.append(
            {"filters": [{"propertyName": "lastname", "operator": "IN", "values": values}]}
        )
    return groups


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
