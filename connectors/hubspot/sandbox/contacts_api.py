"""The HubSpot sandbox's contacts endpoints: contact property definitions, one contact
(list, create, read, update, archive), batches (read, create with associations, update,
upsert, archive), search, and the GDPR delete."""

from __future__ import annotations

from starlette.requests import Request

from connectors.hubspot.mapping import BatchResponse, SimplePublicObject, StandardError
from connectors.hubspot.sandbox import http as h
from connectors.hubspot.sandbox.communications import CommunicationStore
from connectors.hubspot.sandbox.communications_api import property_create
from connectors.hubspot.sandbox.companies import CompanyStore
from connectors.hubspot.sandbox.companies_api import association_inputs
from connectors.hubspot.sandbox.search import filter_groups, search_page
from connectors.hubspot.sandbox.store import Contact, ContactStore, HubSpotError, now_iso


class ContactsApi:
    """The handlers; a contact's companies and communications go when it goes."""

    def __init__(
        self,
        store: ContactStore,
        companies: CompanyStore,
        communications: CommunicationStore,
    ) -> None:
        self.store = store
        self.companies = companies
        self.communications = communications

    # -- properties ----------------------------------------------------------------------

    async def list_properties(self, _: Request) -> tuple[int, object]:
        return 200, {"results": list(self.store.properties.values())}

    async def get_property(self, request: Request) -> tuple[int, object]:
        definition = self.store.properties.get(request.path_params["name"])
        if definition is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No contact property has that name.")
        return 200, definition

    async def batch_read_properties(self, request: Request) -> tuple[int, object]:
        # Found definitions in "results", unknown names as one OBJECT_NOT_FOUND error (207).
        names = [
            h.text(item.get("name"), "name")
            for item in h.batch_inputs(await h.json_object(request))
        ]
        found = [self.store.properties[n] for n in names if n in self.store.properties]
        missing = [n for n in names if n not in self.store.properties]
        answer: dict[str, object] = {"status": "COMPLETE", "results": found}
        if not missing:
            return 200, answer
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "No contact property has that name.",
                "context": {"names": missing},
            }
        ]
        return 207, answer

    async def create_property(self, request: Request) -> tuple[int, object]:
        return 201, self.store.add_property(property_create(await h.json_object(request)))

    # -- single records ------------------------------------------------------------------

    async def list_page(self, request: Request) -> tuple[int, object]:
        limit = max(1, min(100, h.number(request.query_params.get("limit"), 10)))
        after = h.number(request.query_params.get("after"), 0)
        wanted = h.query_list(request, "properties")
        page = sorted((c for c in self.store.contacts.values() if int(c.id) > after), key=_num)
        results = [self.store.view(c, wanted) for c in page[:limit]]
        answer: dict[str, object] = {"results": results}
        if len(page) > limit:
            answer["paging"] = {"next": {"after": results[-1]["id"]}}
        return 200, answer

    async def create(self, request: Request) -> tuple[int, object]:
        props = h.property_values((await h.json_object(request)).get("properties"))
        contact = self.store.create(self.store.validate(props))
        return 201, self.store.view(contact, list(props))

    async def get(self, request: Request) -> tuple[int, object]:
        contact = self.store.require(
            request.path_params["contact_id"], request.query_params.get("idProperty")
        )
        return 200, self.store.view(contact, h.query_list(request, "properties"))

    async def patch(self, request: Request) -> tuple[int, object]:
        contact = self.store.require(
            request.path_params["contact_id"], request.query_params.get("idProperty")
        )
        props = h.property_values((await h.json_object(request)).get("properties"))
        self.store.update(contact, self.store.validate(props, own_id=contact.id))
        return 200, self.store.view(contact, list(props))

    async def archive(self, request: Request) -> tuple[int, object]:
        self.store.archive(request.path_params["contact_id"])
        self.companies.links.pop(request.path_params["contact_id"], None)
        return 204, None

    async def gdpr_delete(self, request: Request) -> tuple[int, object]:
        """``{"objectId", "idProperty"?}``: 204 once the contact and its associations are
        gone for good; an ``email`` that no contact has is blocklisted (204 too).
        https://developers.hubspot.com/docs/api/crm/contacts (GDPR delete)."""
        body = await h.json_object(request)
        object_id = body.get("objectId")
        if (
            not isinstance(object_id, str | int)
            or isinstance(object_id, bool)
            or not str(object_id).strip()
        ):
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                "Invalid input: objectId must not be empty.",
                context={"objectId": ["must not be empty"]},
            )
        id_property = body.get("idProperty")
        id_property = h.text(id_property, "idProperty") if id_property is not None else None
        gone = self.store.gdpr_delete(str(object_id), id_property)
        if gone is not None:
            self.companies.links.pop(gone.id, None)
            self.communications.drop_contact(gone.id)  # the contact's associated content
        return 204, None

    # -- batches -------------------------------------------------------------------------

    async def batch_read(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        id_property = body.get("idProperty")
        id_property = h.text(id_property, "idProperty") if id_property is not None else None
        wanted = h.string_list(body.get("properties"))
        found: list[SimplePublicObject] = []
        missing: list[str] = []
        for item in h.batch_inputs(body):
            key = h.text(item.get("id"), "id")
            contact = self.store.get(key, id_property)
            if contact is None:
                missing.append(key)
            elif all(r["id"] != contact.id for r in found):
                found.append(self.store.view(contact, wanted))
        answer = _batch(found)
        if not missing:
            return 200, answer
        error: StandardError = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Some of the requested contacts do not exist or were archived.",
            "context": {"ids": missing},
            "errors": [],
        }
        answer["numErrors"] = 1
        answer["errors"] = [error]
        return 207, answer

    async def batch_create(self, request: Request) -> tuple[int, object]:
        # All or nothing: one bad input fails the whole batch, as HubSpot does by default.
        accepted: list[dict[str, str]] = []
        links: list[list[tuple[str, int]]] = []
        for item in h.batch_inputs(await h.json_object(request)):
            props = h.property_values(item.get("properties"))
            accepted.append(self.store.validate(props, pending=accepted))
            links.append(association_inputs(self.companies, item.get("associations", [])))
        created = [self.store.create(clean) for clean in accepted]
        for contact, wanted in zip(created, links, strict=True):
            for company_id, type_id in wanted:
                self.companies.link(contact.id, company_id, type_id)
        pairs = zip(created, accepted, strict=True)
        return 201, _batch([self.store.view(c, list(p)) for c, p in pairs])

    async def batch_update(self, request: Request) -> tuple[int, object]:
        staged = []
        for item in h.batch_inputs(await h.json_object(request)):
            id_property = item.get("idProperty")
            contact = self.store.require(
                h.text(item.get("id"), "id"), str(id_property) if id_property else None
            )
            props = h.property_values(item.get("properties"))
            staged.append((contact, self.store.validate(props, own_id=contact.id)))
        for contact, clean in staged:
            self.store.update(contact, clean)
        return 200, _batch([self.store.view(c, list(p)) for c, p in staged])

    async def batch_upsert(self, request: Request) -> tuple[int, object]:
        results: list[dict[str, object]] = []
        for item in h.batch_inputs(await h.json_object(request)):
            id_property = h.text(item.get("idProperty"), "idProperty")
            key = h.text(item.get("id"), "id")
            props = h.property_values(item.get("properties"))
            contact = self.store.get(key, id_property)
            new = contact is None
            if contact is None:
                contact = self.store.create(self.store.validate({**props, id_property: key}))
            else:
                self.store.update(contact, self.store.validate(props, own_id=contact.id))
            view = dict(self.store.view(contact, [*props, id_property]))
            results.append({**view, "new": new})
        answer: dict[str, object] = {**_batch([]), "results": results}
        return 200, answer

    async def batch_archive(self, request: Request) -> tuple[int, object]:
        for item in h.batch_inputs(await h.json_object(request)):
            self.store.archive(h.text(item.get("id"), "id"))
            self.companies.links.pop(h.text(item.get("id"), "id"), None)
        return 204, None

    # -- search --------------------------------------------------------------------------

    async def search(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        tests = filter_groups(body)
        hits = [
            c
            for c in sorted(self.store.searchable(), key=_num)
            if not tests or any(all(t(c.properties) for t in group) for group in tests)
        ]
        wanted = h.string_list(body.get("properties"))
        return 200, search_page(body, [self.store.view(c, wanted) for c in hits])


def _batch(results: list[SimplePublicObject]) -> BatchResponse:
    stamp = now_iso()
    return {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}


def _num(contact: Contact) -> int:
    return int(contact.id)
