"""The control API's OpenAPI 3.1 description, served at ``GET /v1/openapi.json``.

``openapi.json`` beside this module is the source of truth (written by hand from the
routes in :mod:`sync.control.server`); ``docs/control-api.openapi.json`` is a byte-for-byte
copy that a test keeps equal.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

PATH = "/v1/openapi.json"


@cache
def document_bytes() -> bytes:
    """The document as shipped in the package."""
    return files("sync.control").joinpath("openapi.json").read_bytes()


def document() -> dict[str, Any]:
    """The document, parsed afresh (callers may change their copy)."""
    parsed: dict[str, Any] = json.loads(document_bytes())
    return parsed


async def serve_document(_: Request) -> Response:
    """The route behind ``GET /v1/openapi.json``."""
    return Response(document_bytes(), media_type="application/json")
