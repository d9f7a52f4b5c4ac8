"""syncd's canonical person fields as Pipedrive API v2 persons, and the JSON shapes the
client and the sandbox exchange.

Shapes follow Pipedrive's published OpenAPI files (``specs/pipedrive/v2.yaml``:
``/persons``, ``/persons/{id}``, ``/persons/search``, ``/personFields``, ``/organizations``,
``/organizations/search``; ``v1.yaml``: ``/notes``) and
https://developers.pipedrive.com/docs/api/v1 for the envelope. JSON from the network is
checked into these TypedDicts at the edge; nothing past it is ``Any``.

Where a canonical field goes:

============  ==========================================================================
first/last    ``name`` (v2 takes one name on writes and answers ``first_name``/``last_name``)
email         the primary entry of ``emails`` (``[{value, primary, label}]``)
phone         the primary entry of ``phones``
company       ``org_id``: an organization found by exact name, or created
title         ``job_title`` (a contact-sync field; written only where the account has it)
linkedin_url  a custom text field found by name (default "LinkedIn profile URL")
location      ``postal_address.value`` (contact sync, as ``job_title``)
member id     a custom text field found by name (default "syncd member id")
synced at     a custom text field "syncd synced at": the instant of syncd's last write
============  ==========================================================================

Each message syncd relays is one note on the person (:func:`note_content`): the text, a line
with its direction and time, and a marker line (:func:`note_marker`) carrying the activity
key; only notes that end with the marker are syncd's to count, delete or export
(:func:`is_syncd_note`, :func:`note_key`). Followed people carry a text custom field
"syncd follow" set to :data:`FOLLOWING`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NotRequired, TypedDict

from connectors.base import FIELDS, Activity

#: Standard person fields that exist only once the company has set up contact sync.
JOB_TITLE: Final = "job_title"
POSTAL_ADDRESS: Final = "postal_address"

#: How many items a v2 list or search (or a v1 list) answers at most per page.
PAGE_LIMIT = 500

#: The person custom field every write stamps with its time (``connectors.base.SYNCED_AT``).
#: A ``varchar`` field (text, up to 255 characters), not a ``date``: Pipedrive's ``date``
#: type holds only ``YYYY-MM-DD`` (``v2.yaml``, ``POST /personFields``), and a retention
#: review and `syncd export` want the instant, which an ISO 8601 string keeps whole and
#: still sorts as text.
SYNCED_AT_FIELD: Final = "syncd synced at"

#: The last line of every note syncd writes on a person, before the source's message id.
#: Plain text, so it survives Pipedrive's sanitising of note HTML.
NOTE_MARKER: Final = "relayed by syncd · message "
_MARKER_LINE = re.compile(re.escape(NOTE_MARKER) + r"(\S+)")
#: Pipedrive's note size: "approximately 100,000 characters (or 100KB per note)"
#: (``v1.yaml``, the Notes tag). Read as 100,000 bytes of UTF-8, the stricter reading.
NOTE_CONTENT_LIMIT: Final = 100_000
#: Room kept in a note for what surrounds the message text: the paragraph tags, the
#: direction line and the marker line with its key (source message ids are short; 1,000
#: bytes leaves a key of 900).
NOTE_OVERHEAD: Final = 1_000
#: The longest message text (in characters) one note carries; a longer one is split
#: (``connectors.base.activities``). Each character can grow to 5 bytes in the note
#: (``&`` is written ``&amp;``; a newline ``<br>``; any code point is at most 4 bytes of
#: UTF-8), so any text of this length fits 100 KB whatever it holds. LinkedIn messages
#: stop at 8,000 characters, so a real message is never split.
BODY_LIMIT: Final = (NOTE_CONTENT_LIMIT - NOTE_OVERHEAD) // 5
#: The person custom field that marks a followed person (``connectors.base.FOLLOW``): text
#: (``varchar``), because person search looks into text-like custom fields only (``v2.yaml``,
#: ``/persons/search``), not into a single-option ``enum``; so ``followed`` is one exact
#: search for :data:`FOLLOWING` instead of listing every person of the company.
FOLLOW_FIELD: Final = "syncd follow"
#: The "syncd follow" value of a followed person: a word no other field is likely to hold
#: whole (unlike "yes"), so the exact search finds few strangers; each hit is read back and
#: checked anyway. Cleared, the field is empty.
FOLLOWING: Final = "following"
_DIRECTION = {"me": "sent", "them": "received"}
_NOTE = re.compile(
    r"<p>(?P<body>.*)</p><p>LinkedIn message (?P<direction>sent|received) "
    r"(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d) UTC</p><p>(?P<marker>[^<]*)</p>",
    re.DOTALL,
)
_BREAK = re.compile(r"<\s*(?:br|/p|/div|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


class ContactPoint(TypedDict):
    """One entry of a person's ``emails`` or ``phones``."""

    value: str
    primary: bool
    label: str


