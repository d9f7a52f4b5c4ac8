"""The HubSpot sandbox's communications endpoints: create (one, or a batch with inline
associations), read (one, or a batch), their property definitions, and the v4 list of a
contact's communications, with HubSpot's 403 ``MISSING_SCOPES`` for a token that lacks the
scope (https://developers.hubspot.com/docs/api/crm/communications)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.requests import Request

from connectors.hubspot.mapping import CONTACT_TO_COMMUNICATION, PropertyCreate, PropertyOption
from connectors.hubspot.sandbox import http as h
from connectors.hubspot.sandbox.communications import CommunicationStore, association_target
from connectors.hubspot.sandbox.store import ContactStore, HubSpotError, now_iso

#: The v4 association list answers at most 500 a page.
ASSOCIATION_PAGE = 500


def property_create(body: Mapping[str, object]) -> PropertyCreate:
    """The body of ``POST /crm/v3/properties/{object}``, checked; a ``bool`` property must be
    a ``booleancheckbox``."""
    create: PropertyCreate = {
        "name": h.text(body.get("name"), "name"),
        "label": h.text(body.get("label"), "label"),
        "type": h.text(body.get("type"), "type"),
        "fieldType": h.text(body.get("fieldType"), "fieldType"),
        "groupName": h.text(body.get("groupName"), "groupName"),
        "hasUniqueValue": body.get("hasUniqueValue") is True,
        "formField": body.get("formField") is True,
    }
    if isinstance(body.get("description"), str):
        create["description"] = str(body["description"])
    if create["type"] == "bool" and create["fieldType"] != "booleancheckbox":
        raise h.bad_input("A bool property takes the fieldType booleancheckbox.")
    options = body.get("options")
    if options is not None:
        create["options"] = [_option(o, n) for n, o in enumerate(h.objects(options, "options"))]
    return create


def _option(item: Mapping[str, object], order: int) -> PropertyOption:
    order_value = item.get("displayOrder")
    return {
        "label": h.text(item.get("label"), "options.label"),
        "value": h.text(item.get("value"), "options.value"),
        "displayOrder": order_value if isinstance(order_value, int) else order,
        "hidden": item.get("hidden") is True,
    }


def page(request: Request, results: list[dict[str, object]]) -> dict[str, object]:
    """One page of a v4 association list by the query's ``limit`` (at most 500) and
    ``after`` (an offset, as an opaque string)."""
    limit = max(1, min(ASSOCIATION_PAGE, h.number(request.query_params.get("limit"), 500)))
    after = h.number(request.query_params.get("after"), 0)
    answer: dict[str, object] = {"results": results[after : after + limit]}
    if after + limit < len(results):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


class CommunicationsApi:
    """The handlers; ``refused(request)`` says whether the request's token lacks the scope."""

    def __init__(
        self,
        store: CommunicationStore,
        contacts: ContactStore,
        refused: Callable[[Request], bool],
    ) -> None:
        self.store = store
        self.contacts = contacts
        self._refused = refused

    def check_scope(self, request: Request) -> None:
        """A 403 ``MISSING_SCOPES`` when the token may not touch communications."""
        if self._refused(request):
            raise HubSpotError(403, "MISSING_SCOPES", h.MISSING_SCOPES_MESSAGE)

    # -- properties ----------------------------------------------------------------------

    async def list_properties(self, request: Request) -> tuple[int, object]:
        self.check_scope(request)
        return 200, {"results": list(self.store.properties.values())}

    async def get_property(self, request: Request) -> tuple[int, object]:
        self.check_scope(request)
        found = self.store.properties.get(request.path_params["name"])
        if found is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No communication property has that name.")
        return 200, found

    async def create_property(self, request: Request) -> tuple[int, object]:
        self.check_scope(request)
        return 201, self.store.add_property(property_create(await h.json_object(request)))

    # -- records -------------------------------------------------------------------------

    def _input(self, item: Mapping[str, object]) -> tuple[dict[str, str], list[str]]:
        props = self.store.validate(h.property_values(item.get("properties")))
        contacts = [association_target(a) for a in h.objects(item.get("associations", []), "x")]
        for contact_id in contacts:
            self.contacts.require(contact_id)
        return props, contacts

    async def create(self, request: Request) -> tuple[int, object]:
        self.check_scope(request)
        props, contacts = self._input(await h.json_object(request))
        made = self.store.create(props, contacts)
        return 201, self.store.view(made, list(props))

    async def batch_create(self, request: Request) -> tuple[int, object]:
        """All or nothing, as HubSpot's batch create: one bad input refuses the batch."""
        self.check_scope(request)
        accepted = [self._input(item) for item in h.batch_inputs(await h.json_object(request))]
        made = [self.store.create(props, contacts) for props, contacts in accepted]
        stamp = now_iso()
        results = [self.store.view(m, list(p)) for m, (p, _) in zip(made, accepted, strict=True)]
        return 201, {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp,
            "completedAt": stamp,
        }

    async def get(self, request: Request) -> tuple[int, object]:
        self.check_scope(request)
        made = self.store.communications.get(request.path_params["communication_id"])
        if made is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No communication has that id.")
        raw = request.query_params.get("properties")
        wanted = [p for p in raw.split(",") if p] if raw else None
        answer: dict[str, object] = dict(self.store.view(made, wanted))
        if request.query_params.get("associations"):
            linked = [c for c, ids in self.store.links.items() if made.id in ids]
            answer["associations"] = {
                "contacts": {
                    "results": [{"id": c, "type": "communication_to_contact"} for c in linked]
                }
            }
        return 200, answer

    async def batch_read(self, request: Request) -> tuple[int, object]:
        """Found ones, and a 207 naming the ids that are not there."""
        self.check_scope(request)
        body = await h.json_object(request)
        if body.get("idProperty") is not None:
            raise h.bad_input("The sandbox reads communications by record id only.")
        wanted = h.string_list(body.get("properties"))
        found, missing = [], []
        for item in h.batch_inputs(body):
            key = h.text(item.get("id"), "id")
            made = self.store.communications.get(key)
            if made is None:
                missing.append(key)
            else:
                found.append(self.store.view(made, wanted))
        stamp = now_iso()
        answer: dict[str, object] = {
            "status": "COMPLETE",
            "results": found,
            "startedAt": stamp,
            "completedAt": stamp,
        }
        if not missing:
            return 200, answer
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Some of the requested communications do not exist or were archived.",
                "context": {"ids": missing},
                "errors": [],
            }
        ]
        return 207, answer

    # -- associations --------------------------------------------------------------------

    async def of_contact(self, request: Request) -> tuple[int, object]:
        """``GET /crm/v4/objects/contact/{id}/associations/communication``, paged."""
        self.check_scope(request)
        contact_id = request.path_params["contact_id"]
        self.contacts.require(contact_id)
        results: list[dict[str, object]] = [
            {
                "toObjectId": int(made.id),
                "associationTypes": [
                    {
                        "category": "HUBSPOT_DEFINED",
                        "typeId": CONTACT_TO_COMMUNICATION,
                        "label": None,
                    }
                ],
            }
            for made in self.store.of(contact_id)
        ]
        return 200, page(request, results)
