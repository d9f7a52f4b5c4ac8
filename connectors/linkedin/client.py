"""The source client: reads profiles, contact info and conversations, and can do nothing else.

Promise P4 (syncd only ever sends GET to the source) is enforced here, not just followed:
the client's own ``httpx.AsyncClient`` refuses any other method in a request hook, before
a connection is opened, whoever tries to send it.

Promise P1 shapes every error: messages name the instance and the HTTP status, never the
publicId asked for (which people were selected is business data) nor the vendor's text.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from typing import ClassVar, cast

import httpx

from connectors._concurrent import both
from connectors._http import classify_response, json_object
from connectors._session import Session, Vendor
from connectors.base import ConnectorSettings, Message, Person
from connectors.linkedin.mapping import (
    ContactInfo,
    MessagePage,
    Profile,
    ShapeError,
    page_messages,
    to_person,
)
from sync.errors import (
    AuthError,
    FatalConnectorError,
    RecordRejected,
    SyncdError,
)
from sync.retry import RetryPolicy

PUBLIC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,99}$")
BOT_DEFENCE_STATUS = 999
#: The most messages the API returns in one page.
PAGE_SIZE = 50
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def classify(connector: str, response: httpx.Response) -> SyncdError:
    """The error a source response stands for, from its status code alone."""
    status = response.status_code
    if status == 401:
        return AuthError(
            connector,
            f"{connector} rejected the session token (HTTP 401); sign in to the network again "
            f"and store the new token with `syncd auth set {connector}`",
        )
    if status == BOT_DEFENCE_STATUS:
        # Retrying would look even more automated and prolong the block, so this stops here.
        return FatalConnectorError(
            connector,
            "the source is refusing automated traffic for now (HTTP 999); "
            "wait a few minutes before adding more people",
            status=status,
        )
    if status == 404:
        return RecordRejected(
            connector,
            "the source shows no profile for this reference",
            status=status,
            request_id=response.headers.get("x-request-id"),
        )
    return classify_response(connector, response)


def _get_only(connector: str) -> Callable[[httpx.Request], Awaitable[None]]:
    async def refuse_writes(request: httpx.Request) -> None:
        if request.method != "GET":
            raise FatalConnectorError(
                connector,
                f"syncd refused to send {request.method} to {connector}: "
                "it only ever reads from the source",
            )

    return refuse_writes


class LinkedInSource:
    """A read-only client of the source API, for one signed-in member."""

    name: ClassVar[str] = "linkedin"

    def __init__(
        self,
        settings: ConnectorSettings,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - a frozen dataclass, safe to share
    ) -> None:
        self._connector = settings.instance
        # A session token as Bearer; no OAuth. Every request passes the GET-only guard.
        self._session = Session(
            settings.instance,
            credential,
            Vendor(classify),
            base_url=settings.base_url,
            transport=transport,
            retry=retry,
            timeout=TIMEOUT,
            headers={"Accept": "application/json"},
            on_request=[_get_only(settings.instance)],
        )

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying HTTP client; it refuses every method but GET."""
        return self._session.http

    async def _get(
        self, path: str, *, ok: tuple[int, ...] = (200,), params: dict[str, str | int] | None = None
    ) -> httpx.Response:
        return await self._session.call("GET", path, ok=ok, params=params)

    def _check_ref(self, public_id: str) -> None:
        # A publicId becomes a path segment: anything else could point the request elsewhere.
        if not PUBLIC_ID.match(public_id):
            raise RecordRejected(
                self._connector, "the reference is not a valid publicId; nothing was sent"
            )

    def _unreadable(self, what: str, status: int) -> FatalConnectorError:
        return FatalConnectorError(
            self._connector,
            f"{self._connector} answered with {what} syncd cannot read",
            status=status,
        )

    async def check_auth(self) -> None:
        """Raise AuthError unless the session token is accepted."""
        response = await self._get("/v1/me")
        json_object(self._connector, response)

    async def fetch_person(self, public_id: str) -> Person:
        """The profile and shared contact info of one person."""
        self._check_ref(public_id)
        # Both reads at once: one round trip. A 404 of the contact info means the person
        # shares nothing with the member, not that they are gone.
        response, shared = await both(
            partial(self._get, f"/v1/profiles/{public_id}"),
            partial(self._get, f"/v1/profiles/{public_id}/contact-info", ok=(200, 404)),
        )
        profile = cast(Profile, json_object(self._connector, response))
        contact: ContactInfo | None = None
        if shared.status_code == 200:
            contact = cast(ContactInfo, json_object(self._connector, shared))
        try:
            return to_person(profile, contact)
        except ShapeError:
            raise self._unreadable("a profile", response.status_code) from None

    async def fetch_messages(
        self, public_id: str, *, until: Collection[str] = frozenset(), limit: int = 10_000
    ) -> list[Message]:
        """The conversation with one person, newest first: every page until a message whose
        id is in ``until`` (it and older ones are left out) or ``limit`` messages."""
        self._check_ref(public_id)
        messages: list[Message] = []
        read = 0
        while len(messages) < limit:
            count = min(PAGE_SIZE, limit - len(messages))
            params: dict[str, str | int] = {"with": public_id, "start": read, "count": count}
            response = await self._get("/v1/conversations", params=params)
            page = cast(MessagePage, json_object(self._connector, response))
            try:
                elements, total = page_messages(page)
            except ShapeError:
                raise self._unreadable("a message page", response.status_code) from None
            read += len(elements)
            for message in elements:
                if message.id in until:
                    return messages  # the CRMs hold it, and everything older
                messages.append(message)
            if not elements or read >= total:
                break
        return messages[:limit]

    async def aclose(self) -> None:
        """Release connections."""
        await self._session.aclose()


__all__ = ["LinkedInSource", "classify"]