class Address(TypedDict, total=False):
    """``postal_address``: the formatted ``value`` and its parts."""

    value: str | None
    locality: str | None
    country: str | None


class Person(TypedDict):
    """A person as ``GET /api/v2/persons/{id}`` answers it."""

    id: int
    name: str
    first_name: str | None
    last_name: str | None
    owner_id: int | None
    org_id: int | None
    add_time: str
    update_time: str
    emails: list[ContactPoint]
    phones: list[ContactPoint]
    is_deleted: bool
    visible_to: int
    label_ids: list[int]
    picture_id: int | None
    custom_fields: dict[str, str | None]
    job_title: NotRequired[str | None]
    postal_address: NotRequired[Address | None]


class Organization(TypedDict):
    """An organization as ``GET /api/v2/organizations/{id}`` answers it."""

    id: int
    name: str
    owner_id: int | None
    add_time: str
    update_time: str
    is_deleted: bool
    visible_to: int
    label_ids: list[int]
    address: Address | None
    custom_fields: dict[str, str | None]


class FieldDefinition(TypedDict):
    """One entry of ``GET /api/v2/personFields``."""

    field_name: str
    field_code: str
    field_type: str
    options: list[dict[str, object]] | None
    subfields: list[dict[str, str]] | None
    is_custom_field: bool
    is_optional_response_field: bool


class Note(TypedDict):
    """A note as ``/api/v1/notes`` answers it (the fields syncd uses)."""

    id: int
    content: str
    person_id: int | None
    org_id: int | None
    deal_id: int | None
    user_id: int
    add_time: str
    update_time: str
    active_flag: bool
    pinned_to_person_flag: bool


class TokenResponse(TypedDict):
    """The answer of ``POST https://oauth.pipedrive.com/oauth/token``."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    scope: str
    api_domain: str


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Where this company keeps what syncd writes: the hashed keys of syncd's custom
    fields ("" while a field does not exist), and whether the contact-sync fields exist."""

    member_id: str
    profile_url: str
    job_title: bool = False
    postal_address: bool = False
    #: The key of the "syncd synced at" field.
    synced_at: str = ""


def primary(points: list[ContactPoint]) -> str | None:
    """The primary entry's value (else the first), stripped; None if there is none."""
    chosen = next((p for p in points if p["primary"]), points[0] if points else None)
    value = (chosen["value"] if chosen else "").strip()
    return value or None


def with_primary(points: list[ContactPoint], value: str) -> list[ContactPoint]:
    """``points`` with ``value`` as the primary entry; the old ones are kept as secondary,
    so nothing a human entered is lost (v2 replaces the whole list on a write)."""
    kept: list[ContactPoint] = [
        {"value": p["value"], "primary": False, "label": p["label"]}
        for p in points
        if p["value"].strip().casefold() != value.casefold()
    ]
    return [{"value": value, "primary": True, "label": "work"}, *kept]


def full_name(first: str | None, last: str | None) -> str:
    """``name`` as Pipedrive stores it from a first and a last name."""
    return " ".join(p for p in ((first or "").strip(), (last or "").strip()) if p)


def split_name(name: str) -> tuple[str, str]:
    """``(first_name, last_name)`` as Pipedrive derives them from ``name``: the first word,
    then the rest."""
    words = name.split()
    return (words[0] if words else "", " ".join(words[1:]))


def person_fields(person: Person, fields: FieldMap, company: str | None) -> dict[str, str]:
    """A person as syncd's canonical fields, empty ones left out; ``company`` is the name
    of its organization, which the person record itself does not carry."""
    custom = person["custom_fields"]
    address = person.get("postal_address") or {}
    values = {
        "first_name": person["first_name"],
        "last_name": person["last_name"],
        "email": (primary(person["emails"]) or "").lower(),
        "phone": primary(person["phones"]),
        "company": company,
        "title": person.get("job_title"),
        "linkedin_url": custom.get(fields.profile_url),
        "location": address.get("value"),
    }
    return {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}


def member_of(person: Person, fields: FieldMap) -> str | None:
    """The member id in syncd's identity field, if any."""
    value = person["custom_fields"].get(fields.member_id)
    return value.strip() if isinstance(value, str) and value.strip() else None


