"""syncd's canonical person fields as Salesforce Contact or Lead fields, the custom fields
syncd needs in the org, and the JSON shapes of the REST endpoints the client and the
sandbox exchange.

Names. Salesforce requires ``LastName`` (REQUIRED_FIELD_MISSING without it) and shows a
person as "FirstName LastName". When the source has only one name, that name goes into
``LastName`` and ``FirstName`` stays empty, so the record reads right; a person with no
name at all is refused before anything is sent (a ``failed`` outcome), never invented.

Companies. A Contact's company is its Account (``AccountId``), found by name or created;
a Lead's is the required ``Company`` text field. A Lead without a company gets
:data:`LEAD_COMPANY_FALLBACK`, which reads as "no company" everywhere in syncd.

Custom fields the user creates in the org (syncd never changes the org's schema):

- ``LinkedIn_Member_Id__c`` on Contact and Lead: Text (255), External ID, Unique; the
  source's member id (the name is configurable: ``external_id_field``).
- ``LinkedIn_Profile_URL__c`` on Contact and Lead: URL; the person's profile URL.
- ``syncd_synced_at__c`` on Contact and Lead: Date/Time; when syncd last wrote the record.
  Every create and update sets it; `syncd export` shows it, and a retention review in the
  org can find records syncd has not refreshed in years.
- ``syncd_message_id__c`` on Task: Text (255); the source's id of the message a Task
  records (``<id>#k/n`` for part k of n of a long message), set only on the Tasks syncd
  writes: what tells syncd which messages the org holds already, and what `syncd forget`
  deletes, never a Task a person logged.
- ``syncd_follow__c`` on Contact and Lead: Checkbox (default unchecked); checked by
  `syncd follow`, cleared by `syncd unfollow`: follow mode's list of people lives here.

Shapes: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
(errors), .../dome_upsert.htm (upsert by external id),
.../resources_composite_sobjects_collections_upsert.htm (sObject Collections) and
.../dome_query.htm (query).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, NotRequired, TypedDict

SObject = Literal["Contact", "Lead"]
OBJECTS: tuple[SObject, ...] = ("Contact", "Lead")

#: The default external id field: a custom Text field marked External ID and Unique,
#: where syncd keeps the source's member id. Configurable (``external_id_field``).
EXTERNAL_ID_FIELD = "LinkedIn_Member_Id__c"

#: The custom URL field where syncd writes the person's profile URL, and where it looks
#: for a profile URL a human entered. The user creates it on Contact and Lead.
PROFILE_URL_FIELD = "LinkedIn_Profile_URL__c"

#: The custom Date/Time field every create and update sets to the time of the write (the
#: Salesforce spelling of :data:`connectors.base.SYNCED_AT`).
SYNCED_AT_FIELD = "syncd_synced_at__c"

#: The custom Text field on the Tasks syncd writes (one per LinkedIn message, issue 12): the
#: message's id. A Task with it set is syncd's; any other Task is a person's and stays.
MESSAGE_ID_FIELD = "syncd_message_id__c"

#: The custom Checkbox field on Contact and Lead that marks a followed person (the Salesforce
#: spelling of :data:`connectors.base.FOLLOW`).
FOLLOW_FIELD = "syncd_follow__c"

#: Task.Description is a Long Text Area of 32 000 characters (the Task field reference:
#: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm).
DESCRIPTION_LENGTH = 32_000

#: The longest message body one Task carries, in code points. Salesforce counts a
#: character outside the Basic Multilingual Plane (an emoji) as two, as Java does
#: (https://help.salesforce.com/s/articleView?id=005166849), so half the field's length
#: fits whatever the text; a longer message is split into parts.
BODY_LIMIT = DESCRIPTION_LENGTH // 2

#: What Salesforce keeps after a DELETE: the record sits in the Recycle Bin, restorable by
#: an admin, until it is purged.
RETENTION = "kept in Salesforce's Recycle Bin for 15 days"

#: ``Company`` of a Lead whose source has no company (Salesforce requires one).
LEAD_COMPANY_FALLBACK = "[not provided]"

#: sObject Collections take at most this many records per request.
BATCH_LIMIT = 200

#: Canonical field -> sObject field, per object. ``company`` is the Lead's text field; a
#: Contact's company is its Account, handled apart (see :func:`company_of`).
FIELD_OF: dict[SObject, dict[str, str]] = {
    "Contact": {
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        "title": "Title",
        "linkedin_url": PROFILE_URL_FIELD,
        # A profile's location is one free-text line; the mailing city is the closest
        # single home for it (HubSpot's connector uses its city property too).
        "location": "MailingCity",
    },
    "Lead": {
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        "title": "Title",
        "linkedin_url": PROFILE_URL_FIELD,
        "location": "City",
        "company": "Company",
    },
}

#: The relationship field that names a Contact's Account in SOQL.
ACCOUNT_NAME = "Account.Name"


class Attributes(TypedDict):
    """The ``attributes`` of a record in a query answer or a collections request."""

    type: str
    url: NotRequired[str]


class ApiError(TypedDict):
    """One entry of an error answer (the body is a JSON list of these)."""

    message: str
    errorCode: str
    fields: NotRequired[list[str]]


class RecordError(TypedDict):
    """One entry of ``errors`` in a SaveResult/UpsertResult (collections, upsert)."""

    statusCode: str
    message: str
    fields: list[str]


class SaveResult(TypedDict):
    """A create/update answer, and each entry of an sObject Collections answer."""

    id: str | None
    success: bool
    errors: list[RecordError]
    created: NotRequired[bool]


class DeleteResult(TypedDict):
    """Each entry of an sObject Collections DELETE answer, in the order of the ids."""

    id: str | None
    success: bool
    errors: list[RecordError]


class QueryResult(TypedDict):
    """The answer of ``GET /services/data/vXX.X/query?q=...``."""

    totalSize: int
    done: bool
    records: list[dict[str, object]]
    nextRecordsUrl: NotRequired[str]


class TokenResponse(TypedDict):
    """The answer of ``POST /services/oauth2/token`` with ``grant_type=refresh_token``."""

    access_token: str
    signature: str
    scope: str
    instance_url: str
    id: str
    token_type: str
    issued_at: str


def has_name(fields: Mapping[str, str]) -> bool:
    """Whether the person has any name Salesforce can file them under."""
    return bool(fields.get("last_name") or fields.get("first_name"))


def canonical(obj: SObject, fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` as they will read back from Salesforce: the name rule applied, unknown
    fields dropped, so comparisons see what Salesforce holds."""
    out = {k: v.strip() for k, v in fields.items() if k in FIELD_OF[obj] and v.strip()}
    if obj == "Contact" and fields.get("company", "").strip():
        out["company"] = fields["company"].strip()
    if "last_name" not in out and "first_name" in out:
        out["last_name"] = out.pop("first_name")
    return out


