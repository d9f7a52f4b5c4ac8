"""The HubSpot sandbox's records: contacts and their property definitions, with HubSpot's
validation, unique values, numeric-string ids and timestamps. No HTTP here."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.hubspot.mapping import PropertyCreate, PropertyDefinition, SimplePublicObject

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EPOCH_MS = re.compile(r"^-?\d{1,15}$")
#: Answered for every contact, whatever ``properties`` asked for.
ALWAYS = ("createdate", "hs_object_id", "lastmodifieddate")
#: Answered when the request names no ``properties``.
DEFAULT_VIEW = ("email", "firstname", "lastname", *ALWAYS)
READ_ONLY = frozenset(ALWAYS)
_STANDARD = (
    *("email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle"),
    *("website", "address", "city", "state", "zip", "country", "lifecyclestage"),
    *("hs_lead_status", "hubspot_owner_id"),
)


class HubSpotError(Exception):
    """An answer HubSpot gives instead of a result: status, category, message."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        context: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = tuple(errors)  # (code, property name)
        self.context = dict(context or {})


def now_iso() -> str:
    """The current time as HubSpot writes it: ISO 8601, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def definition(
    create: PropertyCreate, *, hubspot_defined: bool, read_only: frozenset[str] = READ_ONLY
) -> PropertyDefinition:
    """A property definition as ``GET /crm/v3/properties/{object}/{name}`` answers it."""
    stamp = now_iso()
    return {
        "name": create["name"],
        "label": create["label"],
        "type": create["type"],
        "fieldType": create["fieldType"],
        "groupName": create["groupName"],
        "description": create.get("description", ""),
        "hasUniqueValue": create.get("hasUniqueValue", False),
        "formField": create.get("formField", False),
        "hidden": False,
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "options": list(create.get("options", [])),
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": create["name"] in read_only,
        },
    }


def _standard_properties() -> dict[str, PropertyDefinition]:
    out: dict[str, PropertyDefinition] = {}
    for name in (*_STANDARD, *ALWAYS):
        create: PropertyCreate = {
            "name": name,
            "label": name,
            "type": "datetime" if name.endswith("date") else "string",
            "fieldType": "date" if name.endswith("date") else "text",
            "groupName": "contactinformation",
        }
        out[name] = definition(create, hubspot_defined=True)
    return out


@dataclass(slots=True)
class Contact:
    """One stored contact."""

    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    touched: float = field(default_factory=time.monotonic)


def datetime_value(value: str) -> str | None:
    """A datetime property value as HubSpot answers it (ISO 8601 UTC, milliseconds, ``Z``)
    from what it accepts (ISO 8601 with an offset, or epoch milliseconds); None if neither.
    https://developers.hubspot.com/docs/api/crm/properties (``datetime``)."""
    text = value.strip()
    try:
        if _EPOCH_MS.match(text):
            instant = datetime.fromtimestamp(int(text) / 1000, UTC)
        else:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if instant.tzinfo is None or "T" not in text:
                return None  # a datetime needs its time and its offset
    except (ValueError, OverflowError, OSError):
        return None
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ContactStore:
    """Contacts keyed by id, and the property definitions that validate them."""

    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}
        #: Contacts a plain ``DELETE`` (or ``batch/archive``) removed: HubSpot keeps them
        #: restorable for 90 days. A GDPR delete never puts anything here.
        self.archived: dict[str, Contact] = {}
        #: Emails a GDPR delete by email blocked because no contact had them: HubSpot then
        #: refuses them on any contact.
        self.blocklist: set[str] = set()
        self.properties = _standard_properties()
        self._last_id = 100  # HubSpot ids are numbers sent as strings
        # Seconds a write stays invisible to search, as HubSpot's index lags behind.
        self.search_lag = 0.0

    # -- properties --------------------------------------------------------------------

    def add_property(self, create: PropertyCreate) -> PropertyDefinition:
        """Define a custom contact property; 409 if the name is taken."""
        if create["name"] in self.properties:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", "A property with that name exists.")
        made = definition(create, hubspot_defined=False)
        self.properties[create["name"]] = made
        return made

    def unique(self, prop: str) -> bool:
        """Whether two contacts may not share a value of ``prop``."""
        known = self.properties.get(prop)
        return prop == "email" or bool(known and known.get("hasUniqueValue"))

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str, id_property: str | None = None) -> Contact | None:
        """The contact whose id (or unique ``id_property``) is ``key``."""
        if not id_property or id_property == "hs_object_id":
            return self.contacts.get(key)
        if not self.unique(id_property):
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property."
            )
        wanted = key.lower() if id_property == "email" else key
        for contact in self.contacts.values():
            if contact.properties.get(id_property) == wanted:
                return contact
        return None

    def require(self, key: str, id_property: str | None = None) -> Contact:
        """Like :meth:`get`, or a 404 ``OBJECT_NOT_FOUND``."""
        contact = self.get(key, id_property)
        if contact is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No contact has that id.")
        return contact

    def searchable(self) -> list[Contact]:
        """The contacts search can see: those not written within the index lag."""
        cutoff = time.monotonic() - self.search_lag
        return [c for c in self.contacts.values() if self.search_lag <= 0 or c.touched <= cutoff]

    def view(self, contact: Contact, wanted: Iterable[str] | None = None) -> SimplePublicObject:
        """A contact as the API answers it, with the asked-for properties (null if empty)."""
        names = dict.fromkeys([*(wanted or DEFAULT_VIEW), *ALWAYS])
        return {
            "id": contact.id,
            "properties": {name: contact.properties.get(name) or None for name in names},
            "createdAt": contact.created_at,
            "updatedAt": contact.updated_at,
            "archived": False,
        }

    # -- writes ------------------------------------------------------------------------

    def validate(
        self,
        props: Mapping[str, str],
        *,
        own_id: str | None = None,
        pending: Sequence[Mapping[str, str]] = (),
    ) -> dict[str, str]:
        """``props`` cleaned as HubSpot would store them, or the error it would answer.

        ``pending`` holds values accepted earlier in the same batch, which count for
        uniqueness too.
        """
        problems: list[tuple[str, str]] = []
        for name in props:
            if name not in self.properties:
                problems.append(("PROPERTY_DOESNT_EXIST", name))
            elif name in READ_ONLY:
                problems.append(("READ_ONLY_VALUE", name))
        clean = {k: (v.strip().lower() if k == "email" else v) for k, v in props.items()}
        if clean.get("email") and not _EMAIL.match(clean["email"]):
            problems.append(("INVALID_EMAIL", "email"))
        elif clean.get("email") in self.blocklist:
            problems.append(("BLOCKLISTED_EMAIL", "email"))
        for name, value in props.items():
            known = self.properties.get(name)
            if value and known and known["type"] == "datetime" and name not in READ_ONLY:
                stamp = datetime_value(value)
                if stamp is None:
                    problems.append(("INVALID_DATETIME", name))
                else:
                    clean[name] = stamp
            elif value and known and known["type"] == "bool":
                # A bool travels as the string "true" or "false" (any case).
                if value.strip().lower() not in ("true", "false"):
                    problems.append(("INVALID_OPTION", name))
                else:
                    clean[name] = value.strip().lower()
        if problems:
            # HubSpot's real message quotes the offending values; the sandbox does too,
            # so tests prove the client never passes this text on.
            quoted = ", ".join(f"{code} {name}={props.get(name, '')!r}" for code, name in problems)
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                f"Property values were not valid: {quoted}",
                errors=problems,
            )
        for name, value in clean.items():
            if not value or not self.unique(name):
                continue
            for other in self.contacts.values():
                if other.id != own_id and other.properties.get(name) == value:
                    raise HubSpotError(
                        409, "CONFLICT", f"Contact already exists. Existing ID: {other.id}"
                    )
            if any(p.get(name) == value for p in pending):
                raise HubSpotError(409, "CONFLICT", "Two inputs share a unique value.")
        return clean

    def create(self, clean: Mapping[str, str]) -> Contact:
        """Store a contact from properties :meth:`validate` accepted."""
        self._last_id += 1
        stamp = now_iso()
        contact = Contact(str(self._last_id), {}, stamp, stamp)
        self.contacts[contact.id] = contact
        self._write(contact, {**clean, "hs_object_id": contact.id, "createdate": stamp})
        return contact

    def update(self, contact: Contact, clean: Mapping[str, str]) -> Contact:
        """Apply properties :meth:`validate` accepted; an empty string clears one."""
        self._write(contact, clean)
        return contact

    def _write(self, contact: Contact, props: Mapping[str, str]) -> None:
        stamp = now_iso()
        for name, value in props.items():
            if value == "":
                contact.properties.pop(name, None)
            else:
                contact.properties[name] = value
        contact.properties["lastmodifieddate"] = contact.updated_at = stamp
        contact.touched = time.monotonic()

    def archive(self, contact_id: str) -> None:
        """Archive a contact (restorable for 90 days); archiving one that is not there is
        not an error."""
        contact = self.contacts.pop(contact_id, None)
        if contact is not None:
            self.archived[contact_id] = contact

    def gdpr_delete(self, key: str, id_property: str | None = None) -> Contact | None:
        """Delete a contact permanently (not archived); the deleted contact, or None when
        ``id_property`` is ``email`` and no contact has it: the email is then blocklisted.
        A record id (or other unique value) that matches nothing is a 404."""
        contact = self.get(key, id_property)
        if contact is None and id_property == "email":
            self.blocklist.add(key.strip().lower())
            return None
        if contact is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "No contact has that id.")
        del self.contacts[contact.id]
        return contact
