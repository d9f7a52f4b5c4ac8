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

from connectors.base import SYNCED_AT

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


class PropertyCreate(TypedDict):
    """The body of ``POST /crm/v3/properties/contacts``."""

    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: NotRequired[str]
    hasUniqueValue: NotRequired[bool]
    formField: NotRequired[bool]


class PropertyDefinition(PropertyCreate):
    """A property as ``GET /crm/v3/properties/contacts/{name}`` answers it."""

    hidden: bool
    displayOrder: int
    calculated: bool
    externalOptions: bool
    options: list[dict[str, str]]
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
