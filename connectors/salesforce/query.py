"""A SOQL answer read whole: every page of records, following ``nextRecordsUrl`` only as a
path on the instance the query went to (:func:`connectors.salesforce.hosts.page_path`).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm

Queries too long for a URL, or several at once, go as the subrequests of one Composite
request: up to 25 subrequests, at most 5 of them queries, the whole counted as one API call;
the answer holds each subrequest's status and body, in order
(https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlencode

import httpx

from connectors._http import json_object
from connectors.salesforce import hosts
from sync.errors import FatalConnectorError


class Call(Protocol):
    """The client's one API call (see ``SalesforceCRM._call``)."""

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        ok: Container[int] = ...,
        idempotent: bool | None = None,
    ) -> httpx.Response: ...


async def every_page(
    connector: str, response: httpx.Response, call: Call
) -> list[dict[str, object]]:
    """The records of a query's first answer and of every page after it."""
    return await every_record(connector, json_object(connector, response), call)


async def every_record(
    connector: str, page: Mapping[str, object], call: Call
) -> list[dict[str, object]]:
    """The records of a query's first page and of every page after it."""
    c = connector
    records: list[dict[str, object]] = []
    while True:
        found = page.get("records")
        if not isinstance(found, list):
            raise FatalConnectorError(c, f"{c} answered a query without records")
        records += [{str(k): v for k, v in r.items()} for r in found if isinstance(r, dict)]
        following = page.get("nextRecordsUrl")
        if page.get("done") is not False or not isinstance(following, str):
            return records
        path = hosts.page_path(following)
        if path is None:
            raise FatalConnectorError(
                c,
                f"{c} answered a query page link that is not a path on its instance; "
                "syncd did not follow it",
            )
        page = json_object(c, await call("GET", path))


#: The query subrequests one Composite request may carry.
COMPOSITE_QUERIES = 5


def composite_body(data: str, queries: Sequence[str]) -> dict[str, object]:
    """A Composite request body running ``queries`` (at most :data:`COMPOSITE_QUERIES`)."""
    return {
        "compositeRequest": [
            {"method": "GET", "url": f"{data}/query?{urlencode({'q': q})}", "referenceId": f"q{n}"}
            for n, q in enumerate(queries)
        ]
    }


def composite_answers(connector: str, response: httpx.Response, asked: int) -> list[httpx.Response]:
    """Each subrequest's answer of a Composite response, in order, as a response of its own
    (so the one error mapping reads it as it reads any answer)."""
    c = connector
    listed = json_object(c, response).get("compositeResponse")
    if not isinstance(listed, list) or len(listed) != asked:
        raise FatalConnectorError(c, f"{c} answered a composite request wrongly")
    by_ref = {item.get("referenceId"): item for item in listed if isinstance(item, dict)}
    out: list[httpx.Response] = []
    for n in range(asked):
        item = by_ref.get(f"q{n}")
        status = item.get("httpStatusCode") if item is not None else None
        if item is None or not isinstance(status, int):
            raise FatalConnectorError(c, f"{c} answered a composite request wrongly")
        out.append(httpx.Response(status, json=item.get("body"), request=response.request))
    return out
