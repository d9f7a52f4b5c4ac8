"""The HubSpot sandbox's companies and contact→company associations. No HTTP here.

Companies are their own object type with their own ids; a contact is linked to a company
by an association of type 279 (contact → company, HUBSPOT_DEFINED), the type the v4
"default" endpoint creates (https://developers.hubspot.com/docs/api-reference/latest/crm/associations/overview).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.hubspot.mapping import CONTACT_TO_COMPANY
from connectors.hubspot.sandbox.store import HubSpotError, now_iso


@dataclass(slots=True)
class Company:
    """One stored company."""

    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str


@dataclass(slots=True)
class CompanyStore:
    """Companies by id, and which companies each contact is associated with."""

    companies: dict[str, Company] = field(default_factory=dict)
    #: contact id -> {company id: association type id}
    links: dict[str, dict[str, int]] = field(default_factory=dict)
    _last_id: int = 5000

    def create(self, properties: dict[str, str]) -> Company:
        """Store a company; HubSpot requires nothing but warns on a nameless one, so do we."""
        if not properties.get("name", "").strip():
            raise HubSpotError(400, "VALIDATION_ERROR", "A company needs a name property.")
        self._last_id += 1
        stamp = now_iso()
        company = Company(str(self._last_id), dict(properties), stamp, stamp)
        company.properties["hs_object_id"] = company.id
        self.companies[company.id] = company
        return company

    def require(self, company_id: str) -> Company:
        company = self.companies.get(company_id)
        if company is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No company has that id.")
        return company

    def link(self, contact_id: str, company_id: str, type_id: int = CONTACT_TO_COMPANY) -> None:
        """Associate a contact with a company (idempotent)."""
        self.require(company_id)
        self.links.setdefault(contact_id, {})[company_id] = type_id

    def of(self, contact_id: str) -> list[Company]:
        """The companies a contact is associated with, oldest first."""
        ids = sorted(self.links.get(contact_id, {}), key=int)
        return [self.companies[i] for i in ids if i in self.companies]

    def view(self, company: Company, wanted: list[str] | None = None) -> dict[str, object]:
        names = dict.fromkeys([*(wanted or ["name", "domain"]), "hs_object_id"])
        return {
            "id": company.id,
            "properties": {n: company.properties.get(n) or None for n in names},
            "createdAt": company.created_at,
            "updatedAt": company.updated_at,
            "archived": False,
        }

    def clear(self) -> None:
        self.companies.clear()
        self.links.clear()
