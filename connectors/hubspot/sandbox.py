"""A stateful local emulator of HubSpot's CRM v3 contacts and properties APIs and of its
OAuth token refresh, as one ASGI app (see :class:`connectors._sandbox.SandboxCore`).

Emulated: Bearer auth (401 ``INVALID_AUTHENTICATION`` / ``EXPIRED_AUTHENTICATION``), the
refresh-token grant, contacts by id or unique ``idProperty``, batch read/create/update/
upsert/archive (at most 100 inputs; read answers 207 for missing ids), simple search,
property definitions, validation and unique values, and a rolling per-token rate limit
with HubSpot's headers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors._sandbox import SandboxCore, SlidingWindow
from connectors.hubspot import sandbox_http as h
from connectors.hubspot.mapping import (
    BatchResponse,
    PropertyCreate,
    SimplePublicObject,
    StandardError,
)
from connectors.hubspot.sandbox_store import Contact, ContactStore, HubSpotError, now_iso

Handler = Callable[[Request], Awaitable[tuple[int, object]]]
_CONTACTS = "/crm/v3/objects/contacts"


class HubSpotSandbox:
    """HubSpot CRM v3 (contacts) on one ASGI app: ``app``; state in ``store``."""

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
        self.oauth_clients = dict(oauth_clients or {})
        self.rate_limit = rate_limit
        self.rate_interval = rate_interval
        #: The rate limiter's clock; tests swap in one they move by hand.
        self.clock: Callable[[], float] = time.monotonic
        self._windows: dict[str, SlidingWindow] = {}
        self._daily: dict[str, int] = {}
        vendor = Starlette(routes=self._routes())
        self.app = h.CorrelationIds(
            self.core.wrap(vendor, snapshot=self.snapshot, reset_records=self._reset_records)
        )

    # -- what tests, the demo and `syncd sandbox` use -----------------------------------

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Every contact: ``{"contacts": [{"id", "properties"}]}``."""
        return {
            "contacts": [
                {"id": c.id, "properties": dict(c.properties)} for c in self.store.contacts.values()
            ]
        }

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
                    "company": props.get("company", ""),
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

    def _reset_records(self) -> None:
        # Property definitions stay: deleting records in HubSpot does not delete them.
        self.store.contacts.clear()
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
        return [
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
            self._route(c, self._list, "GET"),
            self._route(c, self._create, "POST"),
            self._route(c + "/{contact_id}", self._get, "GET"),
            self._route(c + "/{contact_id}", self._patch, "PATCH"),
            self._route(c + "/{contact_id}", self._archive, "DELETE"),
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
        body = await h.json_object(request)
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
        return 201, self.store.add_property(create)

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
        for item in h.batch_inputs(await h.json_object(request)):
            props = h.property_values(item.get("properties"))
            accepted.append(self.store.validate(props, pending=accepted))
        created = [self.store.create(clean) for clean in accepted]
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
        return 204, None

    # -- search --------------------------------------------------------------------------

    async def _search(self, request: Request) -> tuple[int, object]:
        body = await h.json_object(request)
        groups = h.objects(body.get("filterGroups", []), "filterGroups")
        if len(groups) > 5:
            raise h.bad_input("A search takes at most 5 filter groups.")
        tests = [[_filter(f) for f in h.objects(g.get("filters"), "filters")] for g in groups]
        hits = [
            c
            for c in sorted(self.store.searchable(), key=_num)
            if not tests or any(all(t(c.properties) for t in group) for group in tests)
        ]
        limit = max(1, min(200, h.number(body.get("limit"), 10)))
        after = h.number(body.get("after"), 0)
        wanted = h.string_list(body.get("properties"))
        page = [self.store.view(c, wanted) for c in hits[after : after + limit]]
        answer: dict[str, object] = {"total": len(hits), "results": page}
        if after + limit < len(hits):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return 200, answer


def _filter(spec: Mapping[str, object]) -> Callable[[Mapping[str, str]], bool]:
    """One search filter as a test on a contact's properties (EQ, NEQ, IN, HAS_PROPERTY)."""
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
