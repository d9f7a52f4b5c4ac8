"""A stateful local emulator of HubSpot's CRM v3 contacts and properties APIs and of its
OAuth token refresh, as one ASGI app (see :class:`rig.sandbox.SandboxCore`).

Emulated: Bearer auth (401 ``INVALID_AUTHENTICATION`` / ``EXPIRED_AUTHENTICATION``), the
refresh-token grant, contacts by id or unique ``idProperty``, batch read/create/update/
upsert/archive (at most 100 inputs; read answers 207 for missing ids; create takes
``associations``), the GDPR delete (permanent, associations gone, an unknown email
blocklisted, its communications gone with it), datetime and bool property values, search
(EQ, NEQ, IN, HAS_PROPERTY, CONTAINS_TOKEN with ``*``), property definitions, validation and
unique values, companies with their search, contact→company associations (v4 default),
communications (:mod:`connectors.hubspot.sandbox.communications_api`; a token without their
scope: :meth:`HubSpotSandbox.deny_communications`), account details, and a rolling per-token
rate limit with HubSpot's headers.
"""

from __future__ import annotations

import fnmatch
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.hubspot import mapping
from connectors.hubspot.mapping import (
    BatchResponse,
    SimplePublicObject,
    StandardError,
)
from connectors.hubspot.sandbox import http as h
from connectors.hubspot.sandbox.communications import CommunicationStore
from connectors.hubspot.sandbox.communications_api import CommunicationsApi, page, property_create
from connectors.hubspot.sandbox.companies import CompanyStore
from connectors.hubspot.sandbox.store import Contact, ContactStore, HubSpotError, now_iso
from rig.sandbox import CONTROL_PREFIX, SandboxCore, SlidingWindow

Handler = Callable[[Request], Awaitable[tuple[int, object]]]
_CONTACTS = "/crm/v3/objects/contacts"
_COMPANIES = "/crm/v3/objects/companies"
#: The sandbox's account, as ``GET /account-info/v3/details`` answers it.
PORTAL_ID = 4_815_162
ACCOUNT_DETAILS = {
    "portalId": PORTAL_ID,
    "accountType": "STANDARD",
    "timeZone": "Europe/Paris",
    "companyCurrency": "EUR",
    "additionalCurrencies": [],
    "utcOffset": "+01:00",
    "utcOffsetMilliseconds": 3_600_000,
    "uiDomain": "app-eu1.hubspot.com",
    "dataHostingLocation": "eu1",
}


