"""A SOQL answer read whole: every page of records, following ``nextRecordsUrl`` only as a
path on the instance the query went to (:func:`connectors.salesforce.hosts.page_path`).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Protocol

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
    c = connector
    records: list[dict[str, object]] = []
    while True:
        page = json_object(c, response)
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
        response = await call("GET", path)
