"""syncd's canonical person fields as HubSpot contact properties, and the JSON shapes of
the HubSpot CRM v3 endpoints the client and the sandbox exchange.

Shapes follow https://developers.hubspot.com/docs/api/crm/contacts (records),
https://developers.hubspot.com/docs/api/crm/properties (property definitions) and
https://developers.hubspot.com/docs/api-reference/error-handling (errors). JSON from the
network is checked into these TypedDicts at the edge; nothing past it is ``Any``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

from connectors.base import FOLLOW, MESSAGE_ID, SYNCED_AT, Activity

#: Where syncd keeps the source's stable member id (``urn:li:member:2002``). A custom
#: string property with ``hasUniqueValue``: HubSpot then refuses a second record with the
#: same value (409) and lets ``batch/read`` look records up by it.
IDENTITY_PROPERTY = "syncd_member_id"

#: HubSpot's documentation lists no default contact property for a LinkedIn profile URL
#: (``hs_linkedin_url`` appears in third-party code, not in the docs, and may be
#: enrichment-managed), so syncd brings its own, ensured like the identity property.
LINKEDIN_PROPERTY = "syncd_linkedin_url"

#: When syncd last wrote the contact: a custom ``datetime`` property (``fieldType``
#: ``date``), ensured like the identity property and set by every create and update.
#: HubSpot takes a datetime value as ISO 8601 or as epoch milliseconds and answers it as
#: ISO 8601 UTC with milliseconds (https://developers.hubspot.com/docs/api/crm/properties).
SYNCED_AT_PROPERTY = SYNCED_AT

#: Canonical field -> HubSpot contact property.
PROPERTY_OF: dict[str, str] = {
    "first_name": "firstname",
    "last_name": "lastname",
    "email": "email",
    "phone": "phone",
    "company": "company",
    "title": "jobtitle",
    "linkedin_url": LINKEDIN_PROPERTY,
    # A profile's location is one free-text line ("Lyon, France"); HubSpot splits an
    # address into city/state/country, and city is the closest single home for it.
    "location": "city",
}

#: HubSpot contact property -> canonical field.
FIELD_OF: dict[str, str] = {prop: field for field, prop in PROPERTY_OF.items()}

#: The HubSpot user who owns a record (a default contact property).
OWNER_PROPERTY = "hubspot_owner_id"

#: Every property the client asks for when it reads a contact.
READ_PROPERTIES: tuple[str, ...] = (*PROPERTY_OF.values(), IDENTITY_PROPERTY, OWNER_PROPERTY)

#: What `syncd export` reads back: the mapped properties and when syncd last wrote.
EXPORT_PROPERTIES: tuple[str, ...] = (*PROPERTY_OF.values(), IDENTITY_PROPERTY, SYNCED_AT_PROPERTY)

#: Association type ids the later verbs need (HubSpot-defined): note -> contact, and
#: contact -> company. Notes also need ``hs_timestamp``.
NOTE_TO_CONTACT = 202
CONTACT_TO_COMPANY = 279

#: The batch endpoints take at most this many inputs per request.
BATCH_LIMIT = 100

# -- LinkedIn messages as Communications --------------------------------------------------
# https://developers.hubspot.com/docs/api/crm/communications: a message is a communication
# with ``hs_communication_channel_type`` LINKEDIN_MESSAGE, ``hs_communication_logged_from``
# CRM (required as is), ``hs_communication_body`` and ``hs_timestamp`` (where it sits on the
# timeline), associated to the contact in the create.

COMMUNICATIONS = "/crm/v3/objects/communications"
#: HubSpot-defined association types communication -> contact (the guide's example uses it)
#: and its reverse, as the v4 list of a contact's communications labels them.
COMMUNICATION_TO_CONTACT = 81
CONTACT_TO_COMMUNICATION = 82
#: Communications' object type id, as the v4 associations API also accepts it.
COMMUNICATION_TYPE_ID = "0-18"
CHANNEL_PROPERTY = "hs_communication_channel_type"
LOGGED_FROM_PROPERTY = "hs_communication_logged_from"
BODY_PROPERTY = "hs_communication_body"
TIMESTAMP_PROPERTY = "hs_timestamp"
LINKEDIN_MESSAGE = "LINKEDIN_MESSAGE"
#: The channel types and the one logged-from value the guide lists.
CHANNEL_TYPES = ("WHATS_APP", "LINKEDIN_MESSAGE", "SMS")
LOGGED_FROM = "CRM"

#: The key of each communication syncd writes (see ``connectors.base.MESSAGE_ID``): a custom
#: string property of the communications object, ensured on first use.
MESSAGE_ID_PROPERTY = MESSAGE_ID

#: HubSpot documents a string property value as "limited to 65,536 characters"
#: (https://developers.hubspot.com/docs/guides/api/crm/properties). HubSpot runs on the JVM,
#: where a character is a UTF-16 unit: an emoji counts two.
TEXT_LIMIT = 65_536

#: The communications API has no direction property (the guide lists none), so the body says
#: it, first, as a HubSpot user reads it on the timeline.
DIRECTION_PREFIX = {"me": "Sent: ", "them": "Received: "}

#: The longest :class:`connectors.base.Activity` body syncd writes, in Python characters
#: (code points): even made only of emoji (two UTF-16 units each) and behind the longest
#: direction prefix, it stays within :data:`TEXT_LIMIT`.
BODY_LIMIT = (TEXT_LIMIT - max(map(len, DIRECTION_PREFIX.values()))) // 2

#: The contact property that marks a followed person (``connectors.base.FOLLOW``): a HubSpot
#: ``bool``, whose values travel as the strings "true" and "false".
FOLLOW_PROPERTY = FOLLOW


def utf16_length(text: str) -> int:
    """How long HubSpot counts ``text``: in UTF-16 units."""
    return len(text.encode("utf-16-le")) // 2


def communication_body(activity: Activity) -> str:
    """The ``hs_communication_body`` of an activity: its direction, then its body."""
    return DIRECTION_PREFIX[activity.message.sender] + activity.body


def read_body(body: str) -> tuple[str | None, str]:
    """A ``hs_communication_body`` syncd wrote as (``"sent"``/``"received"``, the activity's
    body); (None, body) for a body without syncd's direction prefix."""
    for sender, prefix in DIRECTION_PREFIX.items():
        if body.startswith(prefix):
            return ("sent" if sender == "me" else "received"), body[len(prefix) :]
    return None, body


