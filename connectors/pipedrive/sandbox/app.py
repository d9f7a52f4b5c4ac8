"""A stateful local emulator of Pipedrive's API as one ASGI app (see
:class:`rig.sandbox.SandboxCore`): persons, organizations and person fields on API
v2, notes on API v1, and the OAuth token endpoint (``/oauth/token``, which Pipedrive serves
on ``oauth.pipedrive.com``; here on the same app so one root URL serves both).

Deleting a person marks it deleted, as Pipedrive does for 30 days before its purge: it
leaves search, lists and :meth:`PipedriveSandbox.contact_count`, a write or a second delete
answers 404, and ``GET /api/v2/persons/{id}`` still answers it with ``is_deleted: true``
(the v2 person's flag; v1 answered ``active_flag: false``). Notes are added, listed by
``person_id`` with v1's ``start``/``limit`` pages, and deleted; a note takes ``add_time``
(``YYYY-MM-DD HH:MM:SS``, UTC, past or future, as ``v1.yaml`` documents) and content of at
most 100 KB. Pipedrive does not document what deleting a person does to its notes, so they
stay listed here (syncd's ``erase`` deletes its own notes first either way).

Knobs beyond the shared core's: ``refuse_notes`` (``POST /api/v1/notes`` answers 403 ``Scope
and URL mismatch``, as Pipedrive does for a credential without the notes' scope) and
``page_cap`` (lists and searches answer at most that many items per page, so tests page
without thousands of records). ``logged`` and ``note_count`` tell tests what notes hold.

Emulated: ``x-api-token`` or Bearer auth (401 ``unauthorized access``), the refresh-token
grant with HTTP Basic client auth, the envelope, validation (400), the token-based rate
limits with their headers and 429 (see :mod:`connectors.pipedrive.sandbox.http`), hashed
custom-field keys, search with ``exact_match``, and v1 person endpoints answered as retired
(410): they are out of support since 2026-08-01
(https://developers.pipedrive.com/changelog/post/deprecated-apiv1-endpoints-become-out-of-support)
and syncd must never depend on them. A token sent as ``?api_token=`` is refused and
recorded as a violation: syncd keeps tokens out of URLs, which get logged.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import ClassVar, Literal, TypeVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.pipedrive.mapping import (
    JOB_TITLE,
    PAGE_LIMIT,
    POSTAL_ADDRESS,
    FieldDefinition,
    Note,
    Organization,
    Person,
    primary,
    read_note,
    split_name,
    v1_time,
)
from connectors.pipedrive.sandbox import http as h
from connectors.pipedrive.sandbox.store import (
    ORG_SEARCH_FIELDS,
    SEARCH_FIELDS,
    PipedriveError,
    Store,
    bad_request,
)
from rig.sandbox import RecordedRequest, SandboxCore

Handler = Callable[[Request], Awaitable[Response]]
_ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_Listed = TypeVar("_Listed", Person, Organization)
PROFILE_FIELD = "LinkedIn profile URL"


class PipedriveSandbox:
    """One Pipedrive company on one ASGI app: ``app``; its records in ``store``."""

    #: (method, path prefix) of the requests that write person records: where a test or a
    #: benchmark injects faults "after the write" (see SandboxCore.break_next).
    WRITE_REQUEST: ClassVar[tuple[str, str]] = ("POST", "/api/v2/persons")

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        oauth_clients: Mapping[str, tuple[str, str]] | None = None,
        daily_budget: int = 300_000,
        burst: int = 120,
        oauth_burst: int = 480,
        search_burst: int | None = None,
        contact_sync: bool = True,
    ) -> None:
        self.core = SandboxCore("pipedrive", error_body=h.fault_body, tokens=tokens)
        self.store = Store(contact_sync=contact_sync)
        #: refresh token -> (client_id, client_secret)
        self.oauth_clients = dict(oauth_clients or {})
        self.limits = h.RateLimits(
            daily_budget=daily_budget,
            burst=burst,
            oauth_burst=oauth_burst,
            search_burst=search_burst,
        )
        self._access_tokens: set[str] = set()
        #: Answer every note create with the 403 of a credential that may not add notes.
        self.refuse_notes = False
        #: At most this many items per page of a list or search (None: as asked).
        self.page_cap: int | None = None
        vendor = Starlette(routes=self._routes())
        self.app = self.core.wrap(vendor, snapshot=self.snapshot, reset_records=self._reset)

    # -- what tests, the demo and `syncd sandbox` use -----------------------------------

    def snapshot(self) -> dict[str, list[object]]:
        """Every live person and organization, syncd's custom fields, and every note not
        deleted."""
        return {
            "persons": list(self.store.live_persons()),
            "organizations": [o for o in self.store.organizations.values() if not o["is_deleted"]],
            "person_fields": [f for f in self.store.fields if f["is_custom_field"]],
            "notes": list(self.store.live_notes()),
        }

    def rows(self) -> list[dict[str, str]]:
        """Every person as one display row, by id."""
        return [
            {
                "id": str(p["id"]),
                "name": p["name"],
                "email": primary(p["emails"]) or "",
                "company": self.company_of(p["id"]) or "",
                "title": p.get(JOB_TITLE) or "",
            }
            for p in self.store.live_persons()
        ]

    def contact_count(self) -> int:
        """How many persons exist (deleted ones do not count)."""
        return len(self.store.live_persons())

    def note_count(self, person_id: int | str) -> int:
        """How many notes (not deleted) are on a person, the person deleted or not."""
        return len(self.store.live_notes(int(person_id)))

    def logged(self, person_id: int | str) -> list[dict[str, object]]:
        """The notes syncd wrote on a person, oldest message first, taken apart:
        ``{"key", "body", "direction", "at"}`` (``at`` from the note's ``add_time``)."""
        out: list[tuple[datetime, int, dict[str, object]]] = []
        for note in self.store.live_notes(int(person_id)):
            parsed = read_note(note["content"])
            at = v1_time(note["add_time"])
            if parsed is None or at is None:
                continue
            view = {"key": parsed.key, "body": parsed.body, "direction": parsed.direction}
            out.append((at, note["id"], {**view, "at": at}))
        return [view for _, _, view in sorted(out, key=lambda t: (t[0], t[1]))]

    def seed_note(self, person_id: int | str, content: str) -> int:
        """Add a note on a person as someone would in the web UI; its id."""
        return self.store.create_note({"content": content, "person_id": int(person_id)})["id"]

    def company_of(self, person_id: int | str) -> str | None:
        """The name of the organization a person is linked to."""
        org_id = self.store.person(int(person_id))["org_id"]
        return self.store.organizations[org_id]["name"] if org_id else None

    def config_table(self, root_url: str) -> dict[str, object]:
        """The config keys that point a ``pipedrive`` instance at this sandbox."""
        return {"type": "pipedrive", "base_url": root_url, "oauth_url": root_url}

    def credential(self, token: str) -> str:
        """What a user stores in the keyring to authenticate with ``token``: the API token."""
        return token

    def edit(self, record_id: str, field: str, value: str) -> None:
        """Change one canonical field (see ``connectors.base.FIELDS``) of a person, or its
        ``name``, as someone would in Pipedrive's web UI."""
        person = self.store.person(int(record_id))
        self.store.update_person(person["id"], self._ui_body({field: value}, person))

    def seed(self, fields: Mapping[str, str]) -> str:
        """Add a person as someone would in the web UI (no syncd identity); its id.

        ``fields`` are canonical; ``company`` links an organization of that name, made if
        there is none."""
        first, last = fields.get("first_name", ""), fields.get("last_name", "")
        body = {"name": f"{first} {last}".strip() or "Unnamed", **self._ui_body(fields, None)}
        return str(self.store.create_person(body)["id"])

    def _ui_body(self, fields: Mapping[str, str], person: Person | None) -> dict[str, object]:
        body: dict[str, object] = {}
        first, last = split_name(person["name"]) if person else ("", "")
        for field, value in fields.items():
            if field in ("first_name", "last_name", "name"):
                first = value if field == "first_name" else first
                last = value if field == "last_name" else last
                body["name"] = value if field == "name" else f"{first} {last}".strip()
            elif field in ("email", "phone"):
                body[field + "s"] = [{"value": value, "primary": True, "label": "work"}]
            elif field == "company":
                found = self.store.search_organizations(value, ["name"], exact=True)
                org = found[0] if found else self.store.create_organization({"name": value})
                body["org_id"] = org["id"]
            elif field == "title":
                body[JOB_TITLE] = value
            elif field == "location":
                body[POSTAL_ADDRESS] = {"value": value}
            elif field == "linkedin_url":
                body["custom_fields"] = {self._field_code(PROFILE_FIELD): value}
            else:
                raise KeyError(field)
        return body

    def _field_code(self, name: str) -> str:
        for field in self.store.fields:
            if field["is_custom_field"] and field["field_name"].casefold() == name.casefold():
                return field["field_code"]
        return self.store.add_field(name, "varchar")["field_code"]

    def _reset(self) -> None:
        self.store.clear()
        self.limits.clear()

    # -- plumbing ------------------------------------------------------------------------

    def _route(self, path: str, handler: Handler, method: str) -> Route:
        cost = h.TOKEN_COST[(method, path)]

        async def endpoint(request: Request) -> Response:
            headers = {h.CORRELATION_HEADER: h.new_correlation_id()}
            if "api_token" in request.query_params:
                response: Response = self._query_token(request)
            else:
                response = await self._authorised(request, handler, cost, path.endswith("/search"))
            response.headers.update(headers)
            return response

        return Route(path, endpoint, methods=[method])

    async def _authorised(
        self, request: Request, handler: Handler, cost: int, search: bool
    ) -> Response:
        token = request.headers.get("x-api-token") or self.core.bearer(request)
        if token is None or not self.core.accepts(token):
            return h.unauthorized()
        spend = self.limits.charge(
            token, oauth=token in self._access_tokens, cost=cost, search=search
        )
        if not spend.allowed:
            return JSONResponse(h.over_limit(), 429, spend.headers)
        try:
            response = await handler(request)
        except PipedriveError as error:
            response = h.from_exception(error)
        response.headers.update(spend.headers)
        return response

    def _query_token(self, request: Request) -> Response:
        """Refuse a token in the query string and record the request as a violation."""
        self.core.violations.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query="api_token=<redacted>",
                status=401,
                header_names=tuple(sorted(k.lower() for k in request.headers)),
                at=time.time(),
            )
        )
        message = "api_token in the query string is refused here: send the x-api-token header"
        return JSONResponse(h.error_body(message, error_code=401), 401)

    def _routes(self) -> list[Route]:
        v2 = "/api/v2"
        return [
            Route("/oauth/token", self._token, methods=["POST"]),
            self._route(f"{v2}/personFields", self._list_fields, "GET"),
            self._route(f"{v2}/personFields", self._add_field, "POST"),
            self._route(f"{v2}/persons/search", self._search_persons, "GET"),
            self._route(f"{v2}/persons", self._list_persons, "GET"),
            self._route(f"{v2}/persons", self._add_person, "POST"),
            self._route(f"{v2}/persons/{{id}}", self._get_person, "GET"),
            self._route(f"{v2}/persons/{{id}}", self._patch_person, "PATCH"),
            self._route(f"{v2}/persons/{{id}}", self._delete_person, "DELETE"),
            self._route(f"{v2}/organizations/search", self._search_orgs, "GET"),
            self._route(f"{v2}/organizations", self._list_orgs, "GET"),
            self._route(f"{v2}/organizations", self._add_org, "POST"),
            self._route(f"{v2}/organizations/{{id}}", self._get_org, "GET"),
            self._route("/api/v1/notes", self._list_notes, "GET"),
            self._route("/api/v1/notes", self._add_note, "POST"),
            self._route("/api/v1/notes/{id}", self._delete_note, "DELETE"),
            *(
                Route(prefix + suffix, self._retired, methods=_ALL)
                for prefix in ("/api/v1/persons", "/v1/persons")
                for suffix in ("", "/{rest:path}")
            ),
            Route("/{rest:path}", self._unknown, methods=_ALL),
        ]

    async def _retired(self, _: Request) -> Response:
        response = h.gone("person endpoint of API v1")
        response.headers[h.CORRELATION_HEADER] = h.new_correlation_id()
        return response

    async def _unknown(self, _: Request) -> Response:
        return JSONResponse(h.error_body("Unknown method .", code="ERR_NOT_FOUND"), 404)

    # -- OAuth ---------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        """The refresh-token grant (https://pipedrive.readme.io/docs/marketplace-oauth-and-api-proxy-status-codes)."""
        form = dict(parse_qsl((await request.body()).decode("latin-1")))
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client = base64.b64decode(encoded).decode() if scheme.lower() == "basic" else ""
        except ValueError:
            client = ""
        client_id, _, client_secret = client.partition(":")
        if form.get("grant_type") != "refresh_token":
            return _oauth_error("Unsupported grant type: grant_type is invalid")
        if not client_id or not client_secret:
            return _oauth_error("Invalid client: cannot retrieve client credentials")
        known = self.oauth_clients.get(form.get("refresh_token", ""))
        if known is None:
            return _oauth_error("Invalid grant: refresh_token is invalid")
        if known != (client_id, client_secret):
            return _oauth_error("Invalid client: client is invalid")
        access = secrets.token_urlsafe(24)
        self.core.tokens.add(access)
        self._access_tokens.add(access)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3599,
                "refresh_token": form["refresh_token"],
                "scope": "base,contacts:full",
                "api_domain": str(request.base_url).rstrip("/"),
            }
        )

    # -- person fields -------------------------------------------------------------------

    async def _list_fields(self, request: Request) -> Response:
        page, more = h.cursor_page(list(self.store.fields), request.query_params)
        return h.ok(page, more)

    async def _add_field(self, request: Request) -> Response:
        body = await h.json_object(request)
        name, kind = body.get("field_name"), body.get("field_type")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise bad_request("field_name and field_type are required")
        field: FieldDefinition = self.store.add_field(name, kind)
        return h.ok(field)

    # -- persons -------------------------------------------------------------------------

    async def _list_persons(self, request: Request) -> Response:
        query = request.query_params
        org_id = h.query_int(query, "org_id")
        persons = [p for p in self.store.live_persons() if org_id is None or p["org_id"] == org_id]
        if query.get("ids"):
            ids = _id_list(query["ids"], "ids", most=100)
            persons = [p for p in persons if p["id"] in ids]
        since, until = query.get("updated_since"), query.get("updated_until")
        if since or until:
            persons = [
                p
                for p in persons
                if (not since or p["update_time"] >= _rfc3339(since, "updated_since"))
                and (not until or p["update_time"] < _rfc3339(until, "updated_until"))
            ]
        persons = _sorted(persons, query.get("sort_by", "id"), query.get("sort_direction", "asc"))
        if query.get("custom_fields"):
            keys = set(query["custom_fields"].split(","))
            if len(keys) > 15:
                raise bad_request("custom_fields takes at most 15 keys")
            persons = [_only_custom(p, keys) for p in persons]
        page, more = h.cursor_page(list(persons), query, cap=self.page_cap)
        return h.ok(page, more)

    async def _add_person(self, request: Request) -> Response:
        return h.ok(self.store.create_person(await h.json_object(request)))

    async def _get_person(self, request: Request) -> Response:
        return h.ok(self.store.person_or_deleted(h.path_id(request)))

    async def _patch_person(self, request: Request) -> Response:
        body = await h.json_object(request)
        return h.ok(self.store.update_person(h.path_id(request), body))

    async def _delete_person(self, request: Request) -> Response:
        person_id = h.path_id(request)
        self.store.delete_person(person_id)
        return h.ok({"id": person_id})

    async def _search_persons(self, request: Request) -> Response:
        query = request.query_params
        fields = _search_fields(query.get("fields"), SEARCH_FIELDS)
        hits = self.store.search_persons(
            query.get("term", ""),
            fields,
            exact=h.query_bool(query, "exact_match"),
            org_id=h.query_int(query, "organization_id"),
        )
        page, more = h.cursor_page([self._person_hit(p) for p in hits], query, cap=self.page_cap)
        return h.ok({"items": page}, more)

    def _person_hit(self, person: Person) -> dict[str, object]:
        org = self.store.organizations.get(person["org_id"] or 0)
        return {
            "result_score": 1.0,
            "item": {
                "id": person["id"],
                "type": "person",
                "name": person["name"],
                "phones": [p["value"] for p in person["phones"]],
                "emails": [p["value"] for p in person["emails"]],
                "visible_to": person["visible_to"],
                "owner": {"id": person["owner_id"]},
                "organization": {"id": org["id"], "name": org["name"], "address": None}
                if org
                else None,
                "custom_fields": [v for v in person["custom_fields"].values() if v],
                "notes": [],
            },
        }

    # -- organizations -------------------------------------------------------------------

    async def _list_orgs(self, request: Request) -> Response:
        query = request.query_params
        orgs = [o for _, o in sorted(self.store.organizations.items()) if not o["is_deleted"]]
        if query.get("ids"):
            ids = _id_list(query["ids"], "ids", most=100)
            orgs = [o for o in orgs if o["id"] in ids]
        since, until = query.get("updated_since"), query.get("updated_until")
        if since or until:
            orgs = [
                o
                for o in orgs
                if (not since or o["update_time"] >= _rfc3339(since, "updated_since"))
                and (not until or o["update_time"] < _rfc3339(until, "updated_until"))
            ]
        orgs = _sorted(orgs, query.get("sort_by", "id"), query.get("sort_direction", "asc"))
        page, more = h.cursor_page(list(orgs), query, cap=self.page_cap)
        return h.ok(page, more)

    async def _add_org(self, request: Request) -> Response:
        org: Organization = self.store.create_organization(await h.json_object(request))
        return h.ok(org)

    async def _get_org(self, request: Request) -> Response:
        return h.ok(self.store.organization(h.path_id(request)))

    async def _search_orgs(self, request: Request) -> Response:
        query = request.query_params
        fields = _search_fields(query.get("fields"), ORG_SEARCH_FIELDS)
        hits = self.store.search_organizations(
            query.get("term", ""), fields, exact=h.query_bool(query, "exact_match")
        )
        items = [
            {
                "result_score": 1.0,
                "item": {
                    "id": o["id"],
                    "type": "organization",
                    "name": o["name"],
                    "address": (o["address"] or {}).get("value"),
                    "visible_to": o["visible_to"],
                    "owner": {"id": o["owner_id"]},
                    "custom_fields": [],
                    "notes": [],
                },
            }
            for o in hits
        ]
        page, more = h.cursor_page(list(items), query)
        return h.ok({"items": page}, more)

    # -- notes (v1) ----------------------------------------------------------------------

    async def _list_notes(self, request: Request) -> Response:
        query = request.query_params
        person_id, org_id = h.query_int(query, "person_id"), h.query_int(query, "org_id")
        notes = [
            self._note_view(n)
            for n in self.store.live_notes(person_id)
            if org_id is None or n["org_id"] == org_id
        ]
        start = h.query_int(query, "start", 0) or 0
        limit = h.query_int(query, "limit", 100) or 100
        if limit > PAGE_LIMIT:
            raise bad_request(f"limit must not exceed {PAGE_LIMIT}")
        limit = min(limit, self.page_cap) if self.page_cap else limit
        more = start + limit < len(notes)
        pagination: dict[str, object] = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
        }
        if more:
            pagination["next_start"] = start + limit
        return h.ok(notes[start : start + limit], {"pagination": pagination})

    async def _add_note(self, request: Request) -> Response:
        if self.refuse_notes:
            return JSONResponse(h.error_body("Scope and URL mismatch", error_code=403), 403)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body: dict[str, object] = dict(parse_qsl((await request.body()).decode()))
        else:
            body = await h.json_object(request)
        return h.ok(self._note_view(self.store.create_note(body)))

    async def _delete_note(self, request: Request) -> Response:
        self.store.delete_note(h.path_id(request))
        return h.ok(True)

    def _note_view(self, note: Note) -> dict[str, object]:
        view: dict[str, object] = dict(note)
        if note["person_id"] in self.store.persons:
            view["person"] = {"name": self.store.persons[note["person_id"] or 0]["name"]}
        if note["org_id"] in self.store.organizations:
            view["organization"] = {"name": self.store.organizations[note["org_id"] or 0]["name"]}
        return view


def _id_list(raw: str, name: str, *, most: int) -> set[int]:
    parts = raw.split(",")
    if len(parts) > most or not all(p.strip().isdigit() for p in parts):
        raise bad_request(f"{name} must be a comma-separated list of at most {most} integers")
    return {int(p) for p in parts}


def _rfc3339(raw: str, name: str) -> str:
    """An RFC 3339 time of a query, as the store writes times (``...Z``), or a 400."""
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time, e.g. 2025-01-01T10:20:00Z") from None
    if at.tzinfo is None:
        raise bad_request(f"{name} must carry a time zone")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sorted(records: list[_Listed], sort_by: str, direction: str) -> list[_Listed]:
    """``sort_by`` (``id``, ``update_time``, ``add_time``) then id, as ``getPersons`` and
    ``getOrganizations`` sort."""
    if sort_by not in ("id", "update_time", "add_time") or direction not in ("asc", "desc"):
        raise bad_request("sort_by or sort_direction is not one of the allowed values")
    if sort_by == "id":
        return sorted(records, key=lambda r: r["id"], reverse=direction == "desc")
    field: Literal["update_time", "add_time"] = (
        "update_time" if sort_by == "update_time" else "add_time"
    )
    return sorted(records, key=lambda r: (r[field], r["id"]), reverse=direction == "desc")


def _only_custom(person: Person, keys: set[str]) -> Person:
    """``person`` with only the custom fields ``keys`` (``custom_fields=`` of a list)."""
    out: Person = {**person}
    out["custom_fields"] = {k: v for k, v in person["custom_fields"].items() if k in keys}
    return out


def _search_fields(raw: str | None, allowed: frozenset[str]) -> set[str]:
    fields = {f for f in (raw or ",".join(allowed)).split(",") if f}
    if not fields <= allowed:
        raise bad_request(f"fields must be a comma-separated list of {', '.join(sorted(allowed))}")
    return fields


def _oauth_error(message: str) -> Response:
    return JSONResponse({"success": False, "message": message}, 400)
