"""The source API's JSON shapes, and pure functions from them to syncd's values.

The TypedDicts follow ``specs/source/openapi.yaml``. JSON from the network is only
*claimed* to have these shapes, so the functions check the types they read and raise
:class:`ShapeError` (which names a field, never a value) on anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal, NotRequired, TypedDict, cast

from connectors import base

PhoneType = Literal["MOBILE", "WORK", "HOME", "OTHER"]

#: Which phone number a person is reached at for business, best first.
PHONE_PREFERENCE: tuple[PhoneType, ...] = ("WORK", "MOBILE")


class Me(TypedDict):
    """The signed-in member (``GET /v1/me``)."""

    id: str
    publicId: str
    firstName: str
    lastName: str


class Position(TypedDict):
    """One job on a profile."""

    title: str
    companyName: str
    current: bool
    companyDomain: NotRequired[str | None]
    startedOn: NotRequired[str | None]


class Profile(TypedDict):
    """One profile (``GET /v1/profiles/{publicId}``)."""

    id: str
    publicId: str
    firstName: str
    lastName: str
    profileUrl: str
    positions: list[Position]
    headline: NotRequired[str | None]
    location: NotRequired[str | None]
    industry: NotRequired[str | None]


class PhoneNumber(TypedDict):
    """One shared phone number."""

    number: str
    type: NotRequired[PhoneType]


class ContactInfo(TypedDict, total=False):
    """What a person chose to share (``GET /v1/profiles/{publicId}/contact-info``)."""

    emailAddress: str | None
    phoneNumbers: list[PhoneNumber]
    websites: list[str]


class Message(TypedDict):
    """One message of a conversation."""

    id: str
    conversationId: str
    sender: Literal["me", "them"]
    sentAt: str
    text: str


class Paging(TypedDict):
    """Where a page sits in the whole list."""

    start: int
    count: int
    total: int


class MessagePage(TypedDict):
    """A page of messages (``GET /v1/conversations``)."""

    elements: list[Message]
    paging: Paging


class ShapeError(ValueError):
    """The JSON does not have the documented shape; the message names the field only."""


def _optional(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{key} is not text")
    return value.strip() or None


def _required(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ShapeError(f"{key} is missing or not text")
    return value.strip()


def _list(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ShapeError(f"{key} is not a list of objects")
    return value


def current_position(positions: Sequence[Mapping[str, object]]) -> Mapping[str, object] | None:
    """The first position marked current, if any."""
    return next((p for p in positions if p.get("current") is True), None)


def preferred_phone(numbers: Sequence[Mapping[str, object]]) -> str | None:
    """The first work number, else the first mobile one, else the first of any type."""
    usable = [(n.get("type"), number) for n in numbers if (number := _optional(n, "number"))]
    for wanted in PHONE_PREFERENCE:
        for kind, number in usable:
            if kind == wanted:
                return number
    return usable[0][1] if usable else None


def to_person(profile: Profile, contact: ContactInfo | None = None) -> base.Person:
    """The person a profile and its shared contact info describe."""
    data: Mapping[str, object] = profile
    shared: Mapping[str, object] = contact or {}
    position = current_position(_list(data, "positions"))
    return base.Person(
        member_id=_required(data, "id"),
        public_id=_required(data, "publicId"),
        first_name=_required(data, "firstName"),
        last_name=_required(data, "lastName"),
        profile_url=_required(data, "profileUrl"),
        headline=_optional(data, "headline"),
        location=_optional(data, "location"),
        email=_optional(shared, "emailAddress"),
        phone=preferred_phone(_list(shared, "phoneNumbers")),
        company=_optional(position, "companyName") if position else None,
        company_domain=_optional(position, "companyDomain") if position else None,
        title=_optional(position, "title") if position else None,
    )


def _timestamp(data: Mapping[str, object], key: str) -> datetime:
    raw = _required(data, key)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ShapeError(f"{key} is not a date-time") from None
    # The spec's date-time carries an offset; a naive one is read as UTC, not local time.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def to_message(message: Message) -> base.Message:
    """One vendor message as syncd's :class:`~connectors.base.Message`."""
    data: Mapping[str, object] = message
    sender = data.get("sender")
    if sender not in ("me", "them"):
        raise ShapeError("sender is neither 'me' nor 'them'")
    text = data.get("text")
    if not isinstance(text, str):
        raise ShapeError("text is missing or not text")
    return base.Message(
        id=_required(data, "id"),
        conversation_id=_required(data, "conversationId"),
        sender="me" if sender == "me" else "them",
        sent_at=_timestamp(data, "sentAt"),
        # Message text is kept as written: its line breaks and indentation are content.
        text=text,
    )


def page_messages(page: MessagePage) -> tuple[list[base.Message], int]:
    """The messages of one page, and the total the source reports for the whole list."""
    data: Mapping[str, object] = page
    paging = data.get("paging")
    total = paging.get("total") if isinstance(paging, Mapping) else None
    if not isinstance(total, int) or isinstance(total, bool):
        raise ShapeError("paging.total is missing or not a number")
    elements = _list(data, "elements")
    # to_message checks every field it reads, so the cast claims nothing unchecked.
    return [to_message(cast(Message, e)) for e in elements], total


__all__ = [
    "ContactInfo",
    "Me",
    "Message",
    "MessagePage",
    "Paging",
    "PhoneNumber",
    "Position",
    "Profile",
    "ShapeError",
    "current_position",
    "page_messages",
    "preferred_phone",
    "to_message",
    "to_person",
]
