"""Request bodies the JSON parser cannot take are the client's fault (400), never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from sync.control.server import MAX_BODY, build_app
from sync.state import DaemonState, Selection

CRMS = {"hubspot": object()}


async def _no_check(public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    send, receive = anyio.create_memory_object_stream[Selection](10)
    app = build_app(DaemonState(list(CRMS), "test"), send, CRMS, _no_check)
    async with (
        send,
        receive,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://syncd") as http,
    ):
        yield http


DEEP = [
    pytest.param(b"[" * 100_000, id="arrays"),
    pytest.param(b'{"a":' * 100_000, id="objects"),
    pytest.param(b'{"refs": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", id="inside-refs"),
]


class TestNestedBodies:
    """A body nested deeper than the parser allows answers 400 with a sentence."""

    @pytest.mark.parametrize("body", DEEP)
    @pytest.mark.parametrize("route", ["/v1/selections", "/v1/check"])
    async def test_deep_nesting_is_400(
        self, client: httpx.AsyncClient, route: str, body: bytes
    ) -> None:
        """Each route that reads a body refuses deep nesting with 400 and {"error"}."""
        assert len(body) <= MAX_BODY
        response = await client.post(route, content=body)
        assert response.status_code == 400
        assert "nested too deeply" in response.json()["error"]

    async def test_daemon_answers_afterwards(self, client: httpx.AsyncClient) -> None:
        """After a deep body the API goes on answering."""
        await client.post("/v1/selections", content=b"[" * 100_000)
        assert (await client.get("/v1/status")).status_code == 200
