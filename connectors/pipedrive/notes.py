"""The notes syncd wrote on a Pipedrive person: found and deleted on API v1's ``/notes``
(v2 has no notes), told apart from a human's notes by syncd's marker line
(:func:`connectors.pipedrive.mapping.is_syncd_note`).

Shapes follow ``specs/pipedrive/v1.yaml``: ``GET /notes?person_id=…&start=…&limit=…``
pages with ``additional_data.pagination`` (``more_items_in_collection``, ``next_start``),
``DELETE /notes/{id}`` answers ``{"success": true, "data": true}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors._session import Session
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import PAGE_LIMIT, Note, is_syncd_note, note_from
from sync.errors import FatalConnectorError

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
