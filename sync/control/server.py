"""The control API's routes (described in docs/control-api.openapi.json), as one Starlette app."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.control import openapi
from sync.errors import SyncdError, UsageError
from sync.journal import Journal, JournalUnwritable
from sync.refs import parse_ref
from sync.relay import merge_targets
from sync.state import DaemonState, Selection

log = structlog.get_logger("syncd.control")

MAX_BODY = 1 << 20  # 1 MiB: ~10 000 refs; a bigger --from-file is sent in chunks
MAX_REFS = 10_000
MAX_WAIT = 60.0
#: Accepted selections not yet finished that the daemon holds at most (~0.6 KiB of memory
#: each, measured by bench/burst.py): beyond it, POST /v1/selections answers 503.
MAX_PENDING = 100_000

#: Outcomes that mean a CRM holds the person after the selection.
_HELD = ("created", "updated", "unchanged")

#: Answers `POST /v1/check`: (publicId, target names) -> per CRM presence (Relay.check).
CheckFn = Callable[[str, tuple[str, ...]], Awaitable[dict[str, dict[str, Any]]]]


class Rights(Protocol):
    """What the rights routes need of the daemon (sync/rights.py implements it)."""

    async def block(self, public_id: str) -> dict[str, Any]:
        """Put the person on the do-not-sync list."""
        ...

    async def unblock(self, public_id: str) -> dict[str, Any]:
        """Take the person off the do-not-sync list."""
        ...

    async def export(self, public_id: str, targets: tuple[str, ...]) -> dict[str, Any]:
        """What each target CRM holds about the person."""
        ...


class Following(Protocol):
    """What `POST /v1/follow` needs of the daemon (sync/follow.py implements it)."""

    async def set_flag(
        self, public_id: str, targets: tuple[str, ...], follow: bool
    ) -> dict[str, dict[str, Any]]:
        """Set or clear the follow flag on the person's record in each target CRM."""
        ...


