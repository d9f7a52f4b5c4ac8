"""The control API, in-process over ASGI: accepted, refused and answered requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from anyio.abc import ObjectReceiveStream

from connectors.base import TargetOutcome
from sync.control.server import MAX_BODY, build_app
from sync.state import DaemonState, Selection

CRMS = {"hubspot": object(), "hubspot-eu": object()}


async def _check(public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Stands in for Relay.check: says which publicId and targets the route passed on."""
    return {name: {"found": False, "asked": public_id} for name in targets}


class Api:
    """A control API over a fresh state, with the queue it feeds."""

    def __init__(self) -> None:
        self.state = DaemonState(list(CRMS), "test")
        self.send, self.queue = anyio.create_memory_object_stream[Selection](100)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_app(self.state, self.send, CRMS, _check)),
            base_url="http://syncd",
        )

    def queued(self) -> list[Selection]:
        out = []
        receive: ObjectReceiveStream[Selection] = self.queue
        while True:
            try:
                out.append(receive.receive_nowait())
            except anyio.WouldBlock:
                return out


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.client.aclose()
    a.send.close()
    a.queue.close()


class TestSelections:
    """POST /v1/selections and GET /v1/selections/{id}."""

    async def test_accepts_and_queues(self, api: Api) -> None:
        """Valid refs are answered 202 with ids and queued for every CRM by default."""
        response = await api.client.post(
            "/v1/selections", json={"refs": ["ada-lovelace", "https://x.example/in/bob/"]}
        )
        assert response.status_code == 202
        ids = [s["id"] for s in response.json()["selections"]]
        queued = api.queued()
        assert [s.id for s in queued] == ids
        assert [s.public_id for s in queued] == ["ada-lovelace", "bob"]
        assert queued[0].targets == ("hubspot", "hubspot-eu")

    async def test_to_picks_instances(self, api: Api) -> None:
        """`to` limits the targets to the named instances."""
        response = await api.client.post(
            "/v1/selections", json={"refs": ["ada-lovelace"], "to": ["hubspot-eu"]}
        )
        assert response.status_code == 202
        assert api.queued()[0].targets == ("hubspot-eu",)

    @pytest.mark.parametrize(
        ("body", "status", "words"),
        [
            pytest.param(b"{not json", 400, "not valid", id="bad-json"),
            pytest.param(b'{"refs": ["\xff\xfe"]}', 400, "UTF-8", id="bad-utf8"),
            pytest.param(b"[]", 422, "JSON object", id="not-object"),
            pytest.param(b'{"refs": "ada"}', 422, "list of strings", id="refs-string"),
            pytest.param(b'{"refs": []}', 422, "non-empty", id="refs-empty"),
            pytest.param(b'{"refs": [1]}', 422, "list of strings", id="refs-int"),
            pytest.param(b'{"refs": ["ada", "x y"]}', 422, "refs[1]", id="bad-ref"),
            pytest.param(b'{"refs": ["ada"], "to": ["nope"]}', 422, "unknown CRM", id="bad-to"),
            pytest.param(b'{"refs": ["ada"], "to": "hubspot"}', 422, "list of CRM", id="to-str"),
            pytest.param(
                b'{"refs": ["ada"], "with_messages": 1}',
                422,
                "true or false",
                id="with-messages-int",
            ),
            pytest.param(b'{"refs": ["ada"], "extra": 1}', 422, "unknown field", id="extra-key"),
            pytest.param(b'{"refs": ["' + b"a" * MAX_BODY + b'"]}', 413, "larger", id="huge"),
        ],
    )
    async def test_refuses_bad_bodies(self, api: Api, body: bytes, status: int, words: str) -> None:
        """A bad body gets its status and a sentence, and nothing is queued."""
        response = await api.client.post("/v1/selections", content=body)
        assert response.status_code == status
        assert words in response.json()["error"]
        assert api.queued() == []

    async def test_unknown_selection_is_404(self, api: Api) -> None:
        """An id the daemon does not know is a 404 with a sentence."""
        response = await api.client.get("/v1/selections/sel_nope")
        assert response.status_code == 404
        assert "no selection" in response.json()["error"]

    async def test_wait_returns_when_done(self, api: Api) -> None:
        """A waiting GET returns as soon as the selection finishes."""
        response = await api.client.post("/v1/selections", json={"refs": ["ada-lovelace"]})
        sid = response.json()["selections"][0]["id"]
        async with anyio.create_task_group() as tg:

            async def finish() -> None:
                await anyio.lowlevel.checkpoint()
                api.state.finish(sid, {"hubspot": TargetOutcome("created", "7")})

            tg.start_soon(finish)
            with anyio.fail_after(5):
                answer = (await api.client.get(f"/v1/selections/{sid}?wait=30")).json()
        assert answer["state"] == "done"
        assert answer["targets"]["hubspot"]["outcome"] == "created"