def to_sobject(obj: SObject, fields: Mapping[str, str]) -> dict[str, str]:
    """Canonical fields as sObject fields (a Contact's ``company`` is left out: it is an
    Account, resolved by the client)."""
    mapping = FIELD_OF[obj]
    return {mapping[k]: v for k, v in fields.items() if k in mapping}


def select_fields(obj: SObject, external_id_field: str) -> list[str]:
    """The fields a candidate query selects."""
    fields = [
        "Id",
        "OwnerId",
        *dict.fromkeys(FIELD_OF[obj].values()),
        external_id_field,
        SYNCED_AT_FIELD,
    ]
    if obj == "Contact":
        fields.append(ACCOUNT_NAME)
    return fields


def record_fields(obj: SObject, record: Mapping[str, object]) -> dict[str, str]:
    """A queried record as canonical fields, empty values left out."""
    out: dict[str, str] = {}
    for name, field in FIELD_OF[obj].items():
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            out[name] = value.strip()
    company = company_of(obj, record)
    if company:
        out["company"] = company
    else:
        out.pop("company", None)
    return out


def company_of(obj: SObject, record: Mapping[str, object]) -> str | None:
    """The company a queried record shows: its Account's name, or the Lead's Company."""
    if obj == "Lead":
        value = record.get("Company")
        text = value.strip() if isinstance(value, str) else ""
        return text if text and text != LEAD_COMPANY_FALLBACK else None
    account = record.get("Account")
    name = account.get("Name") if isinstance(account, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def text(record: Mapping[str, object], field: str) -> str | None:
    """A non-empty string field of a record, or None."""
    value = record.get(field)
    return value if isinstance(value, str) and value else None


def salesforce_datetime(moment: datetime) -> str:
    """``moment`` as Salesforce writes a DateTime: ``2024-05-20T20:49:32.000+0000`` (UTC)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(value: object) -> datetime | None:
    """A Salesforce DateTime (``…+0000``) or Date (``2024-05-20``, midnight UTC) as an aware
    datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
