"""Garbage a sandbox can answer with: what a broken proxy, a captive portal or a cut download
hands a client with a ``200``. Every body carries :data:`GARBAGE_CANARY`, text that stands
for a person's data, so a test can check that no message, log or outcome repeats a body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

#: The garbage a sandbox can answer with a 200: a body announced as gzip that is not gzip,
#: JSON cut in half, a captive portal's HTML page, a body far past any sane answer.
GARBAGE_KINDS = ("corrupt_gzip", "truncated_json", "html", "huge")

#: In every garbage body: text that stands for a person's data and must never come back.
GARBAGE_CANARY = "garbage-canary-8d41@people.example"

#: How big ``huge`` is by default: four times the 16 MiB the HTTP edge reads at most.
HUGE_BYTES = 64 * 1024 * 1024


def garbage_response(kind: str, size: int = HUGE_BYTES) -> Response:
    """A ``200`` answer of garbage ``kind`` (one of :data:`GARBAGE_KINDS`)."""
    record = f'{{"results": [{{"id": "1", "email": "{GARBAGE_CANARY}"}}], "total": 1}}'
    if kind == "corrupt_gzip":
        return Response(
            b"\x1f\x8b\x08\x00 not gzip at all: " + GARBAGE_CANARY.encode(),
            headers={"Content-Encoding": "gzip"},
            media_type="application/json",
        )
    if kind == "truncated_json":
        return Response(record[: len(record) // 2].encode(), media_type="application/json")
    if kind == "html":
        page = (
            "<!doctype html><html><head><title>Sign in to the network</title></head>"
            f"<body><p>Welcome, {GARBAGE_CANARY}. Accept the terms to go on.</p></body></html>"
        )
        return Response(page.encode(), media_type="text/html")
    if kind == "huge":
        return StreamingResponse(_huge_body(record.encode(), size), media_type="application/json")
    raise ValueError(f"unknown garbage kind {kind!r}")


async def _huge_body(head: bytes, size: int) -> AsyncIterator[bytes]:
    # Chunk by chunk, so neither the sandbox nor a reader that stops early holds it all.
    chunk = b" " * 65536
    yield head
    sent = len(head)
    while sent < size:
        piece = chunk[: size - sent]
        yield piece
        sent += len(piece)