def communication_input(record_id: str, activity: Activity) -> dict[str, object]:
    """One input of ``POST /crm/v3/objects/communications/batch/create``: the message as a
    LinkedIn communication, associated to contact ``record_id`` in the same request."""
    sent_at = activity.message.sent_at.astimezone(UTC)
    return {
        "properties": {
            CHANNEL_PROPERTY: LINKEDIN_MESSAGE,
            LOGGED_FROM_PROPERTY: LOGGED_FROM,
            BODY_PROPERTY: communication_body(activity),
            TIMESTAMP_PROPERTY: sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            MESSAGE_ID_PROPERTY: activity.key,
        },
        "associations": [
            {
                "to": {"id": record_id},
                "types": [
                    {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": COMMUNICATION_TO_CONTACT,
                    }
                ],
            }
        ],
    }


class PropertyOption(TypedDict):
    """One option of an enumeration or bool property."""

    label: str
    value: str
    displayOrder: int
    hidden: bool


class PropertyCreate(TypedDict):
    """The body of ``POST /crm/v3/properties/{object}`` (``options`` for enumerations and
    bools)."""

    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: NotRequired[str]
    hasUniqueValue: NotRequired[bool]
    formField: NotRequired[bool]
    options: NotRequired[list[PropertyOption]]


class PropertyDefinition(PropertyCreate):
    """A property as ``GET /crm/v3/properties/contacts/{name}`` answers it."""

    hidden: bool
    displayOrder: int
    calculated: bool
    externalOptions: bool
    createdAt: str
    updatedAt: str
    archived: bool
    modificationMetadata: dict[str, bool]


class SimplePublicObject(TypedDict):
    """One contact record: properties are strings, or null when asked for and empty."""

    id: str
    properties: dict[str, str | None]
    createdAt: str
    updatedAt: str
    archived: bool


class ErrorDetail(TypedDict, total=False):
    """One entry of an error's ``errors`` list."""

    message: str
    code: str
    subCategory: str
    context: dict[str, list[str]]
    # "in" (where the error is) is a Python keyword; both sides leave it out.


class StandardError(TypedDict):
    """An error body (and each entry of a batch answer's ``errors``)."""

    status: str
    message: str
    category: str
    correlationId: NotRequired[str]
    subCategory: NotRequired[str]
    context: NotRequired[dict[str, list[str]]]
    errors: NotRequired[list[ErrorDetail]]


