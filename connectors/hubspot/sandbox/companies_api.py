"""The HubSpot sandbox's companies endpoints (create, batch create, read, search) and its v4
associations: a contact linked to a company (type 279, the "default" endpoint), and the
list of a contact's companies or communications."""

from __future__ import annotations

from starlette.requests import Request

from connectors.hubspot import mapping
from connectors.hubspot.sandbox import http as h
from connectors.hubspot.sandbox.communications_api import CommunicationsApi, page
from connectors.hubspot.sandbox.companies import CompanyStore
from connectors.hubspot.sandbox.search import filter_groups, search_page
from connectors.hubspot.sandbox.store import ContactStore, now_iso


def association_inputs(companies: CompanyStore, value: object) -> list[tuple[str, int]]:
    """``associations`` of a create input: ``[{"to": {"id"}, "types": [{...}]}]``."""
    out: list[tuple[str, int]] = []
    for assoc in h.objects(value, "associations"):
        to = assoc.get("to")
        company_id = h.text(to.get("id") if isinstance(to, dict) else None, "to.id")
        for kind in h.objects(assoc.get("types"), "types"):
            if (
                kind.get("associationCategory") != "HUBSPOT_DEFINED"
                or kind.get("associationTypeId") != mapping.CONTACT_TO_COMPANY
            ):
                raise h.bad_input("The sandbox only knows contact-to-company (279).")
            companies.require(company_id)
            out.append((company_id, mapping.CONTACT_TO_COMPANY))
    return out


class CompaniesApi:
    """The handlers; a contact's communications are listed by ``communications``."""

    def __init__(
        self,
        companies: CompanyStore,
        contacts: ContactStore,
        communications: CommunicationsApi,
    ) -> None:
        self.companies = companies
        self.contacts = contacts
        self.communications = communications

    async def create(self, request: Request) -> tuple[int, object]:
        props = h.property_values((await h.json_object(request)).get("properties"))
        company = self.companies.create(props)
        return 201, self.companies.view(company, list(props))

    async def batch_create(self, request: Request) -> tuple[int, object]:
        inputs = h.batch_inputs(await h.json_object(request))
        props = [h.property_values(item.get("properties")) for item in inputs]
        for p in props:  # all or nothing, as for contacts
            if not p.get("name", "").strip():
                raise h.bad_input("A company needs a name property.")
        made = [self.companies.create(p) for p in props]
        stamp = now_iso()
        results = [self.companies.view(co, list(p)) for co, p in zip(made, props, strict=True)]
        return 201, {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp,
            "completedAt": stamp,
        }

    async def get(self, request: Request) -> tuple[int, object]:
        company = self.companies.require(request.path_params["company_id"])
        return 200, self.companies.view(company, h.query_list(request, "properties"))

    async def search(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        tests = filter_groups(body)
        hits = [
            co
            for co in sorted(self.companies.companies.values(), key=lambda co: int(co.id))
            if not tests or any(all(t(co.properties) for t in group) for group in tests)
        ]
        return 200, search_page(
            body, [self.companies.view(co, h.string_list(body.get("properties"))) for co in hits]
        )

    # -- associations --------------------------------------------------------------------

    async def associate(self, request: Request) -> tuple[int, object]:
        p = request.path_params
        if p["from_type"] not in ("contact", "contacts", "0-1") or p["to_type"] not in (
            "company",
            "companies",
            "0-2",
        ):
            raise h.bad_input("The sandbox only associates contacts with companies.")
        self.contacts.require(p["contact_id"])
        self.companies.link(p["contact_id"], p["company_id"])
        stamp = now_iso()
        result = {
            "from": {"id": p["contact_id"]},
            "to": {"id": p["company_id"]},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": mapping.CONTACT_TO_COMPANY,
            },
        }
        return 200, {
            "status": "COMPLETE",
            "results": [result],
            "startedAt": stamp,
            "completedAt": stamp,
        }

    async def associations(self, request: Request) -> tuple[int, object]:
        """A contact's companies, or its communications; paged (``limit`` up to 500)."""
        p = request.path_params
        if p["to_type"] in ("communication", "communications", mapping.COMMUNICATION_TYPE_ID):
            if p["from_type"] not in ("contact", "contacts", "0-1"):
                raise h.bad_input("The sandbox lists communications of contacts only.")
            return await self.communications.of_contact(request)
        self.contacts.require(p["contact_id"])
        results: list[dict[str, object]] = [
            {
                "toObjectId": int(co_id),
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                ],
            }
            for co_id, type_id in sorted(self.companies.links.get(p["contact_id"], {}).items())
        ]
        return 200, page(request, results)
