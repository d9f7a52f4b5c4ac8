"""The Salesforce sandbox's REST resources over its org: query and queryAll, sObject rows (by
Id and by external id) and sObject Collections (create, update, upsert, delete). Each handler
answers ``(status, body)`` or raises :class:`SalesforceError`; auth, limits and error
bodies are the caller's.

Upsert by external id answers 201 (created), 200 (updated) or 300 with the URLs of every
record holding the value
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm);
collections (create, update, upsert) answer 200 with one SaveResult per record, in order,
and roll everything back on a failure when ``allOrNone`` is true
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm)
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm).
A DELETE moves a record to the org's Recycle Bin: 204 for one record; for a collection
(``?ids=a,b&allOrNone=…``, at most 200) 200 with one DeleteResult per id, in order
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm).
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

from connectors.salesforce.mapping import BATCH_LIMIT
from connectors.salesforce.sandbox import http as h
from connectors.salesforce.sandbox import soql as sandbox_soql
from connectors.salesforce.sandbox.store import Org, SalesforceError

Answer = tuple[int, object]
#: The documented length of a SOQL statement, and what one Composite request may carry
#: (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html).
MAX_SOQL_CHARS = 100_000
COMPOSITE_LIMIT = 25
COMPOSITE_QUERY_LIMIT = 5
_QUERY_URL = re.compile(r"^/services/data/(v\d+\.0)/(query|queryAll)/?$")
Item = TypeVar("Item")


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    """404 NOT_FOUND, as Salesforce answers for unknown resources."""
    return SalesforceError(404, "NOT_FOUND", message)


class RestApi:
    """The REST resources of one org."""

    def __init__(self, org: Org, *, query_batch_size: int = 2000) -> None:
        self.org = org
        self.query_batch_size = query_batch_size
        self._cursors: dict[str, list[dict[str, object]]] = {}

    def reset(self) -> None:
        """Forget open query cursors."""
        self._cursors.clear()

    # -- helpers -------------------------------------------------------------------------

    def sobject(self, request: Request) -> str:
        """The object named in the path, as the org spells it, or 404."""
        name = str(request.path_params["sobject"])
        obj = next((o for o in self.org.schemas if o.lower() == name.lower()), None)
        if obj is None:
            raise not_found()
        return obj

    def external_field(self, obj: str, name: str) -> str:
        """The external id field named in a path, or 404 as Salesforce answers."""
        field = self.org.field(obj, name)
        if field is None or field not in ("Id", self.org.external_id_field):
            raise not_found(
                f"Provided external ID field does not exist or is not accessible: {name}"
            )
        return field

    def url(self, request: Request, obj: str, record_id: object) -> str:
        return f"/services/data/{request.path_params['version']}/sobjects/{obj}/{record_id}"

    # -- query ---------------------------------------------------------------------------

    async def query(self, request: Request) -> Answer:
        return self._query(request, all_rows=False)

    async def query_all(self, request: Request) -> Answer:
        """``queryAll``: as ``query``, with the records in the Recycle Bin."""
        return self._query(request, all_rows=True)

    def _query(self, request: Request, *, all_rows: bool) -> Answer:
        text = request.query_params.get("q")
        return self.run_query(text, str(request.path_params["version"]), all_rows=all_rows)

    def run_query(self, text: str | None, version: str, *, all_rows: bool) -> Answer:
        """The first page of a SOQL query's answer."""
        if not text:
            raise sandbox_soql.malformed("A query string is required (parameter q).")
        if len(text) > MAX_SOQL_CHARS:
            raise sandbox_soql.malformed(
                f"The SOQL statement is longer than {MAX_SOQL_CHARS} characters."
            )
        query = sandbox_soql.parse(text)
        records = sandbox_soql.run(self.org, query, version, all_rows=all_rows)
        return 200, self._page(version, records)

    async def composite(self, request: Request) -> Answer:
        """``POST …/composite``: up to 25 subrequests, at most 5 of them queries; only query
        and queryAll subrequests are emulated. Each answers in ``compositeResponse``, in
        order, with its own status and body; the whole is one API call."""
        body = await h.json_object(request)
        subrequests = body.get("compositeRequest")
        if not isinstance(subrequests, list) or not all(isinstance(r, dict) for r in subrequests):
            raise h.bad_json("compositeRequest must be a list of subrequests")
        if len(subrequests) > COMPOSITE_LIMIT:
            raise SalesforceError(
                400, "LIMIT_EXCEEDED", f"Composite requests take at most {COMPOSITE_LIMIT}"
            )
        if len(subrequests) > COMPOSITE_QUERY_LIMIT:
            raise SalesforceError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite requests take at most {COMPOSITE_QUERY_LIMIT} query subrequests",
            )
        answers: list[dict[str, object]] = []
        for sub in subrequests:
            reference = sub.get("referenceId")
            try:
                status, answer = self._subrequest(sub)
            except SalesforceError as error:
                status, answer = error.status, [h.entry(error)]
            answers.append(
                {"body": answer, "httpHeaders": {}, "httpStatusCode": status,
                 "referenceId": reference}
            )  # fmt: skip
        return 200, {"compositeResponse": answers}

    def _subrequest(self, sub: dict[object, object]) -> Answer:
        url = urlsplit(str(sub.get("url", "")))
        found = _QUERY_URL.match(url.path)
        if sub.get("method") != "GET" or found is None:
            raise SalesforceError(
                400, "NOT_SUPPORTED", "The sandbox runs only query subrequests in Composite"
            )
        text = dict(parse_qsl(url.query)).get("q")
        return self.run_query(text, found.group(1), all_rows=found.group(2) == "queryAll")

    async def query_more(self, request: Request) -> Answer:
        locator = str(request.path_params["locator"])
        rest = self._cursors.pop(locator, None)
        if rest is None:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return 200, self._page(str(request.path_params["version"]), rest)

    def _page(self, version: str, records: list[dict[str, object]]) -> dict[str, object]:
        page, rest = records[: self.query_batch_size], records[self.query_batch_size :]
        answer: dict[str, object] = {"totalSize": len(records), "done": not rest}
        if rest:
            locator = f"01g5g00000{secrets.token_hex(4).upper()}-{self.query_batch_size}"
            self._cursors[locator] = rest
            answer["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}"
        answer["records"] = page
        return answer

    # -- rows by Id ----------------------------------------------------------------------

    async def create(self, request: Request) -> Answer:
        obj = self.sobject(request)
        values = await h.json_object(request)
        record = self.org.create(obj, values, allow_duplicates=h.allow_save(request))
        return 201, {"id": record["Id"], "success": True, "errors": []}

    async def read(self, request: Request) -> Answer:
        obj = self.sobject(request)
        record = self.org.require(obj, str(request.path_params["record_id"]))
        return 200, self._view(request, obj, record)

    async def update(self, request: Request) -> Answer:
        obj = self.sobject(request)
        record = self.org.require(obj, str(request.path_params["record_id"]))
        self.org.update(obj, record, await h.json_object(request))
        return 204, None

    async def delete(self, request: Request) -> Answer:
        self.org.delete(self.sobject(request), str(request.path_params["record_id"]))
        return 204, None

    def _view(self, request: Request, obj: str, record: dict[str, str | None]) -> dict[str, object]:
        attributes = {"type": obj, "url": self.url(request, obj, record["Id"])}
        shown = self.org.view(obj, record)
        return {"attributes": attributes, **{k: self.org.json_value(obj, k, v)
                                             for k, v in shown.items()}}  # fmt: skip

    # -- rows by external id -------------------------------------------------------------

    async def read_external(self, request: Request) -> Answer:
        obj = self.sobject(request)
        field = self.external_field(obj, str(request.path_params["field"]))
        found = self.org.by_value(obj, field, str(request.path_params["value"]))
        if not found:
            raise not_found()
        if len(found) > 1:
            return 300, [self.url(request, obj, r["Id"]) for r in found]
        return 200, self._view(request, obj, found[0])

    async def upsert(self, request: Request) -> Answer:
        obj = self.sobject(request)
        field = self.external_field(obj, str(request.path_params["field"]))
        value = str(request.path_params["value"])
        values = await h.json_object(request)
        found = self.org.by_value(obj, field, value)
        if len(found) > 1:
            return 300, [self.url(request, obj, r["Id"]) for r in found]
        if found:
            self.org.update(obj, found[0], values)
            return 200, {"id": found[0]["Id"], "success": True, "errors": [], "created": False}
        made = self.org.create(
            obj, {**values, field: value}, allow_duplicates=h.allow_save(request)
        )
        return 201, {"id": made["Id"], "success": True, "errors": [], "created": True}

    # -- sObject Collections -------------------------------------------------------------

    async def collection_update(self, request: Request) -> Answer:
        all_or_none, records = await h.collection(request)

        def one(record: dict[str, object]) -> dict[str, object]:
            obj = self._collection_type(record, None)
            rid = record.get("id", record.get("Id"))
            if not isinstance(rid, str) or self.org.find(obj, rid) is None:
                raise SalesforceError(400, "MALFORMED_ID", "Id in a record is not valid", ("Id",))
            stored = self.org.require(obj, rid)
            self.org.update(obj, stored, h.fields_of(record, "id"))
            return {"id": stored["Id"], "success": True, "errors": []}

        return 200, self._each(records, all_or_none, one, {})

    async def collection_create(self, request: Request) -> Answer:
        """``POST …/composite/sobjects``: one SaveResult per record, in order. A field no
        record type has fails the whole request, as the body cannot be read."""
        all_or_none, records = await h.collection(request)
        allow = h.allow_save(request)
        for record in records:
            obj = self._collection_type(record, None)
            for key in h.fields_of(record, "id"):
                if self.org.field(obj, key) is None:
                    raise SalesforceError(
                        400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}"
                    )

        def one(record: dict[str, object]) -> dict[str, object]:
            obj = self._collection_type(record, None)
            if any(k.lower() == "id" for k in record):
                raise SalesforceError(
                    400, "INVALID_FIELD", "cannot specify Id in an insert call", ("Id",)
                )
            made = self.org.create(obj, h.fields_of(record), allow_duplicates=allow)
            return {"id": made["Id"], "success": True, "errors": []}

        return 200, self._each(records, all_or_none, one, {})

    async def collection_upsert(self, request: Request) -> Answer:
        all_or_none, records = await h.collection(request)
        obj = self.sobject(request)
        field = self.external_field(obj, str(request.path_params["field"]))
        allow = h.allow_save(request)

        def one(record: dict[str, object]) -> dict[str, object]:
            self._collection_type(record, obj)
            value = next((v for k, v in record.items() if k.lower() == field.lower()), None)
            if not isinstance(value, str) or not value:
                raise SalesforceError(400, "MISSING_ARGUMENT", f"{field} not specified", (field,))
            values = h.fields_of(record, field)
            found = self.org.by_value(obj, field, value)
            if len(found) > 1:
                raise SalesforceError(
                    400,
                    "DUPLICATE_EXTERNAL_ID",
                    f"Duplicate external id specified: {value}",
                    (field,),
                )
            if found:
                self.org.update(obj, found[0], values)
                return {"id": found[0]["Id"], "success": True, "errors": [], "created": False}
            made = self.org.create(obj, {**values, field: value}, allow_duplicates=allow)
            return {"id": made["Id"], "success": True, "errors": [], "created": True}

        return 200, self._each(records, all_or_none, one, {"created": False})

    async def collection_delete(self, request: Request) -> Answer:
        """``DELETE …/composite/sobjects?ids=…&allOrNone=…``: one DeleteResult per id."""
        ids = [i.strip() for i in request.query_params.get("ids", "").split(",") if i.strip()]
        if not ids:
            raise SalesforceError(400, "MISSING_ARGUMENT", "ids not specified", ("ids",))
        if len(ids) > BATCH_LIMIT:
            raise SalesforceError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {BATCH_LIMIT} records "
                "into this call",
            )
        all_or_none = request.query_params.get("allOrNone", "").lower() == "true"

        def one(record_id: str) -> dict[str, object]:
            obj = self.org.object_of(record_id)
            if obj is None or len(record_id) not in (15, 18) or not record_id.isalnum():
                raise SalesforceError(400, "MALFORMED_ID", f"malformed id {record_id}")
            try:
                deleted = self.org.delete(obj, record_id)
            except SalesforceError as error:
                if error.code != "NOT_FOUND":
                    raise
                raise SalesforceError(
                    400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"
                ) from error
            return {"id": deleted, "success": True, "errors": []}

        return 200, self._each(ids, all_or_none, one, {})

    def _collection_type(self, record: dict[str, object], expected: str | None) -> str:
        kind = h.type_of(record)
        obj = next((o for o in self.org.schemas if kind and o.lower() == kind.lower()), None)
        if obj is None or (expected is not None and obj != expected):
            raise SalesforceError(
                400, "INVALID_TYPE", "Each record needs attributes.type of the request's sObject"
            )
        return obj

    def _each(
        self,
        records: Sequence[Item],
        all_or_none: bool,
        one: Callable[[Item], dict[str, object]],
        failed_extra: dict[str, object],
    ) -> list[dict[str, object]]:
        """One result per record; with ``all_or_none``, any failure undoes every write."""
        saved = copy.deepcopy((self.org.records, self.org.bin))
        results: list[dict[str, object]] = []
        for record in records:
            try:
                results.append(one(record))
            except SalesforceError as error:
                errors = [h.record_error(error)]
                results.append({"id": None, "success": False, "errors": errors, **failed_extra})
        if all_or_none and any(r["success"] is False for r in results):
            self.org.records, self.org.bin = saved
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if r["success"] is False else {**r, "id": None, "success": False,
                                                 "errors": [rolled]}
                for r in results
            ]  # fmt: skip
        return results
