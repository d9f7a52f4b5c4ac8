"""The organizations a Pipedrive person belongs to: an organization's id found by its exact
name (any case) through ``/api/v2/organizations/search`` and made when missing, and its name
read back by id. Both are remembered for the client's life."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from connectors._ratelimit import Limiter
from connectors._session import Session
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import search_items
from sync.errors import FatalConnectorError

ORGANIZATIONS = "/api/v2/organizations"


def fold(value: str | None) -> str:
    """A name as Pipedrive compares it: runs of white space made one, any case."""
    return " ".join((value or "").split()).casefold()


class Organizations:
    """Organization ids by name and names by id, for one Pipedrive company."""

    def __init__(self, api: Session, *, search: Limiter | None = None) -> None:
        self._api = api
        self._search_limiter = search
        #: Organization name (folded) -> id; None for "searched, not there" (this call only).
        self._ids: dict[str, int | None] = {}
        self._names: dict[int, str] = {}
        self._lock = anyio.Lock()

    def forget_missing(self) -> None:
        """Forget the names searched and not found, so the next call searches again."""
        self._ids = {k: v for k, v in self._ids.items() if v is not None}

    async def id(self, name: str, *, create: bool) -> int | None:
        """The id of the organization named ``name`` (exactly, any case); made if missing
        and ``create``. Remembered for the client's life; one lookup at a time, so two
        people of one company never create it twice."""
        async with self._lock:
            return await self._id_unlocked(name, create=create)

    async def _id_unlocked(self, name: str, *, create: bool) -> int | None:
        key = fold(name)
        if key in self._ids and (self._ids[key] is not None or not create):
            return self._ids[key]
        params = {"term": name, "fields": "name", "exact_match": "true", "limit": "100"}
        response = await self._api.call(
            "GET", f"{ORGANIZATIONS}/search", params=params, limiter=self._search_limiter
        )
        data = envelope(self._api.connector, response)[0]
        found = {
            item["id"]: str(item["name"])
            for item in search_items(data)
            if fold(str(item.get("name", ""))) == key
        }
        org_id = min(found) if found else None
        if org_id is None and create:
            made = await self._data("POST", ORGANIZATIONS, body={"name": name})
            org_id = made.get("id") if isinstance(made, dict) else None
            if not isinstance(org_id, int):
                connector = self._api.connector
                raise FatalConnectorError(connector, f"{connector} sent a malformed organization")
            found[org_id] = name
        self._ids[key] = org_id
        if org_id is not None:
            self._names[org_id] = found[org_id]
        return org_id

    async def name(self, org_id: int | None) -> str | None:
        """The name of the organization ``org_id``; None for none, or one that is gone."""
        if org_id is None:
            return None
        if org_id not in self._names:
            response = await self._api.call("GET", f"{ORGANIZATIONS}/{org_id}", ok={200, 404})
            data = (
                envelope(self._api.connector, response)[0] if response.status_code == 200 else None
            )
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str):
                return None
            self._names[org_id] = name
        return self._names[org_id]

    async def _data(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> object:
        """The ``data`` of a successful answer in Pipedrive's envelope."""
        response = await self._api.call(method, path, body=body, params=params)
        return envelope(self._api.connector, response)[0]
