"""The Salesforce sandbox's org: Accounts, Contacts, Leads and Tasks with Salesforce's
validation, 18-character ids, a unique external id field, a standard-like duplicate rule and
a Recycle Bin. No HTTP.

A deleted record goes to the Recycle Bin: ``IsDeleted`` becomes true, plain queries and
reads no longer see it (a read, update or second delete answers 404 ``ENTITY_IS_DELETED``),
``queryAll`` still does, and it is purged :data:`RECYCLE_BIN_DAYS` days after the delete
(https://help.salesforce.com/s/articleView?id=sf.home_delete.htm).

Validation answers the error codes of
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm#statuscode
(REQUIRED_FIELD_MISSING, INVALID_FIELD, INVALID_EMAIL_ADDRESS, STRING_TOO_LONG,
INVALID_CROSS_REFERENCE_KEY, DUPLICATE_VALUE, DUPLICATES_DETECTED). The duplicate rule is
like the standard Contact/Lead rule with an "Alert" action: a new record whose Email is
already on a record of the same object is refused unless the request allows the save
(``Sforce-Duplicate-Rule-Header: allowSave=true``).
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from connectors.salesforce.mapping import (
    FOLLOW_FIELD,
    MESSAGE_ID_FIELD,
    SYNCED_AT_FIELD,
    salesforce_datetime,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"
PREFIX = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Task": "00T",
    "User": "005",
    "Organization": "00D",
}
#: How long a deleted record stays in the Recycle Bin before it is purged.
RECYCLE_BIN_DAYS = 15
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DUPLICATE_MESSAGE = (
    "You're creating a duplicate record. We recommend you use an existing record instead."
)


class SalesforceError(Exception):
    """An answer Salesforce gives instead of a result: status, code, message, fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: tuple[str, ...] = (),
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.extra = dict(extra or {})


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an object: its label (for messages), kind, length and rules."""

    label: str
    kind: str = "string"  # string | email | reference | id | datetime | date | boolean | picklist
    length: int = 255
    required: bool = False
    writable: bool = True
    #: A restricted picklist's values (any other value is refused).
    values: tuple[str, ...] = ()


def schemas(external_id_field: str, profile_url_field: str) -> dict[str, dict[str, Field]]:
    """The fields of each object in this org, custom fields included."""
    system = {
        "Id": Field("Record ID", "id", 18, writable=False),
        "OwnerId": Field("Owner ID", "reference", 18),
        "CreatedDate": Field("Created Date", "datetime", writable=False),
        "LastModifiedDate": Field("Last Modified Date", "datetime", writable=False),
        "IsDeleted": Field("Deleted", "boolean", writable=False),
    }
    person = {
        "Name": Field("Full Name", length=121, writable=False),
        "FirstName": Field("First Name", length=40),
        "LastName": Field("Last Name", length=80, required=True),
        "Email": Field("Email", "email", 80),
        "Phone": Field("Phone", length=40),
        "Title": Field("Title", length=128),
        external_id_field: Field("LinkedIn Member Id", length=255),
        profile_url_field: Field("LinkedIn Profile URL", length=255),
        SYNCED_AT_FIELD: Field("syncd synced at", "datetime"),
        FOLLOW_FIELD: Field("syncd follow", "boolean"),
    }
    return {
        "Account": {**system, "Name": Field("Account Name", length=255, required=True)},
        "Contact": {
            **system,
            **person,
            "AccountId": Field("Account ID", "reference", 18),
            "MailingCity": Field("Mailing City", length=40),
        },
        "Lead": {
            **system,
            **person,
            "Company": Field("Company", length=255, required=True),
            "City": Field("City", length=40),
            "Status": Field("Status", length=255, required=True),
        },
        "Task": {
            **system,
            "WhoId": Field("Name ID", "reference", 18),
            "Subject": Field("Subject", length=255),
            "Status": Field("Status", "picklist", 40, required=True, values=TASK_STATUSES),
            "Priority": Field("Priority", "picklist", 40, required=True, values=PRIORITIES),
            "TaskSubtype": Field("Task Subtype", "picklist", 40, values=TASK_SUBTYPES),
            "ActivityDate": Field("Due Date Only", "date"),
            "Description": Field("Description", length=32_000),
            "IsClosed": Field("Closed", "boolean", writable=False),
            "IsArchived": Field("Archived", "boolean", writable=False),
            "CompletedDateTime": Field("Completed Date", "datetime", writable=False),
            MESSAGE_ID_FIELD: Field("syncd message id", length=255),
        },
    }


#: Task picklists as a new org has them (Status: the closed value is Completed).
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
PRIORITIES = ("High", "Normal", "Low")
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call")

#: Picklist defaults a new record gets when the request leaves the field out.
DEFAULTS = {
    "Lead": {"Status": "Open - Not Contacted"},
    "Task": {"Status": "Not Started", "Priority": "Normal", "TaskSubtype": "Task"},
}


def make_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, pod, counter, and the case-safe suffix."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    base = f"{prefix}5g0{digits.rjust(9, '0')}"
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << j for j, ch in enumerate(base[start : start + 5]) if ch.isupper())
        suffix += _SUFFIX[bits]
    return base + suffix


def now_iso() -> str:
    """The current time as Salesforce writes it: ``2024-05-20T20:49:32.000+0000``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class Org:
    """Every record of the org, keyed by object then 18-character id."""

    def __init__(
        self,
        *,
        external_id_field: str,
        profile_url_field: str,
        external_id_unique: bool = True,
        duplicate_rule: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.external_id_field = external_id_field
        self.schemas = schemas(external_id_field, profile_url_field)
        self.external_id_unique = external_id_unique
        self.duplicate_rule = duplicate_rule
        self.user_id = make_id(PREFIX["User"], 1)
        self.org_id = make_id(PREFIX["Organization"], 1)
        self.records: dict[str, dict[str, dict[str, str | None]]] = {o: {} for o in self.schemas}
        #: The Recycle Bin: deleted records by object and id, with the clock time of the delete.
        self.bin: dict[str, dict[str, tuple[dict[str, str | None], float]]] = {
            o: {} for o in self.schemas
        }
        self._clock = clock
        self._counter = 0
        #: Whether the integration user may create Tasks (see :meth:`create`).
        self.tasks_allowed = True

    # -- reading -------------------------------------------------------------------------

    def object_of(self, record_id: str) -> str | None:
        """The object a record id belongs to, by its key prefix."""
        return next((o for o, p in PREFIX.items() if record_id.startswith(p)), None)

    def field(self, obj: str, name: str) -> str | None:
        """The field's API name as the schema spells it (names are case-insensitive)."""
        return next((f for f in self.schemas[obj] if f.lower() == name.lower()), None)

    def find(self, obj: str, record_id: str) -> dict[str, str | None] | None:
        """A record by its 18- or 15-character id."""
        table = self.records.get(obj, {})
        if len(record_id) == 15:
            return next((r for k, r in table.items() if k[:15] == record_id), None)
        return table.get(record_id)

    def require(self, obj: str, record_id: str) -> dict[str, str | None]:
        """A record by id, or 404 ENTITY_IS_DELETED (in the Recycle Bin) or NOT_FOUND."""
        record = self.find(obj, record_id)
        if record is None:
            if self.deleted(obj, record_id) is not None:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def deleted(self, obj: str, record_id: str) -> dict[str, str | None] | None:
        """A record in the Recycle Bin by its 18- or 15-character id."""
        self.purge()
        table = self.bin.get(obj, {})
        if len(record_id) == 15:
            return next((r for k, (r, _) in table.items() if k[:15] == record_id), None)
        entry = table.get(record_id)
        return entry[0] if entry else None

    def rows_all(self, obj: str) -> Iterator[dict[str, str | None]]:
        """Every record of ``obj`` including the Recycle Bin's, as ``queryAll`` sees them."""
        self.purge()
        return iter([*self.records[obj].values(), *(r for r, _ in self.bin[obj].values())])

    def purge(self) -> None:
        """Empty the Recycle Bin of records deleted more than 15 days ago."""
        horizon = self._clock() - RECYCLE_BIN_DAYS * 86_400
        for table in self.bin.values():
            for key in [k for k, (_, when) in table.items() if when <= horizon]:
                del table[key]

    def by_value(self, obj: str, field: str, value: str) -> list[dict[str, str | None]]:
        """Records whose ``field`` equals ``value``, ignoring case (as SOQL's = does)."""
        wanted = value.casefold()
        return [r for r in self.rows(obj) if (r.get(field) or "").casefold() == wanted]

    def rows(self, obj: str) -> Iterator[dict[str, str | None]]:
        """Every record of ``obj``, oldest first."""
        return iter(list(self.records[obj].values()))

    def view(self, obj: str, record: Mapping[str, str | None]) -> dict[str, str | None]:
        """A record with its computed fields (``Name`` of a person)."""
        out = dict(record)
        if obj in ("Contact", "Lead"):
            out["Name"] = " ".join(
                p for p in (record.get("FirstName"), record.get("LastName")) if p
            )
        return out

    # -- writing -------------------------------------------------------------------------

    def create(
        self, obj: str, values: Mapping[str, object], *, allow_duplicates: bool = False
    ) -> dict[str, str | None]:
        """A new record, validated; raises SalesforceError as Salesforce would answer."""
        if obj == "Task" and not self.tasks_allowed:
            raise SalesforceError(
                400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
            )
        clean = self.validate(obj, values)
        schema = self.schemas[obj]
        defaults: dict[str, str | None] = {
            f: "false" if spec.kind == "boolean" else None for f, spec in schema.items()
        }
        if obj in ("Contact", "Lead"):
            del defaults["Name"]  # a person's Name is computed (see view)
        defaults |= DEFAULTS.get(obj, {}) | {"IsDeleted": "false"}
        record = {**defaults, **{k: v for k, v in clean.items() if v is not None}}
        self._check_record(obj, record, None)
        if self.duplicate_rule and not allow_duplicates and obj in ("Contact", "Lead"):
            self._duplicate_rule(obj, record)
        self._counter += 1
        stamp = now_iso()
        if obj == "Task":
            closed = record.get("Status") == "Completed"
            record |= {"IsClosed": "true" if closed else "false"}
            record |= {"CompletedDateTime": stamp if closed else None}
        record |= {"Id": make_id(PREFIX[obj], self._counter), "CreatedDate": stamp}
        record |= {"LastModifiedDate": stamp, "OwnerId": record.get("OwnerId") or self.user_id}
        self.records[obj][str(record["Id"])] = record
        return record

    def update(self, obj: str, record: dict[str, str | None], values: Mapping[str, object]) -> None:
        """Change fields of ``record``, validated; nothing changes on an error."""
        clean = self.validate(obj, values)
        merged = {**record, **clean}
        self._check_record(obj, merged, record.get("Id"))
        record |= clean
        record["LastModifiedDate"] = now_iso()

    def delete(self, obj: str, record_id: str) -> str:
        """Move a record to the Recycle Bin; its 18-character id. 404 ENTITY_IS_DELETED if
        it is there already, NOT_FOUND if it never was."""
        record = self.require(obj, record_id)
        key = str(record["Id"])
        del self.records[obj][key]
        record |= {"IsDeleted": "true", "LastModifiedDate": now_iso()}
        self.bin[obj][key] = (record, self._clock())
        return key

    def json_value(self, obj: str, name: str, value: str | None) -> object:
        """A stored value as a JSON answer shows it (booleans as true/false)."""
        spec = self.schemas[obj].get(name)
        if spec is not None and spec.kind == "boolean" and value is not None:
            return value == "true"
        return value

    def validate(self, obj: str, values: Mapping[str, object]) -> dict[str, str | None]:
        """``values`` as stored strings (null clears), or the error Salesforce answers."""
        schema = self.schemas[obj]
        out: dict[str, str | None] = {}
        for key, raw in values.items():
            name = self.field(obj, key)
            if name is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}"
                )
            spec = schema[name]
            if not spec.writable:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your "
                    "profile or permission set.",
                    (name,),
                )
            out[name] = self._value(obj, name, spec, raw)
        return out

    def _value(self, obj: str, name: str, spec: Field, raw: object) -> str | None:
        if raw is None or raw == "":
            return None
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        if spec.kind == "boolean" and raw not in ("true", "false"):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean for {name}"
            )
        if not isinstance(raw, str | int | float):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string for {name}"
            )
        value = str(raw)
        if spec.values and value not in spec.values:
            raise SalesforceError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.label}: bad value for restricted picklist field: {value}",
                (name,),
            )
        # Salesforce counts a character outside the BMP (an emoji) as two, as Java does.
        if len(value.encode("utf-16-le")) // 2 > spec.length:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {value} (max length={spec.length})",
                (name,),
            )
        if spec.kind in ("datetime", "date"):
            return _temporal(spec.kind, value)
        if spec.kind == "email" and not _EMAIL.match(value):
            raise SalesforceError(
                400,
                "INVALID_EMAIL_ADDRESS",
                f"{spec.label}: invalid email address: {value}",
                (name,),
            )
        if spec.kind == "reference":
            target = self.object_of(value)
            if target is None or (target != "User" and self.find(target, value) is None):
                raise SalesforceError(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{spec.label}: id value of incorrect type: {value}",
                    (name,),
                )
        return value

    def _check_record(self, obj: str, record: Mapping[str, str | None], own: str | None) -> None:
        missing = [
            f for f, spec in self.schemas[obj].items() if spec.required and not record.get(f)
        ]
        if missing:
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                tuple(missing),
            )
        key = record.get(self.external_id_field)
        if self.external_id_unique and key and obj in ("Contact", "Lead"):
            taken = [r for r in self.by_value(obj, self.external_id_field, key) if r["Id"] != own]
            if taken:
                raise SalesforceError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {self.external_id_field} duplicates value on "
                    f"record with id: {taken[0]['Id']}",
                )

    def _duplicate_rule(self, obj: str, record: Mapping[str, str | None]) -> None:
        email = record.get("Email")
        same = self.by_value(obj, "Email", email) if email else []
        if not same:
            return
        matches = [
            {
                "additionalInformation": [],
                "fieldDiffs": [],
                "matchConfidence": 100.0,
                "record": {"attributes": {"type": obj}, "Id": r["Id"]},
            }
            for r in same
        ]
        result = {
            "allowSave": True,
            "duplicateRule": f"Standard_{obj}_Duplicate_Rule",
            "duplicateRuleEntityType": obj,
            "errorMessage": DUPLICATE_MESSAGE,
            "matchResults": [
                {
                    "entityType": obj,
                    "errors": [],
                    "matchEngine": "ExactMatchEngine",
                    "matchRecords": matches,
                    "rule": f"Standard_{obj}_Match_Rule_v1_1",
                    "size": len(matches),
                    "success": True,
                }
            ],
        }
        raise SalesforceError(
            400, "DUPLICATES_DETECTED", DUPLICATE_MESSAGE, extra={"duplicateResult": result}
        )


def _temporal(kind: str, value: str) -> str:
    """A DateTime (any offset; stored in UTC as Salesforce answers it) or a Date, or the
    400 JSON_PARSER_ERROR Salesforce answers for a value it cannot read as one."""
    try:
        if kind == "date" and _DATE.match(value):
            return date.fromisoformat(value).isoformat()
        if kind == "datetime" and _DATETIME.match(value):
            return salesforce_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        pass
    raise SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from VALUE_STRING value {value} or request "
        "may be missing a required field at [line:1, column:1]",
    )
