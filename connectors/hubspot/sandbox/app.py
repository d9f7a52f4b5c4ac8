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

This module wires the app: auth, the rate limit, the route table, the OAuth token endpoint,
account details and what tests and the demo call. The endpoints live beside it: contacts
(:mod:`~connectors.hubspot.sandbox.contacts_api`), companies and associations
(:mod:`~connectors.hubspot.sandbox.companies_api`), communications, and search
(:mod:`~connectors.hubspot.sandbox.search`).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.hubspot import mapping
from connectors.hubspot.sandbox import http as h
from connectors.hubspot.sandbox.communications import CommunicationStore
from connectors.hubspot.sandbox.communications_api import CommunicationsApi
from connectors.hubspot.sandbox.companies import CompanyStore
from connectors.hubspot.sandbox.companies_api import CompaniesApi
from connectors.hubspot.sandbox.contacts_api import ContactsApi
from connectors.hubspot.sandbox.store import ContactStore, HubSpotError
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
        app_wide: bool = False,
        search_limit: int | None = None,
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
        self._contacts_api = ContactsApi(self.store, self.companies, self.communications)
        self._companies_api = CompaniesApi(self.companies, self.store, self._communications_api)
        self.oauth_clients = dict(oauth_clients or {})
        self.rate_limit = rate_limit
        self.rate_interval = rate_interval
        #: One window for every token (they are all one app's: HubSpot counts an app's
        #: requests across the accounts' tokens), instead of one per token.
        self.app_wide = app_wide
        #: The search endpoints' own limit per second (None: off), counted like the window.
        self.search_limit = search_limit
        #: Requests answered per token, and how many of them were 429s (any policy).
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
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
        for contact in sorted(self.store.contacts.values(), key=lambda c: int(c.id)):
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
        self.calls.clear()
        self.throttled.clear()

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
                limited = self._throttle(token, request.url.path, cid)
                if isinstance(limited, Response):
                    return limited
                headers |= limited
            try:
                status, answer = await handler(request)
            except HubSpotError as error:
                return JSONResponse(h.from_exception(error, cid), error.status, headers)
            if status == 204:
                return Response(status_code=204, headers=headers)
            return JSONResponse(answer, status, headers)

        return Route(path, endpoint, methods=[method])

    def _throttle(self, token: str, path: str, cid: str) -> Response | dict[str, str]:
        """Count one request of ``token``: its rate-limit headers, or the 429 to answer.

        The search endpoints have their own limit per second besides the ten-second window
        (one per token, or the app's when ``app_wide``) and the daily count."""
        key = "*" if self.app_wide else token
        self.calls[token] += 1
        if path.endswith("/search") and self.search_limit is not None:
            searches = self._windows.get(key + " search") or SlidingWindow(
                self.search_limit, 1.0, lambda: self.clock()
            )
            self._windows[key + " search"] = searches
            if not searches.hit().allowed:
                self.throttled[token] += 1
                return JSONResponse(
                    h.rate_limit_body("SECONDLY", cid), 429, {h.CORRELATION_HEADER: cid}
                )
        window = self._windows.get(key) or SlidingWindow(
            self.rate_limit, self.rate_interval, lambda: self.clock()
        )
        self._windows[key] = window
        throttle = window.hit()
        self._daily[key] = self._daily.get(key, 0) + int(throttle.allowed)
        headers = h.rate_headers(throttle, self.rate_interval, self._daily[key])
        if not throttle.allowed or self._daily[key] > h.DAILY_LIMIT:
            self.throttled[token] += 1
            policy = "TEN_SECONDLY_ROLLING" if not throttle.allowed else "DAILY"
            headers[h.CORRELATION_HEADER] = cid
            return JSONResponse(h.rate_limit_body(policy, cid), 429, headers)
        return headers

    def _routes(self) -> list[Route]:
        c = _CONTACTS
        api = self._communications_api
        contacts = self._contacts_api
        companies = self._companies_api
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
            self._route("/crm/v3/properties/contacts", contacts.list_properties, "GET"),
            self._route("/crm/v3/properties/contacts", contacts.create_property, "POST"),
            self._route(
                "/crm/v3/properties/contacts/batch/read", contacts.batch_read_properties, "POST"
            ),
            self._route("/crm/v3/properties/contacts/{name}", contacts.get_property, "GET"),
            self._route(c + "/batch/read", contacts.batch_read, "POST"),
            self._route(c + "/batch/create", contacts.batch_create, "POST"),
            self._route(c + "/batch/update", contacts.batch_update, "POST"),
            self._route(c + "/batch/upsert", contacts.batch_upsert, "POST"),
            self._route(c + "/batch/archive", contacts.batch_archive, "POST"),
            self._route(c + "/search", contacts.search, "POST"),
            self._route(c + "/gdpr-delete", contacts.gdpr_delete, "POST"),
            self._route(c, contacts.list_page, "GET"),
            self._route(c, contacts.create, "POST"),
            self._route(c + "/{contact_id}", contacts.get, "GET"),
            self._route(c + "/{contact_id}", contacts.patch, "PATCH"),
            self._route(c + "/{contact_id}", contacts.archive, "DELETE"),
            self._route(_COMPANIES, companies.create, "POST"),
            self._route(_COMPANIES + "/search", companies.search, "POST"),
            self._route(_COMPANIES + "/batch/create", companies.batch_create, "POST"),
            self._route(_COMPANIES + "/{company_id}", companies.get, "GET"),
            self._route(
                "/crm/v4/objects/{from_type}/{contact_id}/associations/default/{to_type}/{company_id}",
                companies.associate,
                "PUT",
            ),
            self._route(
                "/crm/v4/objects/{from_type}/{contact_id}/associations/{to_type}",
                companies.associations,
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

    async def _account(self, _: Request) -> tuple[int, object]:
        return 200, ACCOUNT_DETAILS


def _oauth_error(status: str, message: str) -> dict[str, str]:
    # The token endpoint answers its own shape: the reason is in "status".
    return {"status": status, "message": message, "correlationId": h.new_correlation_id()}
