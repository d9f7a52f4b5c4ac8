"""The organizations a Pipedrive person belongs to: an organization's id found by its exact
name (any case) and made when missing, and its name read back by id. Both are remembered for
the client's life.

A name is found in a listing of the company's organizations when one is held: built with
``GET /api/v2/organizations`` (10 tokens a page of up to 500, sorted by id) as far as the
call's page budget allows, then kept fresh with one ``updated_since`` listing per call, only
when a name is not already known. Until the listing is whole, a name is searched
(``/api/v2/organizations/search``, 20 tokens, and the search API's 10 requests per 2 s).
Docs: https://developers.pipedrive.com/docs/api/v2 (``getOrganizations``: ``updated_since``,
``sort_by``, ``cursor``, ``limit`` up to 500) and
https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting (token costs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import anyio

from connectors._ratelimit import Limiter
from connectors._session import Session
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import search_items
from sync.errors import FatalConnectorError, RecordRejected

ORGANIZATIONS = "/api/v2/organizations"
#: Organizations per listing page (the most ``GET /api/v2/organizations`` answers).
LIST_LIMIT = 500
#: How far before the build began the first ``updated_since`` reaches back (clock skew).
SKEW = timedelta(minutes=10)


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
        #: The listing: ids by folded name, whole once ``_cursor`` ran out.
        self._listed: dict[str, set[int]] = {}
        self._cursor: str | None = None
        self._started = False
        self._complete = False
        self._since = ""
        #: Listing pages this call may still spend building; whether it refreshed already.
        self._budget = 0
        self._fresh = False

    def forget_missing(self, *, pages: int = 0) -> None:
        """Begin a call: forget the names searched and not found, so this call looks again,
        and let it spend at most ``pages`` listing pages building the listing."""
        self._ids = {k: v for k, v in self._ids.items() if v is not None}
        self._budget = pages
        self._fresh = False

    async def warm(self) -> None:
        """Bring the listing up to date now, as the first :meth:`id` of this call would (so
        it can run alongside other reads). A refused listing is left for that :meth:`id` to
        meet (it falls back to a search for its person); what stops the whole call (auth,
        the day's budget, retries run out) is raised here."""
        async with self._lock:
            with contextlib.suppress(RecordRejected):
                await self._listing()

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
        if await self._listing():
            found = {i: self._names[i] for i in self._listed.get(key, ())}
        else:
            found = await self._search(name, key)
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
            if self._started:
                self._listed.setdefault(key, set()).add(org_id)
        return org_id

    async def _search(self, name: str, key: str) -> dict[int, str]:
        params = {"term": name, "fields": "name", "exact_match": "true", "limit": "100"}
        response = await self._api.call(
            "GET", f"{ORGANIZATIONS}/search", params=params, limiter=self._search_limiter
        )
        data = envelope(self._api.connector, response)[0]
        return {
            item["id"]: str(item["name"])
            for item in search_items(data)
            if fold(str(item.get("name", ""))) == key
        }

    async def _listing(self) -> bool:
        """Build the listing on within this call's budget, or refresh a whole one (once a
        call); whether it now holds every organization as Pipedrive has them."""
        if self._complete:
            if not self._fresh:
                await self._list({"sort_by": "update_time", "updated_since": self._since})
                self._fresh = True
            return True
        if not self._started:
            self._started = True
            self._since = _rfc3339(datetime.now(UTC) - SKEW)
        while self._budget > 0:
            self._budget -= 1
            first = not self._cursor
            params = {"sort_by": "id", **({"cursor": self._cursor} if self._cursor else {})}
            self._cursor, _ = await self._page(params)
            if self._cursor is None:
                self._complete = self._fresh = True
                if not first:  # one page is one snapshot; several may miss an edit between
                    await self._list({"sort_by": "update_time", "updated_since": self._since})
                return True
        return False

    async def _list(self, params: dict[str, str]) -> None:
        """Every page of one listing, each organization indexed as it is now."""
        cursor: str | None = ""
        while cursor is not None:
            cursor, newest = await self._page({**params, **({"cursor": cursor} if cursor else {})})
            self._since = max(self._since, newest)

    async def _page(self, params: dict[str, str]) -> tuple[str | None, str]:
        """Index one listing page; its next cursor and newest ``update_time``."""
        query = {"limit": str(LIST_LIMIT), "sort_direction": "asc", **params}
        response = await self._api.call("GET", ORGANIZATIONS, params=query)
        data, more = envelope(self._api.connector, response)
        newest = ""
        for org in data if isinstance(data, list) else []:
            org_id, name = (org.get("id"), org.get("name")) if isinstance(org, dict) else (0, 0)
            if not isinstance(org_id, int) or isinstance(org_id, bool):
                continue
            stamp = org.get("update_time")
            newest = max(newest, stamp if isinstance(stamp, str) else "")
            live = isinstance(name, str) and not org.get("is_deleted")
            old = self._names.pop(org_id, None)
            if old is not None and (not live or fold(old) != fold(str(name))):
                # renamed or deleted by someone: its old name no longer leads to it
                self._listed.get(fold(old), set()).discard(org_id)
                self._ids = {k: v for k, v in self._ids.items() if v != org_id}
            if live:
                self._names[org_id] = str(name)
                self._listed.setdefault(fold(str(name)), set()).add(org_id)
        cursor = more.get("next_cursor") if isinstance(more, dict) else None
        return (cursor if isinstance(cursor, str) and cursor else None), newest

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


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