def desired(fields: Mapping[str, str], field_map: FieldMap) -> dict[str, str]:
    """The canonical fields syncd can write to this company, as they read back (emails in
    lower case; title and location only where the contact-sync fields exist)."""
    out = {k: v.strip() for k, v in fields.items() if k in FIELDS and v.strip()}
    if "email" in out:
        out["email"] = out["email"].lower()
    if not field_map.job_title:
        out.pop("title", None)
    if not field_map.postal_address:
        out.pop("location", None)
    return out


def person_body(
    write: Mapping[str, str],
    field_map: FieldMap,
    existing: Person | None,
    *,
    member_id: str | None,
) -> dict[str, object]:
    """The JSON body of ``POST /api/v2/persons`` or ``PATCH /api/v2/persons/{id}`` for the
    canonical fields ``write`` (``company`` is linked by the caller, as ``org_id``)."""
    body: dict[str, object] = {}
    if "first_name" in write or "last_name" in write:
        first = write.get("first_name", (existing["first_name"] if existing else None) or "")
        last = write.get("last_name", (existing["last_name"] if existing else None) or "")
        body["name"] = full_name(first, last)
    if "email" in write:
        body["emails"] = with_primary(existing["emails"] if existing else [], write["email"])
    if "phone" in write:
        body["phones"] = with_primary(existing["phones"] if existing else [], write["phone"])
    if "title" in write:
        body[JOB_TITLE] = write["title"]
    if "location" in write:
        body[POSTAL_ADDRESS] = {"value": write["location"]}
    custom: dict[str, str] = {}
    if "linkedin_url" in write:
        custom[field_map.profile_url] = write["linkedin_url"]
    if member_id is not None:
        custom[field_map.member_id] = member_id
    if custom:
        body["custom_fields"] = custom
    return body


def synced_at(at: datetime) -> str:
    """The "syncd synced at" value for a write made at ``at``: ISO 8601 in UTC, to the
    second (``2026-01-14T10:20:00Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamped(body: Mapping[str, object], field_map: FieldMap, at: datetime) -> dict[str, object]:
    """``body`` with the "syncd synced at" field set to ``at``, beside its other custom
    fields; unchanged while the field does not exist."""
    out = dict(body)
    if field_map.synced_at:
        custom = out.get("custom_fields")
        merged = dict(custom) if isinstance(custom, dict) else {}
        out["custom_fields"] = {**merged, field_map.synced_at: synced_at(at)}
    return out


def synced_at_of(person: Person, field_map: FieldMap) -> str | None:
    """The person's "syncd synced at" value as Pipedrive holds it, if any."""
    value = person["custom_fields"].get(field_map.synced_at) if field_map.synced_at else None
    return value.strip() if isinstance(value, str) and value.strip() else None


# -- notes syncd writes ------------------------------------------------------------------------


def note_marker(message_id: str) -> str:
    """The marker line that ends the note syncd writes for the source message ``message_id``
    (issue 12): ``relayed by syncd · message <id>``."""
    token = "".join(message_id.split())
    if not token:
        raise ValueError("a note marker needs a message id")
    return NOTE_MARKER + token


def direction_line(activity: Activity) -> str:
    """The line under a message's text: who sent it and when (UTC, to the minute), e.g.
    ``LinkedIn message sent 2026-03-01 09:01 UTC``."""
    at = activity.message.sent_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return f"LinkedIn message {_DIRECTION[activity.message.sender]} {at} UTC"


def note_content(activity: Activity) -> str:
    """The ``content`` of the note for ``activity``: its body HTML-escaped (a newline as
    ``<br>``), the direction line and the marker line, one paragraph each."""
    body = html.escape(activity.body, quote=False).replace("\n", "<br>")
    lines = (direction_line(activity), note_marker(activity.key))
    return f"<p>{body}</p>" + "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in lines)


def v1_stamp(at: datetime) -> str:
    """``at`` as API v1 takes a time: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class NoteText:
    """A note syncd wrote, read back whole: what :func:`note_content` put in it."""

    key: str
    body: str
    direction: str
    #: The message time from the direction line (to the minute).
    at: datetime


def read_note(content: str) -> NoteText | None:
    """A note's content as :func:`note_content` wrote it, taken apart exactly; None for
    any other note (a human's, or one Pipedrive's sanitising reshaped)."""
    found = _NOTE.fullmatch(content)
    if found is None:
        return None
    marker = _MARKER_LINE.fullmatch(html.unescape(found["marker"]))
    if marker is None:
        return None
    body = html.unescape(found["body"].replace("<br>", "\n"))
    at = datetime.strptime(found["at"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    return NoteText(marker[1], body, found["direction"], at)


def note_key(content: str) -> str | None:
    """The activity key in a syncd note's marker line (the last line of text); None for a
    note without one."""
    lines = note_lines(content)
    marker = _MARKER_LINE.fullmatch(lines[-1]) if lines else None
    return marker[1] if marker else None


def note_time(note: Note) -> datetime | None:
    """When the message of a syncd note was sent: its ``add_time`` (syncd sets it to the
    message time, to the second) when that agrees with the direction line, else the
    direction line's minute (should Pipedrive have kept the time of the write)."""
    added = v1_time(note["add_time"])
    written = read_note(note["content"])
    if written is None:
        return added
    if added is not None and added.replace(second=0) == written.at:
        return added
    return written.at