class BadRequest(Exception):
    """A request the API refuses, with its status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"the body is larger than {MAX_BODY} bytes; send fewer refs per call")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "the body is not valid UTF-8 JSON") from None
    except RecursionError:
        raise BadRequest(
            400, "the body is nested too deeply to parse; send a flat JSON object"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest(422, "the body must be a JSON object")
    return body


def _selections_request(
    body: Mapping[str, Any], crms: Mapping[str, object]
) -> tuple[list[tuple[str, str]], tuple[str, ...], bool]:
    unknown = sorted(set(body) - {"refs", "to", "with_messages"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {', '.join(unknown)}")
    refs = body.get("refs")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise BadRequest(422, "refs must be a non-empty list of strings")
    if len(refs) > MAX_REFS:
        raise BadRequest(413, f"at most {MAX_REFS} refs per call")
    to = body.get("to")
    if to is not None and (not isinstance(to, list) or not all(isinstance(n, str) for n in to)):
        raise BadRequest(422, "to must be a list of CRM names, or null for every CRM")
    with_messages = body.get("with_messages", False)
    if not isinstance(with_messages, bool):
        raise BadRequest(422, "with_messages must be true or false")
    parsed: list[tuple[str, str]] = []
    for index, ref in enumerate(refs):
        try:
            parsed.append((ref, parse_ref(ref)))
        except UsageError as exc:
            raise BadRequest(422, f"refs[{index}]: {exc}") from None
    try:
        targets = merge_targets(to, crms)
    except ValueError as exc:
        raise BadRequest(422, str(exc)) from None
    return parsed, targets, with_messages


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(422, f"{name} must be true or false")
    return value


def _check_request(
    body: Mapping[str, Any], crms: Mapping[str, object], *, extra: frozenset[str] = frozenset()
) -> tuple[str, str, tuple[str, ...]]:
    unknown = sorted(set(body) - {"ref", "to"} - extra)
    if unknown:
        raise BadRequest(422, f"unknown field(s) {', '.join(unknown)}")
    ref = body.get("ref")
    if not isinstance(ref, str):
        raise BadRequest(422, "ref must be a profile URL or publicId")
    to = body.get("to")
    if to is not None and (not isinstance(to, list) or not all(isinstance(n, str) for n in to)):
        raise BadRequest(422, "to must be a list of CRM names, or null for every CRM")
    try:
        public_id = parse_ref(ref)
        targets = merge_targets(to, crms)
    except (UsageError, ValueError) as exc:
        raise BadRequest(422, str(exc)) from None
    return ref, public_id, targets


def _enqueue(
    state: DaemonState, queue: MemoryObjectSendStream[Selection], selection: Selection
) -> None:
    """Hand a selection to the workers without keeping the caller waiting: into the queue
    when it has room, else (in order) into the backlog the daemon feeds from."""
    if not state.backlog:
        try:
            queue.send_nowait(selection)
        except anyio.WouldBlock:
            pass
        else:
            return
    state.backlog.append(selection)
    state.backlog_ready.set()


def build_app(
    state: DaemonState,
    queue: MemoryObjectSendStream[Selection],
    crms: Mapping[str, object],
    check: CheckFn,
    *,
    journal: Journal | None = None,
    rights: Rights | None = None,
    follower: Following | None = None,
) -> Starlette:
    """The control API over ``state``, feeding accepted selections into ``queue``.

    With a ``journal``, selections are written to it before the 202 goes out. Without
    ``rights`` (the do-not-sync list), forget, export and block answer 503.
    """

    def need_rights() -> Rights:
        if rights is None:
            raise BadRequest(503, "this daemon was started without the do-not-sync list")
        return rights

    async def wait_for(request: Request, selection_id: str) -> None:
        tracked = state.tracked[selection_id]
        try:
            wait = min(MAX_WAIT, max(0.0, float(request.query_params.get("wait", "0"))))
        except ValueError:
            raise BadRequest(422, "wait must be a number of seconds") from None
        if wait and not tracked.finished.is_set():
            with anyio.move_on_after(wait):
                await tracked.finished.wait()

    async def add_selections(request: Request) -> Response:
        body = await _json_body(request)
        parsed, targets, with_messages = _selections_request(body, crms)
        if state.pending() + len(parsed) > MAX_PENDING:
            raise BadRequest(
                503,
                f"syncd already holds {state.pending()} pending selections (at most "
                f"{MAX_PENDING}); wait for some to finish (`syncd status`) and send the rest again",
            )
        selections = [
            Selection(Selection.new_id(), public_id, targets, with_messages)
            for _, public_id in parsed
        ]
        if journal is not None:
            try:
                await journal.append(selections)  # durable before anyone is told "accepted"
            except JournalUnwritable as exc:  # the disk refused: accept nothing
                raise BadRequest(503, str(exc)) from None
        accepted = []
        for (ref, _), selection in zip(parsed, selections, strict=True):
            state.track(selection)
            _enqueue(state, queue, selection)
            accepted.append({"id": selection.id, "ref": ref})
        log.info("selections.accepted", count=len(accepted))
        return JSONResponse(
            {"selections": accepted, "paused": state.paused, "to": list(targets)},
            status_code=202,
        )

    async def get_selection(request: Request) -> Response:
        tracked = state.tracked.get(request.path_params["id"])
        if tracked is None:
            raise BadRequest(404, "no selection with that id (finished ones are kept a while)")
        await wait_for(request, tracked.selection.id)
        return JSONResponse(tracked.as_json())

    async def one_selection(request: Request) -> Response:
        if request.method == "DELETE":
            return await cancel_selection(request)
        return await get_selection(request)

    async def cancel_selection(request: Request) -> Response:
        tracked = state.tracked.get(request.path_params["id"])
        if tracked is None:
            raise BadRequest(404, "no selection with that id (finished ones are kept a while)")
        selection = tracked.selection
        if tracked.cancelled:
            return JSONResponse({"id": selection.id, "cancelled": True})
        if selection.id in state.in_flight:
            raise BadRequest(
                409,
                "this selection is being relayed right now and can no longer be cancelled; "
                f"`syncd forget {selection.public_id}` erases the person from the CRMs after it",
            )
        if tracked.finished_at is not None:
            held = [n for n, o in tracked.targets.items() if o.outcome in _HELD]
            where = ", ".join(held) if held else "no CRM"
            raise BadRequest(
                409,
                f"this selection was already relayed ({where} received it); "
                f"`syncd forget {selection.public_id}` erases the person there",
            )
        state.cancel(selection.id)
        if journal is not None:
            await journal.done(selection.id)  # gone from the disk before the answer
        log.info("selection.cancelled", selection_id=selection.id)
        return JSONResponse({"id": selection.id, "cancelled": True})

    async def forget(request: Request) -> Response:
        body = await _json_body(request)
        ref, public_id, targets = _check_request(body, crms, extra=frozenset({"undo"}))
        undo = _flag(body, "undo")
        rights_ = need_rights()
        if undo:
            try:
                return JSONResponse({"ref": ref, **await rights_.unblock(public_id)})
            except SyncdError as exc:
                raise BadRequest(503, str(exc)) from None
        selection = Selection(Selection.new_id(), public_id, targets, action="forget")
        try:
            # On the list before the journal: a crash in between leaves a block, never a
            # forget that a queued add-contact could overtake.
            await rights_.block(public_id)
            if journal is not None:
                await journal.append([selection])
        except SyncdError as exc:  # the journal's or the list's disk refused: nothing accepted
            raise BadRequest(503, str(exc)) from None
        state.track(selection)
        _enqueue(state, queue, selection)
        log.info("forget.accepted", selection_id=selection.id)
        await wait_for(request, selection.id)
        view = state.tracked[selection.id].as_json()
        return JSONResponse(
            {
                "ref": ref,
                "id": selection.id,
                "state": view["state"],
                "paused": state.paused,
                "crms": view["targets"],
            },
            status_code=202 if view["state"] == "pending" else 200,
        )

    async def export(request: Request) -> Response:
        ref, public_id, targets = _check_request(await _json_body(request), crms)
        answer = await need_rights().export(public_id, targets)
        return JSONResponse({"ref": ref, **answer})

    async def block(request: Request) -> Response:
        body = await _json_body(request)
        unknown = sorted(set(body) - {"ref", "undo"})
        if unknown:
            raise BadRequest(422, f"unknown field(s) {', '.join(unknown)}")
        ref = body.get("ref")
        if not isinstance(ref, str):
            raise BadRequest(422, "ref must be a profile URL or publicId")
        try:
            public_id = parse_ref(ref)
        except UsageError as exc:
            raise BadRequest(422, str(exc)) from None
        rights_ = need_rights()
        try:
            if _flag(body, "undo"):
                return JSONResponse({"ref": ref, **await rights_.unblock(public_id)})
            return JSONResponse({"ref": ref, **await rights_.block(public_id)})
        except SyncdError as exc:  # the list's disk refused: nothing changed
            raise BadRequest(503, str(exc)) from None

    async def check_person(request: Request) -> Response:
        ref, public_id, targets = _check_request(await _json_body(request), crms)
        answer = await check(public_id, targets)
        log.info("check.done", count=len(answer))
        return JSONResponse({"ref": ref, "crms": answer})

    async def status(_: Request) -> Response:
        return JSONResponse(state.status())

    async def pause(_: Request) -> Response:
        state.pause()
        log.info("daemon.paused")
        return JSONResponse({"state": "paused"})

    async def resume(_: Request) -> Response:
        state.resume()
        log.info("daemon.resumed")
        return JSONResponse({"state": state.status()["state"]})

    async def follow(request: Request) -> Response:
        body = await _json_body(request)
        ref, public_id, targets = _check_request(body, crms, extra=frozenset({"undo"}))
        undo = _flag(body, "undo")
        if follower is None:
            raise BadRequest(503, "this daemon was started without follow mode")
        answer = await follower.set_flag(public_id, targets, not undo)
        log.info("follow.set", count=len(answer))
        return JSONResponse({"ref": ref, "crms": answer})

    async def bad_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return _error(exc.status, str(exc))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        answer = _error(exc.status_code, exc.detail)
        answer.headers.update(exc.headers or {})  # a 405 must say Allow (RFC 9110)
        return answer

    async def crashed(_: Request, exc: Exception) -> Response:
        log.error("control.crashed", error_type=type(exc).__name__)
        return _error(500, "internal error in syncd; see the daemon log")

    return Starlette(
        routes=[
            Route("/v1/selections", add_selections, methods=["POST"]),
            Route("/v1/selections/{id}", one_selection, methods=["GET", "DELETE"]),
            Route("/v1/check", check_person, methods=["POST"]),
            Route("/v1/forget", forget, methods=["POST"]),
            Route("/v1/export", export, methods=["POST"]),
            Route("/v1/block", block, methods=["POST"]),
            Route("/v1/follow", follow, methods=["POST"]),
            Route("/v1/status", status, methods=["GET"]),
            Route("/v1/pause", pause, methods=["POST"]),
            Route("/v1/resume", resume, methods=["POST"]),
            Route(openapi.PATH, openapi.serve_document, methods=["GET"]),
        ],
        exception_handlers={
            BadRequest: bad_request,
            HTTPException: http_error,
            Exception: crashed,
        },
    )
