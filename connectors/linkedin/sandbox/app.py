"""A local emulator of the source API (``specs/source/openapi.yaml``) as one ASGI app.

It serves the vendor's paths under ``/api``, checks the Bearer token, validates
parameters as the spec does, pages conversations, throttles each token with a sliding
window, and can play the network's bot defence (status 999, empty body). Every method
but GET is recorded by :class:`~rig.sandbox.SandboxCore` as a P4 violation.

Vendor-specific control endpoints, beside the shared ones:

=====  ======================  ==========================================================
POST   /_sandbox/people        ``{"people": [{"profile", "contactInfo", "messages"}]}``
                               adds people, replacing any with the same publicId or id
POST   /_sandbox/bot-defence   ``{"count": N}``: the next N vendor requests answer 999
=====  ======================  ==========================================================
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.linkedin.mapping import ContactInfo, Message, Profile
from connectors.linkedin.sandbox.samples import ME, SamplePerson, sample_people
from rig.sandbox import SandboxCore, SlidingWindow

PUBLIC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,99}$")
BOT_DEFENCE_STATUS = 999
MAX_COUNT = 50
DEFAULT_COUNT = 20


def _let_uvicorn_send_999() -> None:
    # uvicorn's HTTP/1.1 protocols look reason phrases up in tables built for 100-599 and
    # fail with a 500 on anything else; the network's 999 is real, so the emulator adds it.
    from uvicorn.protocols.http import h11_impl

    h11_impl.STATUS_PHRASES.setdefault(BOT_DEFENCE_STATUS, b"Request denied")
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:  # httptools is an optional extra of uvicorn
        return
    line = f"HTTP/1.1 {BOT_DEFENCE_STATUS} Request denied\r\n".encode()
    httptools_impl.STATUS_LINE.setdefault(BOT_DEFENCE_STATUS, line)


_let_uvicorn_send_999()


def error_body(status: int, message: str) -> dict[str, object]:
    """The spec's ``Error`` object."""
    return {"status": status, "message": message}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def _newest_first(messages: Iterable[Message]) -> list[Message]:
    given = list(messages)

    def sent_at(message: Message) -> datetime:
        when = datetime.fromisoformat(message["sentAt"])
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    try:
        return sorted(given, key=sent_at, reverse=True)
    except (KeyError, TypeError, ValueError):
        return given  # a deliberately malformed seed is served as it was given


class _BadRequest(Exception):
    pass


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _BadRequest(f"{name} must be {bounds}")
    return value