class HubSpotSandbox:
    """HubSpot CRM v3 (contacts) on one ASGI app: ``app``; state in ``store``."""

    #: (method, path prefix) of the requests that write person records: where a test or a
    #: benchmark injects faults "after the write" (see SandboxCore.break_next).
    WRITE_REQUEST: ClassVar[tuple[str, str]] = ("POST", "/crm/v3/objects/contacts/batch/create")

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        oauth_clients: Mapping[str, tuple[str, str]] | None = None,
        rate_limit: int = 100,
        rate_interval: float = 10.0,
    ) -> None:
        self.core = SandboxCore("hubspot", error_body=h.fault_body, tokens=tokens)
        self.store = ContactStore()
        self.companies = CompanyStore()
        self.communications = CommunicationStore()
        #: Tokens whose app lacks the scope for communications (403 MISSING_SCOPES);
        #: ``"*"`` stands for every token.
        self.without_communications: set[str] = set()
        self._communications_api = CommunicationsApi(
            self.communications, self.store, self._lacks_communications
        )
        self.oauth_clients = dict(oauth_clients or {})
        self.rate_limit = rate_limit
        self.rate_interval = rate_interval
        #: The rate limiter's clock; tests swap in one they move by hand.
        self.clock: Callable[[], float] = time.monotonic
        self._windows: dict[str, SlidingWindow] = {}
        self._daily: dict[str, int] = {}
        vendor = Starlette(routes=self._routes())
        self.app = h.CorrelationIds(
            self.core.wrap(
                vendor,
                snapshot=self.snapshot,
                reset_records=self._reset_records,
                extra_routes=self._control_routes(),
            )
        )

    # -- what tests, the demo and `syncd sandbox` use -----------------------------------

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Every contact and company: ``{"contacts": [{"id", "properties", "companies"}],
        "companies": [{"id", "properties"}]}``."""
        return {
            "contacts": [
                {
                    "id": c.id,
                    "properties": dict(c.properties),
                    "companies": [co.id for co in self.companies.of(c.id)],
                }
                for c in self.store.contacts.values()
            ],
            "companies": [
                {"id": co.id, "properties": dict(co.properties)}
                for co in self.companies.companies.values()
            ],
        }

    def deny_communications(self, *tokens: str) -> None:
        """From now on, answer ``tokens`` (every token when none is named) 403
        ``MISSING_SCOPES`` on communications, as HubSpot answers an app without the scope."""
        self.without_communications |= set(tokens) or {"*"}

    def _lacks_communications(self, request: Request) -> bool:
        token = self.core.bearer(request)
        return "*" in self.without_communications or token in self.without_communications

    def _control_routes(self) -> list[BaseRoute]:
        async def scopes(request: Request) -> Response:
            # {"communications": false} takes the scope from every token; true gives it back.
            body = await h.json_object(request)
            if body.get("communications") is False:
                self.deny_communications()
            elif body.get("communications") is True:
                self.without_communications.clear()
            return JSONResponse({"communications": not self.without_communications})

        return [Route(CONTROL_PREFIX + "scopes", scopes, methods=["POST"])]

    def company_names(self, contact_id: str) -> list[str]:
        """The names of the companies a contact is associated with."""
        return [co.properties.get("name", "") for co in self.companies.of(contact_id)]

    def rows(self) -> list[dict[str, str]]:
        """Every contact as one display row (the demo prints them side by side)."""
        out = []
        for contact in sorted(self.store.contacts.values(), key=_num):
            props = contact.properties
            name = f"{props.get('firstname', '')} {props.get('lastname', '')}".strip()
            out.append(
                {
                    "id": contact.id,
                    "name": name,
                    "email": props.get("email", ""),
                    "company": ", ".join(self.company_names(contact.id))
                    or props.get("company", ""),
                    "title": props.get("jobtitle", ""),
                }
            )
        return out

    def edit(self, record_id: str, prop: str, value: str) -> None:
        """Change one property of a contact, as a person would in HubSpot's UI."""
        self.store.update(self.store.require(record_id), {prop: value})

    def contact_count(self) -> int:
        """How many contacts exist (archived ones are gone)."""
        return len(self.store.contacts)

    def config_table(self, root_url: str) -> dict[str, object]:
        """The config keys that point a ``hubspot`` instance at this sandbox."""
        return {"type": "hubspot", "base_url": root_url}

    def credential(self, token: str) -> str:
        """What `syncd auth set` stores for ``token``: a private-app token is used as is."""
        return token

    def _reset_records(self) -> None:
        # Property definitions stay: deleting records in HubSpot does not delete them.
        self.store.contacts.clear()
        self.store.archived.clear()
        self.store.blocklist.clear()
        self.companies.clear()
        self.communications.clear()
        self._windows.clear()
        self._daily.clear()

    # -- plumbing ------------------------------------------------------------------------

    def _route(self, path: str, handler: Handler, method: str, *, auth: bool = True) -> Route:
        async def endpoint(request: Request) -> Response:
            cid = h.new_correlation_id()
            headers = {h.CORRELATION_HEADER: cid}
            if auth:
                token = self.core.bearer(request)
                if not self.core.accepts(token):
                    expired = token is not None and token in self.core.expired
                    category = "EXPIRED_AUTHENTICATION" if expired else "INVALID_AUTHENTICATION"
                    what = "has expired" if expired else "is missing or not valid"
                    body = h.error_body(401, category, f"The access token {what}.", cid)
                    return JSONResponse(body, 401, headers)
                assert token is not None
                window = self._windows.get(token) or SlidingWindow(
                    self.rate_limit, self.rate_interval, lambda: self.clock()
                )
                self._windows[token] = window
                throttle = window.hit()
                self._daily[token] = self._daily.get(token, 0) + int(throttle.allowed)
                headers |= h.rate_headers(throttle, self.rate_interval, self._daily[token])
                if not throttle.allowed or self._daily[token] > h.DAILY_LIMIT:
                    policy = "TEN_SECONDLY_ROLLING" if not throttle.allowed else "DAILY"
                    return JSONResponse(h.rate_limit_body(policy, cid), 429, headers)
            try:
                status, answer = await handler(request)
            except HubSpotError as error:
                return JSONResponse(h.from_exception(error, cid), error.status, headers)
            if status == 204:
                return Response(status_code=204, headers=headers)
            return JSONResponse(answer, status, headers)

        return Route(path, endpoint, methods=[method])

    def _routes(self) -> list[Route]:
        c = _CONTACTS
        api = self._communications_api
        m = mapping.COMMUNICATIONS
        return [
            self._route("/crm/v3/properties/communications", api.list_properties, "GET"),
            self._route("/crm/v3/properties/communications", api.create_property, "POST"),
            self._route("/crm/v3/properties/communications/{name}", api.get_property, "GET"),
            self._route(m, api.create, "POST"),
            self._route(m + "/batch/create", api.batch_create, "POST"),
            self._route(m + "/batch/read", api.batch_read, "POST"),
            self._route(m + "/{communication_id}", api.get, "GET"),
            self._route("/oauth/v1/token", self._token, "POST", auth=False),
            self._route("/crm/v3/properties/contacts", self._list_properties, "GET"),
            self._route("/crm/v3/properties/contacts", self._create_property, "POST"),
            self._route("/crm/v3/properties/contacts/{name}", self._get_property, "GET"),
            self._route(c + "/batch/read", self._batch_read, "POST"),
            self._route(c + "/batch/create", self._batch_create, "POST"),
            self._route(c + "/batch/update", self._batch_update, "POST"),
            self._route(c + "/batch/upsert", self._batch_upsert, "POST"),
            self._route(c + "/batch/archive", self._batch_archive, "POST"),
            self._route(c + "/search", self._search, "POST"),
            self._route(c + "/gdpr-delete", self._gdpr_delete, "POST"),
            self._route(c, self._list, "GET"),
            self._route(c, self._create, "POST"),
            self._route(c + "/{contact_id}", self._get, "GET"),
            self._route(c + "/{contact_id}", self._patch, "PATCH"),
            self._route(c + "/{contact_id}", self._archive, "DELETE"),
            self._route(_COMPANIES, self._create_company, "POST"),
            self._route(_COMPANIES + "/search", self._search_companies, "POST"),
            self._route(_COMPANIES + "/batch/create", self._batch_create_companies, "POST"),
            self._route(_COMPANIES + "/{company_id}", self._get_company, "GET"),
            self._route(
                "/crm/v4/objects/{from_type}/{contact_id}/associations/default/{to_type}/{company_id}",
                self._associate,
                "PUT",
            ),
            self._route(
                "/crm/v4/objects/{from_type}/{contact_id}/associations/{to_type}",
                self._associations,
                "GET",
            ),
            self._route("/account-info/v3/details", self._account, "GET"),
        ]

    # -- OAuth ---------------------------------------------------------------------------

    async def _token(self, request: Request) -> tuple[int, object]:
        # Form-encoded; parsed here so the sandbox needs no multipart library.
        form = dict(parse_qsl((await request.body()).decode("latin-1")))
        refresh = form.get("refresh_token", "")
        client = self.oauth_clients.get(refresh)
        if form.get("grant_type") != "refresh_token" or client is None:
            return 400, _oauth_error("BAD_REFRESH_TOKEN", "The refresh token is not known.")
        if (form.get("client_id"), form.get("client_secret")) != client:
            return 400, _oauth_error("BAD_CLIENT_ID", "The client id or secret is wrong.")
        access = secrets.token_urlsafe(16)
        self.core.tokens.add(access)
        return 200, {
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": 1800,
        }

    # -- properties ----------------------------------------------------------------------

    async def _list_properties(self, _: Request) -> tuple[int, object]:
        return 200, {"results": list(self.store.properties.values())}

    async def _get_property(self, request: Request) -> tuple[int, object]:
        definition = self.store.properties.get(request.path_params["name"])
        if definition is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No contact property has that name.")
        return 200, definition

    async def _create_property(self, request: Request) -> tuple[int, object]:
        return 201, self.store.add_property(property_create(await h.json_object(request)))

    # -- single records ------------------------------------------------------------------

    async def _list(self, request: Request) -> tuple[int, object]:
        limit = max(1, min(100, h.number(request.query_params.get("limit"), 10)))
        after = h.number(request.query_params.get("after"), 0)
        wanted = _query_list(request, "properties")
        page = sorted((c for c in self.store.contacts.values() if int(c.id) > after), key=_num)
        results = [self.store.view(c, wanted) for c in page[:limit]]
        answer: dict[str, object] = {"results": results}
        if len(page) > limit:
            answer["paging"] = {"next": {"after": results[-1]["id"]}}
        return 200, answer

    async def _create(self, request: Request) -> tuple[int, object]:
        props = h.property_values((await h.json_object(request)).get("properties"))
        contact = self.store.create(self.store.validate(props))
        return 201, self.store.view(contact, list(props))

    async def _get(self, request: Request) -> tuple[int, object]:
        contact = self.store.require(
            request.path_params["contact_id"], request.query_params.get("idProperty")
        )
        return 200, self.store.view(contact, _query_list(request, "properties"))

    async def _patch(self, request: Request) -> tuple[int, object]:
        contact = self.store.require(
            request.path_params["contact_id"], request.query_params.get("idProperty")
        )
        props = h.property_values((await h.json_object(request)).get("properties"))
        self.store.update(contact, self.store.validate(props, own_id=contact.id))
        return 200, self.store.view(contact, list(props))

    async def _archive(self, request: Request) -> tuple[int, object]:
        self.store.archive(request.path_params["contact_id"])
        self.companies.links.pop(request.path_params["contact_id"], None)
        return 204, None

    async def _gdpr_delete(self, request: Request) -> tuple[int, object]:
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

    async def _batch_read(self, request: Request) -> tuple[int, object]:
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

    async def _batch_create(self, request: Request) -> tuple[int, object]:
        # All or nothing: one bad input fails the whole batch, as HubSpot does by default.
        accepted: list[dict[str, str]] = []
        links: list[list[tuple[str, int]]] = []
        for item in h.batch_inputs(await h.json_object(request)):
            props = h.property_values(item.get("properties"))
            accepted.append(self.store.validate(props, pending=accepted))
            links.append(self._association_inputs(item.get("associations", [])))
        created = [self.store.create(clean) for clean in accepted]
        for contact, wanted in zip(created, links, strict=True):
            for company_id, type_id in wanted:
                self.companies.link(contact.id, company_id, type_id)
        pairs = zip(created, accepted, strict=True)
        return 201, _batch([self.store.view(c, list(p)) for c, p in pairs])

    async def _batch_update(self, request: Request) -> tuple[int, object]:
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

    async def _batch_upsert(self, request: Request) -> tuple[int, object]:
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

    async def _batch_archive(self, request: Request) -> tuple[int, object]:
        for item in h.batch_inputs(await h.json_object(request)):
            self.store.archive(h.text(item.get("id"), "id"))
            self.companies.links.pop(h.text(item.get("id"), "id"), None)
        return 204, None

    # -- companies and associations ------------------------------------------------------

    def _association_inputs(self, value: object) -> list[tuple[str, int]]:
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
                self.companies.require(company_id)
                out.append((company_id, mapping.CONTACT_TO_COMPANY))
        return out

    async def _create_company(self, request: Request) -> tuple[int, object]:
        props = h.property_values((await h.json_object(request)).get("properties"))
        company = self.companies.create(props)
        return 201, self.companies.view(company, list(props))

    async def _batch_create_companies(self, request: Request) -> tuple[int, object]:
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

    async def _get_company(self, request: Request) -> tuple[int, object]:
        company = self.companies.require(request.path_params["company_id"])
        return 200, self.companies.view(company, _query_list(request, "properties"))

    async def _search_companies(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        tests = _filter_groups(body)
        hits = [
            co
            for co in sorted(self.companies.companies.values(), key=lambda co: int(co.id))
            if not tests or any(all(t(co.properties) for t in group) for group in tests)
        ]
        return 200, _page(
            body, [self.companies.view(co, h.string_list(body.get("properties"))) for co in hits]
        )

    async def _associate(self, request: Request) -> tuple[int, object]:
        p = request.path_params
        if p["from_type"] not in ("contact", "contacts", "0-1") or p["to_type"] not in (
            "company",
            "companies",
            "0-2",
        ):
            raise h.bad_input("The sandbox only associates contacts with companies.")
        self.store.require(p["contact_id"])
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

    async def _associations(self, request: Request) -> tuple[int, object]:
        """A contact's companies, or its communications; paged (``limit`` up to 500)."""
        p = request.path_params
        if p["to_type"] in ("communication", "communications", mapping.COMMUNICATION_TYPE_ID):
            if p["from_type"] not in ("contact", "contacts", "0-1"):
                raise h.bad_input("The sandbox lists communications of contacts only.")
            return await self._communications_api.of_contact(request)
        self.store.require(p["contact_id"])
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

    async def _account(self, _: Request) -> tuple[int, object]:
        return 200, ACCOUNT_DETAILS

    # -- search --------------------------------------------------------------------------

    async def _search(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        tests = _filter_groups(body)
        hits = [
            c
            for c in sorted(self.store.searchable(), key=_num)
            if not tests or any(all(t(c.properties) for t in group) for group in tests)
        ]
        wanted = h.string_list(body.get("properties"))
        return 200, _page(body, [self.store.view(c, wanted) for c in hits])


def _filter_groups(body: Mapping[str, object]) -> list[list[Callable[[Mapping[str, str]], bool]]]:
    """A search body's ``filterGroups`` (ORed) of ``filters`` (ANDed), with HubSpot's limits:
    at most 5 groups, 6 filters a group, 18 filters in all."""
    groups = h.objects(body.get("filterGroups", []), "filterGroups")
    filters = [h.objects(g.get("filters"), "filters") for g in groups]
    if len(groups) > 5 or any(len(f) > 6 for f in filters) or sum(map(len, filters)) > 18:
        raise h.bad_input("A search takes at most 5 filter groups, 6 filters a group, 18 in all.")
    return [[_filter(f) for f in group] for group in filters]


def _page(body: Mapping[str, object], results: list[object]) -> dict[str, object]:
    """One page of search ``results`` by the body's ``limit`` (at most 200) and ``after``."""
    limit = max(1, min(200, h.number(body.get("limit"), 10)))
    after = h.number(body.get("after"), 0)
    answer: dict[str, object] = {"total": len(results), "results": results[after : after + limit]}
    if after + limit < len(results):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def _filter(spec: Mapping[str, object]) -> Callable[[Mapping[str, str]], bool]:
    """One search filter as a test on a record's properties (EQ, NEQ, IN, HAS_PROPERTY,
    NOT_HAS_PROPERTY, CONTAINS_TOKEN where ``*`` stands for any text)."""
    name = h.text(spec.get("propertyName"), "propertyName")
    operator = spec.get("operator")
    value = str(spec.get("value", "")).lower()
    raw_values = spec.get("values")
    values = {str(v).lower() for v in raw_values} if isinstance(raw_values, list) else set()
    tests: dict[object, Callable[[str], bool]] = {
        "EQ": lambda have: have == value,
        "NEQ": lambda have: have != value,
        "IN": lambda have: have in values,
        "HAS_PROPERTY": lambda have: have != "",
        "NOT_HAS_PROPERTY": lambda have: have == "",
        "CONTAINS_TOKEN": lambda have: fnmatch.fnmatchcase(
            have, value if "*" in value else f"*{value}*"
        ),
    }
    if operator not in tests:
        raise h.bad_input("The filter operator is not supported.")
    test = tests[operator]
    return lambda props: test((props.get(name) or "").lower())


def _batch(results: list[SimplePublicObject]) -> BatchResponse:
    stamp = now_iso()
    return {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}


def _oauth_error(status: str, message: str) -> dict[str, str]:
    # The token endpoint answers its own shape: the reason is in "status".
    return {"status": status, "message": message, "correlationId": h.new_correlation_id()}


def _query_list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    return [p for p in raw.split(",") if p] if raw else None


def _num(contact: Contact) -> int:
    return int(contact.id)