class TestStatusAndPause:
    """GET /v1/status, POST /v1/pause and /v1/resume."""

    async def test_status_keys(self, api: Api) -> None:
        """The status object has the keys docs/control-api.openapi.json promises."""
        status = (await api.client.get("/v1/status")).json()
        assert {"state", "version", "uptime_s", "queue", "crms", "recent"} <= set(status)
        assert status["crms"]["hubspot"] == {"health": "ok", "last_error": None}

    async def test_pause_and_resume(self, api: Api) -> None:
        """Pausing shows in status and in the answer to a new selection."""
        assert (await api.client.post("/v1/pause")).json() == {"state": "paused"}
        answer = await api.client.post("/v1/selections", json={"refs": ["ada-lovelace"]})
        assert answer.json()["paused"] is True
        assert (await api.client.get("/v1/status")).json()["state"] == "paused"
        assert (await api.client.post("/v1/resume")).json()["state"] != "paused"

    async def test_unknown_path_is_json_404(self, api: Api) -> None:
        """An unknown path answers a JSON error, not HTML."""
        response = await api.client.get("/v2/whatever")
        assert response.status_code == 404
        assert "error" in response.json()


class TestCheck:
    """POST /v1/check validates before anything is looked up."""

    async def test_passes_the_public_id_and_targets_on(self, api: Api) -> None:
        """A valid ref is parsed; `to` picks the CRMs; the answer is keyed by CRM."""
        response = await api.client.post(
            "/v1/check", json={"ref": "https://www.linkedin.com/in/ada-l/?x=1", "to": ["hubspot"]}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["ref"] == "https://www.linkedin.com/in/ada-l/?x=1"
        assert body["crms"] == {"hubspot": {"found": False, "asked": "ada-l"}}

    @pytest.mark.parametrize(
        "body",
        [
            {"ref": "https://x.example/company/acme/"},
            {"ref": "ada", "to": ["nope"]},
            {"ref": 3},
            {"ref": "ada-l", "extra": 1},
        ],
    )
    async def test_refuses_bad_requests(self, api: Api, body: dict[str, Any]) -> None:
        """A bad ref, unknown CRM name, wrong type or unknown field is a 422 with a sentence."""
        response = await api.client.post("/v1/check", json=body)
        assert response.status_code == 422
        assert response.json()["error"]


class TestPendingCap:
    """Memory stays bounded: past MAX_PENDING unfinished selections, POST answers 503."""

    async def test_refuses_beyond_the_cap_and_accepts_again_below(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from sync.control import server

        monkeypatch.setattr(server, "MAX_PENDING", 3)
        first = await api.client.post("/v1/selections", json={"refs": ["ada-l", "bob-b"]})
        assert first.status_code == 202
        refused = await api.client.post("/v1/selections", json={"refs": ["cy-c", "dee-d"]})
        assert refused.status_code == 503
        assert "pending" in refused.json()["error"]
        assert len(api.queued()) == 2  # nothing of the refused call was queued
        one_more = await api.client.post("/v1/selections", json={"refs": ["cy-c"]})
        assert one_more.status_code == 202