def note_lines(content: str) -> list[str]:
    """A note's content as Pipedrive answers it (sanitised HTML) as its non-empty lines of
    plain text, spaces folded."""
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", content)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if line]


def is_syncd_note(content: str) -> bool:
    """Whether a note is one syncd wrote: its last line of text is a :func:`note_marker`.
    A human's note, even one that quotes a marker mid-text, is not."""
    lines = note_lines(content)
    return bool(lines) and _MARKER_LINE.fullmatch(lines[-1]) is not None


def v1_time(value: str) -> datetime | None:
    """A v1 timestamp (``2019-12-09 13:59:21``, UTC) as an aware datetime, or None."""
    try:
        parsed = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC)


# -- JSON from the network, checked at the edge ----------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _points_from(value: object) -> list[ContactPoint]:
    if not isinstance(value, list):
        return []
    return [
        {
            "value": item["value"],
            "primary": item.get("primary") is True,
            "label": str(item.get("label") or ""),
        }
        for item in value
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    ]


def person_from(item: object) -> Person | None:
    """A v2 person from JSON, or None if it is not shaped like one."""
    if not isinstance(item, dict) or _int(item.get("id")) is None:
        return None
    custom = item.get("custom_fields")
    address = item.get(POSTAL_ADDRESS)
    person: Person = {
        "id": int(item["id"]),
        "name": _text(item.get("name")) or "",
        "first_name": _text(item.get("first_name")),
        "last_name": _text(item.get("last_name")),
        "owner_id": _int(item.get("owner_id")),
        "org_id": _int(item.get("org_id")),
        "add_time": _text(item.get("add_time")) or "",
        "update_time": _text(item.get("update_time")) or "",
        "emails": _points_from(item.get("emails")),
        "phones": _points_from(item.get("phones")),
        "is_deleted": item.get("is_deleted") is True,
        "visible_to": _int(item.get("visible_to")) or 0,
        "label_ids": [i for i in item.get("label_ids") or [] if isinstance(i, int)],
        "picture_id": _int(item.get("picture_id")),
        "custom_fields": {
            str(k): (str(v) if isinstance(v, str | int | float) else None)
            for k, v in (custom.items() if isinstance(custom, dict) else ())
        },
    }
    if JOB_TITLE in item:
        person[JOB_TITLE] = _text(item.get(JOB_TITLE))
    if isinstance(address, dict):
        person[POSTAL_ADDRESS] = {"value": _text(address.get("value"))}
    return person


def note_from(item: object) -> Note | None:
    """A v1 note from JSON, or None if it is not shaped like one."""
    if not isinstance(item, dict) or _int(item.get("id")) is None:
        return None
    return {
        "id": int(item["id"]),
        "content": _text(item.get("content")) or "",
        "person_id": _int(item.get("person_id")),
        "org_id": _int(item.get("org_id")),
        "deal_id": _int(item.get("deal_id")),
        "user_id": _int(item.get("user_id")) or 0,
        "add_time": _text(item.get("add_time")) or "",
        "update_time": _text(item.get("update_time")) or "",
        "active_flag": item.get("active_flag") is not False,
        "pinned_to_person_flag": item.get("pinned_to_person_flag") is True,
    }


def search_items(data: object) -> list[dict[str, Any]]:
    """The ``item`` of each v2 search result that has an integer id."""
    items = data.get("items") if isinstance(data, dict) else None
    out = []
    for entry in items if isinstance(items, list) else []:
        item = entry.get("item") if isinstance(entry, dict) else None
        if isinstance(item, dict) and isinstance(item.get("id"), int):
            out.append(item)
    return out


def field_from(item: object) -> FieldDefinition | None:
    """One person field definition from JSON, or None."""
    if not isinstance(item, dict):
        return None
    name, code, kind = item.get("field_name"), item.get("field_code"), item.get("field_type")
    if not (isinstance(name, str) and isinstance(code, str) and isinstance(kind, str)):
        return None
    return {
        "field_name": name,
        "field_code": code,
        "field_type": kind,
        "options": None,
        "subfields": None,
        "is_custom_field": item.get("is_custom_field") is True,
        "is_optional_response_field": item.get("is_optional_response_field") is True,
    }