class RateLimitError(TypedDict):
    """A 429 body, as https://developers.hubspot.com/docs/api/usage-details shows it."""

    status: str
    message: str
    errorType: str
    correlationId: str
    policyName: str
    requestId: str


class BatchResponse(TypedDict):
    """The answer of a ``batch/*`` endpoint: 200, or 207 when ``errors`` is not empty."""

    status: str
    results: list[SimplePublicObject]
    startedAt: str
    completedAt: str
    numErrors: NotRequired[int]
    errors: NotRequired[list[StandardError]]


class BatchReadInput(TypedDict):
    """The body of ``POST /crm/v3/objects/contacts/batch/read``."""

    inputs: list[dict[str, str]]
    properties: list[str]
    idProperty: NotRequired[str]


class BatchUpdateItem(TypedDict):
    """One input of ``batch/update``."""

    id: str
    properties: dict[str, str]


class TokenResponse(TypedDict):
    """The answer of ``POST /oauth/v1/token`` with ``grant_type=refresh_token``."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str


#: The custom properties syncd needs on contacts, ensured once per client.
CUSTOM_PROPERTIES: tuple[PropertyCreate, ...] = (
    {
        "name": IDENTITY_PROPERTY,
        "label": "syncd member id",
        "description": "The source's stable member id, written by syncd. Do not edit.",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "hasUniqueValue": True,
        "formField": False,
    },
    {
        "name": LINKEDIN_PROPERTY,
        "label": "LinkedIn profile (syncd)",
        "description": "The person's profile URL, written by syncd.",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "hasUniqueValue": False,
        "formField": False,
    },
    {
        "name": SYNCED_AT_PROPERTY,
        "label": "Last synced by syncd",
        "description": "When syncd last wrote this contact; syncd sets it at each write. "
        "A retention review can find contacts syncd has not refreshed for a long time.",
        "type": "datetime",
        "fieldType": "date",
        "groupName": "contactinformation",
        "hasUniqueValue": False,
        "formField": False,
    },
)


#: syncd's property on the communications it writes, ensured on first use.
MESSAGE_ID_DEFINITION: PropertyCreate = {
    "name": MESSAGE_ID_PROPERTY,
    "label": "syncd message id",
    "description": "The source's id of the LinkedIn message this communication relays "
    "(with #k/n for part k of a long one), written by syncd. Do not edit.",
    "type": "string",
    "fieldType": "text",
    "groupName": "communication",
    "hasUniqueValue": False,
    "formField": False,
}

#: The follow flag on contacts (follow mode), ensured on first use: a single checkbox.
FOLLOW_DEFINITION: PropertyCreate = {
    "name": FOLLOW_PROPERTY,
    "label": "Followed by syncd",
    "description": "Checked: syncd relays new LinkedIn messages with this person. Set by "
    "`syncd follow`, cleared by `syncd unfollow`.",
    "type": "bool",
    "fieldType": "booleancheckbox",
    "groupName": "contactinformation",
    "hasUniqueValue": False,
    "formField": False,
    "options": [
        {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
        {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
    ],
}


def synced_at_now() -> str:
    """The value of :data:`SYNCED_AT_PROPERTY` for a write made now: ISO 8601 UTC with
    milliseconds, the form HubSpot answers datetime values in."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalise(prop: str, value: str) -> str:
    """A property value as HubSpot stores it (emails are kept in lower case)."""
    value = value.strip()
    return value.lower() if prop == "email" else value


def to_properties(fields: Mapping[str, str]) -> dict[str, str]:
    """Canonical fields as HubSpot contact properties; unknown fields are dropped."""
    return {
        PROPERTY_OF[field]: normalise(PROPERTY_OF[field], value)
        for field, value in fields.items()
        if field in PROPERTY_OF and value.strip()
    }


def to_fields(properties: Mapping[str, str | None]) -> dict[str, str]:
    """HubSpot contact properties as canonical fields, empty values left out."""
    return {
        FIELD_OF[prop]: value.strip()
        for prop, value in properties.items()
        if prop in FIELD_OF and value and value.strip()
    }


def canonical(fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` as they read back from HubSpot, so comparisons see what HubSpot holds."""
    return to_fields(to_properties(fields))