class LinkedInSandbox:
    """The source API, emulated in memory; ``app`` is the ASGI app to serve."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        people: Iterable[SamplePerson] | None = None,
        rate_limit: int = 100,
        rate_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = SandboxCore(
            "linkedin", error_body=error_body, tokens=tokens, allowed_methods=frozenset({"GET"})
        )
        self._initial = copy.deepcopy(list(people) if people is not None else sample_people())
        self._rate = (rate_limit, rate_interval, clock)
        self._windows: dict[str, SlidingWindow] = {}
        self._bot_defence = 0
        self._people: dict[str, SamplePerson] = {}
        #: member id -> the publicId it is held under, so replacing a renamed person is one
        #: lookup rather than a scan of everyone (seeding 50 000 people stays linear).
        self._member_keys: dict[str, str] = {}
        self.reset_records()
        vendor = Starlette(
            routes=[
                Route("/api/v1/me", self._me, methods=["GET"]),
                Route("/api/v1/profiles/{publicId}", self._profile, methods=["GET"]),
                Route("/api/v1/profiles/{publicId}/contact-info", self._contact, methods=["GET"]),
                Route("/api/v1/conversations", self._conversations, methods=["GET"]),
            ]
        )
        self.app = self.core.wrap(
            self._guarded(vendor),
            snapshot=self.snapshot,
            reset_records=self.reset_records,
            extra_routes=self._control_routes(),
        )

    # -- knobs and state -------------------------------------------------------------------

    def add_people(self, people: Iterable[SamplePerson]) -> None:
        """Add people, replacing any with the same publicId or member id (a renamed vanity)."""
        for person in people:
            person = copy.deepcopy(person)
            profile = person["profile"]
            member_id, public_id = profile["id"], profile["publicId"]
            old_key = self._member_keys.pop(member_id, None)
            if old_key is not None:
                del self._people[old_key]
            displaced = self._people.get(public_id)
            if displaced is not None:  # another member had this vanity: they are replaced
                self._member_keys.pop(displaced["profile"]["id"], None)
            person["messages"] = _newest_first(person.get("messages", []))
            self._people[public_id] = person
            self._member_keys[member_id] = public_id

    def set_rate_limit(self, limit: int, interval: float) -> None:
        """Allow ``limit`` requests per ``interval`` seconds per token from now on."""
        self._rate = (limit, interval, self._rate[2])
        self._windows.clear()

    def bot_defence(self, count: int) -> None:
        """The next ``count`` vendor requests answer 999 with an empty body."""
        self._bot_defence = max(0, count)

    def reset_records(self) -> None:
        """Restore the initial people, and forget throttling and bot defence."""
        self._people.clear()
        self._member_keys.clear()
        self.add_people(self._initial)
        self._windows.clear()
        self._bot_defence = 0

    def public_ids(self) -> list[str]:
        """The publicIds of everyone the sandbox holds, in the order they were added."""
        return [p["profile"]["publicId"] for p in self._people.values()]

    def snapshot(self) -> dict[str, object]:
        """Who the sandbox holds (the ``/_sandbox/records`` body)."""
        return {
            "people": [
                {
                    "publicId": p["profile"]["publicId"],
                    "id": p["profile"]["id"],
                    "firstName": p["profile"]["firstName"],
                    "lastName": p["profile"]["lastName"],
                    "shared": p.get("contactInfo") is not None,
                    "messages": len(p.get("messages", [])),
                }
                for p in self._people.values()
            ]
        }

    def people_data(self, public_ids: Iterable[str]) -> list[dict[str, str]]:
        """Every text the sandbox would reveal about these people, for residue scans."""
        found: list[dict[str, str]] = []
        for public_id in public_ids:
            person = self._people.get(public_id)
            if person is None:
                continue
            profile = person["profile"]
            values: dict[str, object] = {
                "member_id": profile["id"],
                "public_id": profile["publicId"],
                "first_name": profile["firstName"],
                "last_name": profile["lastName"],
                "headline": profile.get("headline"),
                "location": profile.get("location"),
            }
            for n, position in enumerate(profile.get("positions", [])):
                values[f"company {n}"] = position.get("companyName")
                values[f"title {n}"] = position.get("title")
            contact = person.get("contactInfo") or {}
            values["email"] = contact.get("emailAddress")
            for n, phone in enumerate(contact.get("phoneNumbers", [])):
                values[f"phone {n}"] = phone["number"]
            for n, message in enumerate(person.get("messages", [])):
                values[f"message {n}"] = message["text"]
            found.append({k: v.strip() for k, v in values.items() if isinstance(v, str)})
        return found

    def credential(self, token: str) -> str:
        """What `syncd auth set source` stores for ``token``: the session token itself."""
        return token

    def config_table(self, root_url: str) -> dict[str, object]:
        """The ``[source]`` config table pointing at this sandbox served at ``root_url``."""
        return {"type": "linkedin", "base_url": root_url.rstrip("/") + "/api"}

    # -- the vendor's edge: bot defence, auth, throttling ----------------------------------

    def _guarded(self, vendor: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            refusal = self._refusal(Request(scope)) if scope["type"] == "http" else None
            await (refusal or vendor)(scope, receive, send)

        return app

    def _refusal(self, request: Request) -> Response | None:
        if self._bot_defence > 0:
            self._bot_defence -= 1
            return Response(status_code=BOT_DEFENCE_STATUS)
        token = self.core.bearer(request)
        if token is None or not self.core.accepts(token):
            return _error(401, "the session token is missing, expired or revoked")
        window = self._windows.get(token)
        if window is None:
            limit, interval, clock = self._rate
            window = self._windows[token] = SlidingWindow(limit, interval, clock)
        throttle = window.hit()
        if not throttle.allowed:
            wait = str(max(1, math.ceil(throttle.reset_seconds)))
            return _error(429, "too many requests", {"Retry-After": wait})
        return None

    # -- vendor routes ----------------------------------------------------------------------

    def _person(self, public_id: str) -> SamplePerson | Response:
        if not PUBLIC_ID.match(public_id):
            return _error(400, "the publicId is not valid")
        person = self._people.get(public_id)
        if person is None:
            return _error(404, "no such profile, or not visible to the member")
        return person

    async def _me(self, _: Request) -> Response:
        return JSONResponse(ME)

    async def _profile(self, request: Request) -> Response:
        found = self._person(request.path_params["publicId"])
        if isinstance(found, Response):
            return found
        profile: Profile = found["profile"]
        return JSONResponse(profile)

    async def _contact(self, request: Request) -> Response:
        found = self._person(request.path_params["publicId"])
        if isinstance(found, Response):
            return found
        contact: ContactInfo | None = found.get("contactInfo")
        if contact is None:
            return _error(404, "nothing shared with the member")
        return JSONResponse(contact)

    async def _conversations(self, request: Request) -> Response:
        other = request.query_params.get("with")
        if other is None:
            return _error(400, "the with parameter is required")
        try:
            start = _int_param(request, "start", 0, 0, None)
            count = _int_param(request, "count", DEFAULT_COUNT, 1, MAX_COUNT)
        except _BadRequest as bad:
            return _error(400, str(bad))
        found = self._person(other)
        if isinstance(found, Response):
            return found
        messages = found.get("messages", [])
        page = {
            "elements": messages[start : start + count],
            "paging": {"start": start, "count": count, "total": len(messages)},
        }
        return JSONResponse(page)

    # -- control routes ---------------------------------------------------------------------

    def _control_routes(self) -> list[BaseRoute]:
        async def people(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                body = None
            given = body.get("people") if isinstance(body, dict) else None
            if not isinstance(given, list) or not all(_seedable(p) for p in given):
                return _error(400, 'expected {"people": [{"profile": {...}, ...}]}')
            self.add_people(cast("list[SamplePerson]", given))
            return JSONResponse({"people": len(self._people)})

        async def bot_defence(request: Request) -> Response:
            body = await request.json()
            count = body.get("count", 1) if isinstance(body, dict) else None
            if not isinstance(count, int):
                return _error(400, 'expected {"count": N}')
            self.bot_defence(count)
            return JSONResponse({"bot_defence": self._bot_defence})

        return [
            Route("/_sandbox/people", people, methods=["POST"]),
            Route("/_sandbox/bot-defence", bot_defence, methods=["POST"]),
        ]


def _seedable(person: object) -> bool:
    """Whether a seeded person has the fields the sandbox indexes by."""
    if not isinstance(person, dict) or not isinstance(person.get("profile"), dict):
        return False
    profile = person["profile"]
    public_id = profile.get("publicId")
    return (
        isinstance(public_id, str)
        and PUBLIC_ID.match(public_id) is not None
        and isinstance(profile.get("id"), str)
        and isinstance(person.get("messages", []), list)
    )


__all__ = ["BOT_DEFENCE_STATUS", "LinkedInSandbox", "error_body"]
