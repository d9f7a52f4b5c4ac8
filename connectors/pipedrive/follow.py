"""Follow mode on Pipedrive: the "syncd follow" person field, and every person that has it.

Person search looks into text-like custom fields (``v2.yaml``, ``/persons/search``), so
:func:`followed` is an exact search for :data:`~connectors.pipedrive.mapping.FOLLOWING`
over custom fields (every page, by cursor), then the hits read back in lists of up to 100
(``GET /api/v2/persons?ids=…&custom_fields=…``): a hit counts only if its own follow field
holds the value (the search also finds the word in other fields, and trails writes).
Costs: 20 tokens per 500 hits of search, 10 per 100 persons read.
"""

from __future__ import annotations

from connectors._session import Session
from connectors.base import Followed, profile_key
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import FOLLOWING, PAGE_LIMIT, person_from, search_items
from sync.errors import FatalConnectorError

PERSONS = "/api/v2/persons"
#: The most ids ``GET /api/v2/persons?ids=…`` takes at once.
IDS_LIMIT = 100


async def followed(api: Session, follow_key: str, profile_field: str) -> list[Followed]:
    """Every live person whose follow field (``follow_key``) is set, with the publicId of
    the profile URL in ``profile_field``; a followed person without one is left out (the
    source cannot be asked about them)."""
    hits = await _search_all(api, FOLLOWING)
    out: list[Followed] = []
    for start in range(0, len(hits), IDS_LIMIT):
        chunk = hits[start : start + IDS_LIMIT]
        params = {
            "ids": ",".join(map(str, chunk)),
            "custom_fields": f"{follow_key},{profile_field}",
            "limit": str(IDS_LIMIT),
        }
        for item in await _pages(api, PERSONS, params):
            person = person_from(item)
            if person is None or person["is_deleted"] or person["id"] not in chunk:
                continue
            custom = person["custom_fields"]
            if (custom.get(follow_key) or "").strip() != FOLLOWING:
                continue
            key = profile_key(custom.get(profile_field))
            if key is not None:
                out.append(Followed(str(person["id"]), key.split("/", 1)[1]))
    return sorted(out, key=lambda f: int(f.id))


async def _search_all(api: Session, term: str) -> list[int]:
    """The ids of every person whose custom fields hold ``term`` whole, every page."""
    params = {"term": term, "fields": "custom_fields", "exact_match": "true"}
    data = await _pages(api, f"{PERSONS}/search", {**params, "limit": str(PAGE_LIMIT)})
    return sorted({item["id"] for item in search_items({"items": data})})


async def _pages(api: Session, path: str, params: dict[str, str]) -> list[object]:
    """The items of every page of a v2 list (a search's ``items``), by cursor."""
    found: list[object] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        data, more = envelope(api.connector, await api.call("GET", path, params=query))
        if isinstance(data, dict):  # a search: {"items": [...]}
            data = data.get("items")
        found += data if isinstance(data, list) else []
        following = more.get("next_cursor")
        if following is None:
            return found
        if not isinstance(following, str) or not following or following == cursor:
            raise FatalConnectorError(api.connector, f"{api.connector} sent a malformed page")
        cursor = following
