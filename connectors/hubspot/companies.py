"""The person's company in HubSpot: found by name or created, then associated.

Companies are not people: when several companies share the name, the oldest is used (a
company picked wrongly is a visible, harmless link; a person picked wrongly is not, which is
why contacts are never guessed). Names already resolved are kept in memory for the client's
life, which also covers the seconds HubSpot's search index lags behind a create.
Docs: https://developers.hubspot.com/docs/api/crm/companies and
https://developers.hubspot.com/docs/api-reference/latest/crm/associations/overview
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors._http import json_object
from connectors.hubspot.lookup import Call, records
from connectors.hubspot.mapping import CONTACT_TO_COMPANY

COMPANIES = "/crm/v3/objects/companies"
#: HubSpot's batch endpoints and the IN operator take at most 100 values.
BATCH = 100
_RECORD_ANSWERS = frozenset({*range(200, 300), 400, 404, 409})


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def association(company_id: str) -> dict[str, object]:
    """The ``associations`` entry of a contact create that links it to a company."""
    return {
        "to": {"id": company_id},
        "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CONTACT_TO_COMPANY}
        ],
    }


class Companies:
    """Company ids by name, for one HubSpot account."""

    def __init__(self, connector: str, call: Call) -> None:
        self._connector = connector
        self._call = call
        self._ids: dict[str, str] = {}

    async def find(self, names: Sequence[str]) -> frozenset[str]:
        """Look up the names not known yet, by one search per 100, creating nothing; the
        names searched (found or not), to hand to :meth:`ids_of` as ``searched``."""
        wanted = {_key(n): n.strip() for n in names if n.strip()}
        missing = [k for k in wanted if k not in self._ids]
        for start in range(0, len(missing), BATCH):
            self._ids |= await self._search([wanted[k] for k in missing[start : start + BATCH]])
        return frozenset(missing)

    async def ids_of(
        self, names: Sequence[str], *, searched: frozenset[str] = frozenset()
    ) -> dict[str, str]:
        """Company ids by name (as given), found by one search per 100 names and created in
        one batch per 100 missing; a name HubSpot refuses is left out (its person is still
        written, unlinked). Names :meth:`find` just ``searched`` for are not searched again."""
        await self.find([n for n in names if _key(n) not in searched])
        wanted = {_key(n): n.strip() for n in names if n.strip()}
        new = [k for k in wanted if k not in self._ids]
        for start in range(0, len(new), BATCH):
            inputs = [{"properties": {"name": wanted[k]}} for k in new[start : start + BATCH]]
            path = f"{COMPANIES}/batch/create"
            response = await self._call("POST", path, body={"inputs": inputs}, ok=_RECORD_ANSWERS)
            if response.is_success:
                for made in records(self._connector, response):
                    self._ids.setdefault(_key(made["properties"].get("name") or ""), made["id"])
        return {name: self._ids[_key(name)] for name in names if _key(name) in self._ids}

    async def _search(self, names: Sequence[str]) -> dict[str, str]:
        """The oldest company id of each name (any case), by ``name IN (...)``."""
        out: dict[str, str] = {}
        after = "0"
        while True:
            body = {
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": "name",
                                "operator": "IN",
                                "values": [n.lower() for n in names],
                            }
                        ]
                    }
                ],
                "properties": ["name"],
                "limit": 100,
                "after": after,
            }
            answer = await self._call("POST", f"{COMPANIES}/search", body=body, idempotent=True)
            for found in records(self._connector, answer):
                key = _key(found["properties"].get("name") or "")
                if key not in out or (len(found["id"]), found["id"]) < (len(out[key]), out[key]):
                    out[key] = found["id"]
            paging = json_object(self._connector, answer).get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(nxt, dict) or not nxt.get("after"):
                return out
            after = str(nxt["after"])

    async def link(self, contact_id: str, company_id: str) -> bool:
        """Associate a contact with a company (HubSpot's default type, 279); idempotent."""
        path = f"/crm/v4/objects/contact/{contact_id}/associations/default/company/{company_id}"
        response = await self._call("PUT", path, ok=_RECORD_ANSWERS)
        return response.is_success
