"""The control API against its own OpenAPI document: schemathesis fuzzes every operation
in-process (ASGI), and the document lists exactly the routes the app serves."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import schemathesis
from anyio.streams.memory import MemoryObjectSendStream
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from starlette.applications import Starlette
from starlette.routing import Route

from connectors.base import TargetOutcome
from sync.control import openapi
from sync.control.server import build_app
from sync.state import DaemonState, Selection

CRMS = {"hubspot": object(), "pipedrive": object()}
DOCS_COPY = Path(__file__).parents[2] / "docs" / "control-api.openapi.json"
#: The id the document gives as its example, so the explicit-examples phase finds one.
KNOWN_ID = "sel_3f9a1c0b7e2d4a65"
TIMEOUT = 5.0


async def _check(public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Answers like Relay.check without a network: each shape it can give, by publicId."""
    shapes: list[dict[str, Any]] = [
        {"found": False, "id": None, "owner": None, "url": None, "step": None},
        {"found": True, "id": "7", "owner": "42", "url": "https://crm.example/7", "step": "email"},
        {"found": False, "id": None, "owner": None, "url": None, "step": "name"}
        | {"candidates": ["7", "9"]},
        {"found": False, "refused": "refused: the email's domain is blocked"},
        {"found": False, "error": "hubspot answered HTTP 503", "reason": "unavailable"},
    ]
    await anyio.lowlevel.checkpoint()
    return {name: shapes[len(public_id) % len(shapes)] for name in targets}


class _Rights:
    """Answers like sync/rights.py without a network: a set for the list, each export shape."""

    def __init__(self) -> None:
        self.listed: set[str] = set()

    async def block(self, public_id: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        self.listed.add(public_id)
        return {"blocked": True}

    async def unblock(self, public_id: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        removed = int(public_id in self.listed)
        self.listed.discard(public_id)
        return {"blocked": False, "removed": removed}

    async def export(self, public_id: str, targets: tuple[str, ...]) -> dict[str, Any]:
        shapes: list[dict[str, Any]] = [
            {"found": False},
            {
                "found": True,
                "id": "7",
                "url": "https://crm.example/7",
                "step": "identity",
                "fields": {"first_name": "Ada"},
                "activities": {"count": 1, "dates": ["2026-01-02T03:04:05+00:00"]},
                "synced_at": "2026-01-02T03:04:05Z",
            },
            {"found": False, "error": "hubspot answered HTTP 503", "reason": "unavailable"},
        ]
        await anyio.lowlevel.checkpoint()
        source = {"type": "linkedin", "profile_url": f"https://www.linkedin.com/in/{public_id}"}
        crms = {name: shapes[len(public_id) % len(shapes)] for name in targets}
        return {"source": source, "crms": crms}


class _Follower:
    """Answers like sync/follow.py without a network: each outcome, by publicId."""

    async def set_flag(
        self, public_id: str, targets: tuple[str, ...], follow: bool
    ) -> dict[str, dict[str, Any]]:
        shapes: list[dict[str, Any]] = [
            {"outcome": "following" if follow else "not-following", "id": "7", "detail": ""},
            {"outcome": "absent", "detail": "not in this CRM"},
            {"outcome": "failed", "detail": "several records match", "candidates": ["7", "9"]},
            {"outcome": "refused", "detail": "refused: on the do-not-sync list"},
        ]
        await anyio.lowlevel.checkpoint()
        return {name: shapes[len(public_id) % len(shapes)] for name in targets}


def _app(send: MemoryObjectSendStream[Selection]) -> Starlette:
    state = DaemonState(list(CRMS), "test")
    done = Selection(KNOWN_ID, "ada-lovelace", tuple(CRMS))
    state.track(done)
    state.finish(
        KNOWN_ID,
        {
            "hubspot": TargetOutcome("created", "101"),
            "pipedrive": TargetOutcome("ambiguous", candidates=("5", "8")),
        },
    )
    return build_app(state, send, CRMS, _check, rights=_Rights(), follower=_Follower())


# An unbounded queue that nobody reads: a fuzzed batch of refs never waits on a worker.
SEND, RECEIVE = anyio.create_memory_object_stream[Selection](math.inf)
APP = _app(SEND)
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # A schema-valid body may still be refused: whether a string is a profile ref, or
            # the name of a configured CRM, is the daemon's call (the document says so).
            "positive_data_acceptance": {"enabled": False},
            # More than 10 000 refs is refused as too large, and an unknown id is a 404.
            "negative_data_rejection": {"expected-statuses": [400, 404, 413, 422]},
        }
    }
)
schema = schemathesis.openapi.from_asgi(openapi.PATH, APP, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _close_queue() -> Iterator[None]:
    yield
    SEND.close()
    RECEIVE.close()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_conforms(case: schemathesis.Case[Any]) -> None:
    """Whatever is sent, the answer is documented, matches its schema, is never a 500,
    and comes back within the timeout."""
    if case.path == "/v1/forget":  # nobody takes from the queue here: a wait would only time out
        case.query = {**(case.query or {}), "wait": 0}
    case.call_and_validate(timeout=TIMEOUT)


class TestDocument:
    """The document and the routes agree, and the docs copy is the shipped one."""

    def test_routes_and_paths_match(self) -> None:
        """Every (method, path) the app routes is documented, and nothing else is."""
        served = {
            (method.lower(), route.path)
            for route in APP.routes
            if isinstance(route, Route)
            for method in route.methods or ()
            if method != "HEAD"  # Starlette adds HEAD beside every GET
        }
        documented = {
            (method, path)
            for path, item in openapi.document()["paths"].items()
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        }
        assert served == documented

    def test_docs_copy_is_byte_identical(self) -> None:
        """docs/control-api.openapi.json is the file the package ships and serves."""
        assert DOCS_COPY.read_bytes() == openapi.document_bytes()

    def test_document_is_valid_openapi_31(self) -> None:
        """The document validates against the OpenAPI 3.1 meta-schema."""
        from openapi_spec_validator import validate

        validate(openapi.document())
