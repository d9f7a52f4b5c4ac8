"""LinkedIn messages as HubSpot Communications on a contact: what syncd wrote there (read
back from HubSpot, never from disk) and writing the rest.

A message is one communication (``LINKEDIN_MESSAGE``, logged from ``CRM``) carrying its
:data:`connectors.base.MESSAGE_ID` key, associated to the contact (type 81) inside the
``batch/create`` itself, at most 100 a request. What a contact holds is its v4 association
list (every page) read back by ``batch/read``; communications without syncd's key are a
person's own and never counted. A 403 on any of it (a token without the scope) is
:class:`sync.errors.ActivitiesRefused`.
Docs: https://developers.hubspot.com/docs/api/crm/communications and
https://developers.hubspot.com/docs/api-reference/latest/crm/associations/overview
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import UTC, datetime

import httpx

from connectors._http import json_object
from connectors.base import Activity, Logged, message_of
from connectors.hubspot import errors
from connectors.hubspot.lookup import Call, records
from connectors.hubspot.mapping import (
    BATCH_LIMIT,
    COMMUNICATIONS,
    MESSAGE_ID_DEFINITION,
    MESSAGE_ID_PROPERTY,
    TIMESTAMP_PROPERTY,
    communication_input,
)
from sync.errors import ActivitiesRefused

PROPERTIES = "/crm/v3/properties/communications"
#: The v4 association list takes up to 500 a page.
ASSOCIATION_PAGE = 500
_OK = range(200, 300)


def associations_path(record_id: str) -> str:
    """The v4 list of the communications associated with a contact."""
    return f"/crm/v4/objects/contact/{record_id}/associations/communication"


class Communications:
    """The communications syncd writes on one HubSpot account's contacts."""

    def __init__(self, connector: str, call: Call) -> None:
        self._connector = connector
        self._call = call
        self._ready = False

    async def held(self, record_id: str) -> list[tuple[str, str | None]]:
        """(key, ``hs_timestamp``) of each communication syncd wrote on the contact."""
        ids = await self._associated(record_id)
        out: list[tuple[str, str | None]] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + BATCH_LIMIT]],
                "properties": [MESSAGE_ID_PROPERTY, TIMESTAMP_PROPERTY],
                "propertiesWithHistory": [],  # the spec requires it; the official client sends it
            }
            answer = await self._send("POST", f"{COMMUNICATIONS}/batch/read", body, {200, 207})
            for found in records(self._connector, answer):
                key = found["properties"].get(MESSAGE_ID_PROPERTY)
                if key:
                    out.append((key, found["properties"].get(TIMESTAMP_PROPERTY)))
        return out

    async def add(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write ``activities`` on contact ``record_id``, in batches of at most 100."""
        if not activities:
            return Logged(0)
        await self._ensure_property()
        for start in range(0, len(activities), BATCH_LIMIT):
            inputs = [
                communication_input(record_id, a) for a in activities[start : start + BATCH_LIMIT]
            ]
            await self._send("POST", f"{COMMUNICATIONS}/batch/create", {"inputs": inputs}, _OK)
        messages = {message_of(a.key) for a in activities}
        split = {message_of(a.key) for a in activities if "#" in a.key}
        return Logged(len(messages), len(split))

    async def _associated(self, record_id: str) -> list[str]:
        """The ids of every communication associated with the contact (every page)."""
        ids: list[str] = []
        params = {"limit": str(ASSOCIATION_PAGE)}
        while True:
            answer = json_object(
                self._connector,
                await self._send("GET", associations_path(record_id), None, _OK, params=params),
            )
            results = answer.get("results")
            for item in results if isinstance(results, list) else []:
                if isinstance(item, dict) and isinstance(item.get("toObjectId"), str | int):
                    ids.append(str(item["toObjectId"]))
            paging = answer.get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(nxt, dict) or not nxt.get("after"):
                return list(dict.fromkeys(ids))
            params = {**params, "after": str(nxt["after"])}

    async def _ensure_property(self) -> None:
        """Create syncd's message-id property on communications unless it exists."""
        if self._ready:
            return
        name = MESSAGE_ID_DEFINITION["name"]
        found = await self._send("GET", f"{PROPERTIES}/{name}", None, {200, 404})
        if found.status_code == 404:
            await self._send("POST", PROPERTIES, MESSAGE_ID_DEFINITION, {200, 201, 409})
        self._ready = True

    async def _send(
        self,
        method: str,
        path: str,
        body: object,
        ok: Container[int],
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call; a 403 is the account refusing syncd's activities."""
        # batch/read only reads: safe to send again after a broken connection.
        idempotent = True if path.endswith("/batch/read") else None
        answer = await self._call(
            method, path, body=body, params=params, ok=_With403(ok), idempotent=idempotent
        )
        if answer.status_code == 403:
            raise self._refused(answer)
        return answer

    def _refused(self, answer: httpx.Response) -> ActivitiesRefused:
        fields = errors.error_fields(answer)
        code = errors.code_of(fields.get("category")) or "HTTP 403"
        return ActivitiesRefused(
            self._connector,
            f"{self._connector} refused to log LinkedIn messages ({code}): give syncd's app or "
            "private-app token the scopes to write communications, then store it again with "
            f"`syncd auth set {self._connector}`",
            status=403,
            request_id=errors.request_id(answer, fields),
        )


class _With403:
    """``ok`` and 403: the caller turns a 403 into :class:`ActivitiesRefused`."""

    def __init__(self, ok: Container[int]) -> None:
        self._ok = ok

    def __contains__(self, status: object) -> bool:
        return status == 403 or status in self._ok


def instant(value: str | None) -> datetime | None:
    """An ``hs_timestamp`` as an aware datetime (ISO 8601 or epoch milliseconds)."""
    if not value:
        return None
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
