"""The notes syncd writes on a Pipedrive person, one per relayed message: added, found and
deleted on API v1's ``/notes`` (v2 has no notes), told apart from a human's notes by syncd's
marker line (:func:`connectors.pipedrive.mapping.is_syncd_note`).

Shapes follow ``specs/pipedrive/v1.yaml``: ``POST /notes`` takes one note (``content``,
``person_id``, ``add_time`` as ``YYYY-MM-DD HH:MM:SS`` UTC; there is no batch create) and
answers it; ``GET /notes?person_id=…&start=…&limit=…`` pages with
``additional_data.pagination`` (``more_items_in_collection``, ``next_start``);
``DELETE /notes/{id}`` answers ``{"success": true, "data": true}``. A credential that may
not add notes gets 403 (``Scope and URL mismatch`` for an OAuth app without the
``contacts:full`` scope): that is :class:`sync.errors.ActivitiesRefused`.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from connectors._session import Session
from connectors.base import Activity, Logged, message_of
from connectors.pipedrive.errors import REQUEST_ID_HEADER, code_of, envelope, error_fields
from connectors.pipedrive.mapping import (
    PAGE_LIMIT,
    Note,
    is_syncd_note,
    note_content,
    note_from,
    note_key,
    v1_stamp,
)
from sync.errors import ActivitiesRefused, FatalConnectorError

NOTES = "/api/v1/notes"


async def syncd_notes(api: Session, person_id: int) -> list[Note]:
    """The notes on the person that syncd wrote, every page read; a human's are left out."""
    found: list[Note] = []
    start = 0
    while True:
        params = {"person_id": str(person_id), "start": str(start), "limit": str(PAGE_LIMIT)}
        data, more = envelope(api.connector, await api.call("GET", NOTES, params=params))
        for note in map(note_from, data if isinstance(data, list) else []):
            # The person_id check guards against an answer that ignored the filter.
            if note and note["person_id"] == person_id and is_syncd_note(note["content"]):
                found.append(note)
        page = more.get("pagination")
        if not (isinstance(page, dict) and page.get("more_items_in_collection") is True):
            return found
        following = page.get("next_start")
        if not isinstance(following, int) or isinstance(following, bool) or following <= start:
            raise FatalConnectorError(
                api.connector, f"{api.connector} sent a malformed page of notes"
            )
        start = following


async def delete_notes(api: Session, notes: Sequence[Note]) -> None:
    """Delete each note; one already gone (a retry after a lost answer, a colleague's
    delete) is as good as deleted."""
    for note in notes:
        response = await api.call("DELETE", f"{NOTES}/{note['id']}", ok={200, 404})
        if response.status_code == 200:
            envelope(api.connector, response)


async def message_keys(api: Session, person_id: int) -> frozenset[str]:
    """The activity keys in the markers of syncd's notes on the person (every page)."""
    notes = await syncd_notes(api, person_id)
    return frozenset(k for k in (note_key(n["content"]) for n in notes) if k is not None)


async def add_notes(api: Session, person_id: int, activities: Sequence[Activity]) -> Logged:
    """One note per activity on the person, in the order given (oldest first), each
    dated with its message's time. A lost answer raises WriteUncertain from that note on
    (it is never resent as is: the caller lists :func:`message_keys` again)."""
    for activity in activities:
        body = {
            "content": note_content(activity),
            "person_id": person_id,
            "add_time": v1_stamp(activity.message.sent_at),
        }
        response = await api.call("POST", NOTES, body=body, ok={200, 201, 403})
        if response.status_code == 403:
            raise _refused(api.connector, response)
        envelope(api.connector, response)
    messages = {message_of(a.key) for a in activities}
    split = {message_of(a.key) for a in activities if "#" in a.key}
    return Logged(written=len(messages), split=len(split))


def _refused(connector: str, response: httpx.Response) -> ActivitiesRefused:
    fields = error_fields(response)
    code = code_of(fields.get("code")) or ("HTTP 403")
    return ActivitiesRefused(
        connector,
        f"{connector} refused to add notes ({code}); the contact was written, but its "
        "messages need a credential that may add notes (an API token of a user allowed to "
        "add notes, or an OAuth app with the contacts:full scope)",
        status=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )
