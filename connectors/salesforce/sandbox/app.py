"""A stateful local emulator of the Salesforce REST API and of its OAuth refresh-token flow,
as one ASGI app (see :class:`rig.sandbox.SandboxCore`).

Emulated: ``POST /services/oauth2/token`` (a built-in connected app whose refresh tokens
are the ``tokens`` the sandbox accepts; it answers ``instance_url`` = the root it is served
at), Bearer sessions (401 ``INVALID_SESSION_ID`` once expired), the daily API limit
counted in a rolling 24 hours (``Sforce-Limit-Info`` on every API answer, 403
``REQUEST_LIMIT_EXCEEDED`` beyond it), ``limits``, a SOQL subset with paging (``query``, and
``queryAll`` that also sees the Recycle Bin), sObject rows by Id and by external id (upsert:
201/200/300; DELETE to the Recycle Bin, purged after 15 days), sObject Collections create,
update, upsert and delete (at most 200 records), Tasks on a person (``WhoId``; archived
ones seen by ``queryAll`` only), validation (required fields, restricted picklists, lengths
as Salesforce counts them), a unique external id, a standard-like duplicate rule on Email,
and the knobs :meth:`SalesforceSandbox.refuse_tasks`, ``drop_field`` and ``archive``.
Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.salesforce.mapping import EXTERNAL_ID_FIELD, PROFILE_URL_FIELD
from connectors.salesforce.sandbox import http as h
from connectors.salesforce.sandbox.rest import RestApi
from connectors.salesforce.sandbox.store import Org, SalesforceError
from rig.sandbox import SandboxCore

Handler = Callable[[Request], Awaitable[tuple[int, object]]]
_VERSION = re.compile(r"^v(\d+)\.0$")
#: The URI and headers of one call take at most 16,384 bytes together; the URI alone past
#: it is 414 (https://help.salesforce.com/s/articleView?id=000386264&type=1).
MAX_URI_BYTES = 16_384


class SalesforceSandbox:
    """A Salesforce org on one ASGI app: ``app``; records in ``org``."""

    #: (method, path prefix) of the requests that write person records: where a test or a
    #: benchmark injects faults "after the write" (see SandboxCore.break_next).
    WRITE_REQUEST: ClassVar[tuple[str, str]] = ("PATCH", "/services/data/")

    #: The built-in connected app whose refresh tokens the sandbox accepts.
    CLIENT_ID = "3MVG9sandbox.syncd.connected.app"
    CLIENT_SECRET = "sandbox-connected-app-secret"  # noqa: S105 - a public test fixture

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        api_limit: int = 15_000,
        external_id_field: str = EXTERNAL_ID_FIELD,
        external_id_unique: bool = True,
        duplicate_rule: bool = True,
        query_batch_size: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # core.tokens are the access tokens handed out; refresh tokens are kept apart, so
        # expire_tokens() ends sessions while the credential stays good.
        self.core = SandboxCore("salesforce", error_body=h.fault_body)
        self.refresh_tokens: set[str] = set(tokens)
        self.org = Org(
            external_id_field=external_id_field,
            profile_url_field=PROFILE_URL_FIELD,
            external_id_unique=external_id_unique,
            duplicate_rule=duplicate_rule,
            clock=clock,
        )
        self.usage = h.DailyUsage(api_limit, clock)
        self.rest = RestApi(self.org, query_batch_size=query_batch_size)
        vendor = Starlette(routes=self._routes())
        wrapped = self.core.wrap(vendor, snapshot=self.snapshot, reset_records=self._reset)
        self.app = h.Edge(wrapped, set_tokens=self.set_tokens, usage=self.usage.header)

    # -- what tests, the demo and `syncd sandbox` use -----------------------------------

    def credential(self, token: str) -> str:
        """The keyring value that makes the client authenticate with refresh ``token``."""
        return json.dumps(
            {
                "client_id": self.CLIENT_ID,
                "client_secret": self.CLIENT_SECRET,
                "refresh_token": token,
            }
        )

    def config_table(self, root_url: str) -> dict[str, object]:
        """The config keys that point a ``salesforce`` instance at this sandbox."""
        return {"type": "salesforce", "login_url": root_url.rstrip("/")}

    def set_tokens(self, tokens: Iterable[str]) -> None:
        """Accept exactly these refresh tokens; every session handed out so far ends."""
        self.refresh_tokens = set(tokens)
        self.core.tokens.clear()
        self.core.expired.clear()

    def snapshot(self) -> dict[str, object]:
        """Every record by object, and the API usage."""
        records = {
            obj: [self.org.view(obj, r) for r in self.org.rows(obj)] for obj in self.org.records
        }
        return {**records, "api_usage": {"used": self.usage.used(), "limit": self.usage.limit}}

    def rows(self) -> list[dict[str, str]]:
        """Every person (Contacts and Leads) as one display row, sorted by id."""
        out = []
        for obj in ("Contact", "Lead"):
            for record in self.org.rows(obj):
                out.append(
                    {
                        "id": str(record["Id"]),
                        "name": str(self.org.view(obj, record)["Name"]),
                        "email": record.get("Email") or "",
                        "company": self.company_of(str(record["Id"])) or "",
                        "title": record.get("Title") or "",
                    }
                )
        return sorted(out, key=lambda row: row["id"])

    def contact_count(self) -> int:
        """How many people the org holds (Contacts and Leads; not the Recycle Bin's)."""
        return len(self.org.records["Contact"]) + len(self.org.records["Lead"])

    def edit(self, record_id: str, field: str, value: str) -> None:
        """Change one field of a record, as a person would in Salesforce's UI."""
        obj = self.org.object_of(record_id) or "Contact"
        self.org.update(obj, self.org.require(obj, record_id), {field: value})

    def seed(self, obj: str, fields: Mapping[str, str], *, account: str | None = None) -> str:
        """A record made by a person in the UI (duplicate alert dismissed); its id.
        ``account`` links a Contact to the Account of that name, made if missing."""
        values: dict[str, object] = dict(fields)
        if account:
            found = self.org.by_value("Account", "Name", account)
            linked = found[0] if found else self.org.create("Account", {"Name": account})
            values["AccountId"] = linked["Id"]
        return str(self.org.create(obj, values, allow_duplicates=True)["Id"])

    def company_of(self, record_id: str) -> str | None:
        """The company a person shows: the Account's name, or the Lead's Company."""
        obj = self.org.object_of(record_id)
        record = self.org.find(obj, record_id) if obj else None
        if record is None:
            return None
        if obj == "Lead":
            return record.get("Company")
        account = self.org.find("Account", record.get("AccountId") or "")
        return account.get("Name") if account else None

    def refuse_tasks(self, refused: bool = True) -> None:
        """Act as an org whose integration user may not create Tasks: every Task create is
        refused with INSUFFICIENT_ACCESS_OR_READONLY."""
        self.org.tasks_allowed = not refused

    def drop_field(self, obj: str, field: str) -> None:
        """Act as an org where ``field`` of ``obj`` was never created (or is hidden from
        the integration user): requests naming it answer INVALID_FIELD."""
        name = self.org.field(obj, field)
        if name is not None:
            del self.org.schemas[obj][name]
            for record in self.org.records[obj].values():
                record.pop(name, None)

    def archive(self, task_id: str) -> None:
        """Archive a Task, as Salesforce does to closed activities after a year: plain
        queries no longer see it, ``queryAll`` does."""
        self.org.require("Task", task_id)["IsArchived"] = "true"

    def reset_api_usage(self) -> None:
        """A new day: the rolling API count starts again."""
        self.usage.clear()

    def _reset(self) -> None:
        for table in self.org.records.values():
            table.clear()
        for deleted in self.org.bin.values():
            deleted.clear()
        self.usage.clear()
        self.rest.reset()

    # -- plumbing ------------------------------------------------------------------------

    def _route(self, path: str, handler: Handler, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            version = _VERSION.match(str(request.path_params.get("version", "")))
            if version is None or not 20 <= int(version.group(1)) <= 66:
                body = h.entry(
                    SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
                )
                return JSONResponse([body], 404)
            target = request.url.path + ("?" + request.url.query if request.url.query else "")
            if len(target.encode()) > MAX_URI_BYTES:
                return Response("URI Too Long", 414, media_type="text/plain")
            if not self.core.accepts(self.core.bearer(request)):
                failure = SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                return JSONResponse([h.entry(failure)], 401)
            allowed = self.usage.hit()
            headers = {h.LIMIT_HEADER: self.usage.header()}
            if not allowed:
                failure = SalesforceError(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                )
                return JSONResponse([h.entry(failure)], 403, headers)
            try:
                status, answer = await handler(request)
            except SalesforceError as error:
                return JSONResponse([h.entry(error)], error.status, headers)
            if status == 204:
                return Response(status_code=204, headers=headers)
            return JSONResponse(answer, status, headers)

        return Route(path, endpoint, methods=[method])

    def _routes(self) -> list[Route]:
        api, rest = "/services/data/{version}", self.rest
        rows = api + "/sobjects/{sobject}"
        collections = api + "/composite/sobjects"
        table: list[tuple[str, Handler, str]] = [
            (api + "/limits", self._limits, "GET"),
            (api + "/query", rest.query, "GET"),
            (api + "/query/{locator}", rest.query_more, "GET"),
            (api + "/queryAll", rest.query_all, "GET"),
            (api + "/queryAll/{locator}", rest.query_more, "GET"),
            (rows, rest.create, "POST"),
            (rows + "/{record_id}", rest.read, "GET"),
            (rows + "/{record_id}", rest.update, "PATCH"),
            (rows + "/{record_id}", rest.delete, "DELETE"),
            (rows + "/{field}/{value:path}", rest.read_external, "GET"),
            (rows + "/{field}/{value:path}", rest.upsert, "PATCH"),
            (collections, rest.collection_create, "POST"),
            (collections, rest.collection_update, "PATCH"),
            (collections, rest.collection_delete, "DELETE"),
            (collections + "/{sobject}/{field}", rest.collection_upsert, "PATCH"),
            (api + "/composite", rest.composite, "POST"),
        ]
        # Salesforce takes a resource with a trailing slash too (simple-salesforce sends
        # ``…/query/`` and ``…/sobjects/Task/``).
        routes = [self._route(p, handler, m) for p, handler, m in table]
        routes += [self._route(p + "/", handler, m) for p, handler, m in table]
        return [Route("/services/oauth2/token", self._token, methods=["POST"]), *routes]

    async def _limits(self, _: Request) -> tuple[int, object]:
        limit = self.usage.limit
        return 200, {"DailyApiRequests": {"Max": limit, "Remaining": limit - self.usage.used()}}

    async def _token(self, request: Request) -> Response:
        # Form-encoded; parsed here so the sandbox needs no multipart library.
        form = dict(parse_qsl((await request.body()).decode("latin-1")))
        refused = None
        if form.get("grant_type") != "refresh_token":
            refused = h.oauth_error("unsupported_grant_type", "grant type not supported")
        elif form.get("client_id") != self.CLIENT_ID:
            refused = h.oauth_error("invalid_client_id", "client identifier invalid")
        elif form.get("client_secret") != self.CLIENT_SECRET:
            refused = h.oauth_error("invalid_client", "invalid client credentials")
        elif form.get("refresh_token") not in self.refresh_tokens:
            refused = h.oauth_error("invalid_grant", "expired access/refresh token")
        if refused is not None:
            return JSONResponse(refused, 400, {"Cache-Control": "no-store"})
        root = f"{request.url.scheme}://{request.url.netloc}"
        access = f"{self.org.org_id[:15]}!{secrets.token_urlsafe(48)}"
        self.core.tokens.add(access)
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(secrets.token_bytes(32)).decode()
        answer = {
            "access_token": access,
            "signature": signature,
            "scope": "api refresh_token",
            "instance_url": root,
            "id": f"{root}/id/{self.org.org_id}/{self.org.user_id}",
            "token_type": "Bearer",
            "issued_at": issued,
        }
        return JSONResponse(answer, 200, {"Cache-Control": "no-store"})
