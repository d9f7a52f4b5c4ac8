"""The person's company in HubSpot: found by name or created, then associated.

Companies are not people: when several companies share the name, the oldest is used (a
company picked wrongly is a visible, harmless link; a person picked wrongly is not, which is
why contacts are never guessed). Names already resolved are kept in memory for the client's
life, which also covers the seconds HubSpot's search index lags behind a create.
Docs: https://developers.hubspot.com/docs/api/crm/companies and
https://developers.hubspot.com/docs/api-reference/latest/crm/associations/overview
"""

from __future__ import annotations

from connectors._http import json_object
from connectors.hubspot.lookup import Call, records
from connectors.hubspot.mapping import CONTACT_TO_COMPANY

COMPANIES = "/crm/v3/objects/companies"
_RECORD_ANSWERS = frozenset({*range(200, 300), 400, 404, 409})


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

    async def id_of(self, name: str) -> str | None:
        """The id of the company called ``name``, created if there is none; None if HubSpot
        refuses the company (the person is still written, unlinked)."""
        key = " ".join(name.split()).casefold()
        if key in self._ids:
            return self._ids[key]
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "name", "operator": "EQ", "value": name}]}
            ],
            "properties": ["name"],
            "limit": 100,
        }
        answer = await self._call("POST", f"{COMPANIES}/search", body=body, idempotent=True)
        found = records(self._connector, answer)
        if found:
            company_id = min((r["id"] for r in found), key=lambda i: (len(i), i))
        else:
            response = await self._call(
                "POST", COMPANIES, body={"properties": {"name": name}}, ok=_RECORD_ANSWERS
            )
            if not response.is_success:
                return None
            company_id = str(json_object(self._connector, response).get("id") or "")
            if not company_id:
                return None
        self._ids[key] = company_id
        return company_id

    async def link(self, contact_id: str, company_id: str) -> bool:
        """Associate a contact with a company (HubSpot's default type, 279); idempotent."""
        path = f"/crm/v4/objects/contact/{contact_id}/associations/default/company/{company_id}"
        response = await self._call("PUT", path, ok=_RECORD_ANSWERS)
        return response.is_success
