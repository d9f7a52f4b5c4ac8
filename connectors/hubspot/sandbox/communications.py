"""The HubSpot sandbox's communications (logged WhatsApp, LinkedIn and SMS messages), their
property definitions and their associations to contacts. No HTTP here.

As https://developers.hubspot.com/docs/api/crm/communications documents them:
``hs_communication_channel_type`` is one of WHATS_APP, LINKEDIN_MESSAGE, SMS;
``hs_communication_logged_from`` must be CRM; ``hs_communication_body`` is text (a string
property: at most 65,536 characters); ``hs_timestamp`` is a datetime (ISO 8601 or epoch
milliseconds) that places the message on the timeline. A communication is linked to a
contact by association type 81 (communication -> contact).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.hubspot.mapping import (
    BODY_PROPERTY,
    CHANNEL_PROPERTY,
    CHANNEL_TYPES,
    COMMUNICATION_TO_CONTACT,
    LOGGED_FROM,
    LOGGED_FROM_PROPERTY,
    TEXT_LIMIT,
    TIMESTAMP_PROPERTY,
    PropertyCreate,
    PropertyDefinition,
    PropertyOption,
    SimplePublicObject,
    utf16_length,
)
from connectors.hubspot.sandbox.store import HubSpotError, datetime_value, definition, now_iso

#: Answered for every communication, whatever ``properties`` asked for.
ALWAYS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
READ_ONLY = frozenset(ALWAYS)


def _options(values: Sequence[str]) -> list[PropertyOption]:
    return [
        {"label": v, "value": v, "displayOrder": n, "hidden": False} for n, v in enumerate(values)
    ]


def _standard() -> dict[str, PropertyDefinition]:
    group = "communication"
    creates: list[PropertyCreate] = [
        {
            "name": CHANNEL_PROPERTY,
            "label": "Channel type",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": group,
            "options": _options(CHANNEL_TYPES),
        },
        {
            "name": LOGGED_FROM_PROPERTY,
            "label": "Logged from",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": group,
            "options": _options([LOGGED_FROM]),
        },
        {
            "name": BODY_PROPERTY,
            "label": "Body",
            "type": "string",
            "fieldType": "html",
            "groupName": group,
        },
        {
            "name": TIMESTAMP_PROPERTY,
            "label": "Activity date",
            "type": "datetime",
            "fieldType": "date",
            "groupName": group,
        },
        {
            "name": "hubspot_owner_id",
            "label": "Owner",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": group,
        },
    ]
    creates += [
        {
            "name": n,
            "label": n,
            "type": "datetime" if n.endswith("date") else "string",
            "fieldType": "date" if n.endswith("date") else "text",
            "groupName": group,
        }
        for n in ALWAYS
    ]
    return {c["name"]: definition(c, hubspot_defined=True, read_only=READ_ONLY) for c in creates}


@dataclass(slots=True)
class Communication:
    """One stored communication."""

    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str


@dataclass(slots=True)
class CommunicationStore:
    """Communications by id, their property definitions, and which contacts each is
    associated with (communication -> contact, type 81)."""

    communications: dict[str, Communication] = field(default_factory=dict)
    properties: dict[str, PropertyDefinition] = field(default_factory=_standard)
    #: contact id -> communication ids, in association order
    links: dict[str, list[str]] = field(default_factory=dict)
    _last_id: int = 70_000

    def add_property(self, create: PropertyCreate) -> PropertyDefinition:
        """Define a custom communication property; 409 if the name is taken."""
        if create["name"] in self.properties:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", "A property with that name exists.")
        made = definition(create, hubspot_defined=False, read_only=READ_ONLY)
        self.properties[create["name"]] = made
        return made

    def validate(self, props: Mapping[str, str]) -> dict[str, str]:
        """``props`` as HubSpot would store them, or the 400 it would answer."""
        problems: list[tuple[str, str]] = []
        clean = dict(props)
        for name, value in props.items():
            known = self.properties.get(name)
            if known is None:
                problems.append(("PROPERTY_DOESNT_EXIST", name))
            elif name in READ_ONLY:
                problems.append(("READ_ONLY_VALUE", name))
            elif known["type"] == "enumeration" and known.get("options") and value:
                if value not in {o["value"] for o in known.get("options", [])}:
                    problems.append(("INVALID_OPTION", name))
            elif known["type"] == "datetime" and value:
                stamp = datetime_value(value)
                if stamp is None:
                    problems.append(("INVALID_DATETIME", name))
                else:
                    clean[name] = stamp
            elif known["type"] == "string" and utf16_length(value) > TEXT_LIMIT:
                problems.append(("VALUE_TOO_LONG", name))
        if not problems and clean.get(LOGGED_FROM_PROPERTY) != LOGGED_FROM:
            problems.append(("REQUIRED_PROPERTY", LOGGED_FROM_PROPERTY))
        if not problems and not clean.get(CHANNEL_PROPERTY):
            problems.append(("REQUIRED_PROPERTY", CHANNEL_PROPERTY))
        if problems:
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: " + ", ".join(f"{c} {n}" for c, n in problems),
                errors=problems,
            )
        return clean

    def create(self, clean: Mapping[str, str], contacts: Iterable[str] = ()) -> Communication:
        """Store a communication :meth:`validate` accepted, associated with ``contacts``."""
        self._last_id += 1
        stamp = now_iso()
        made = Communication(str(self._last_id), dict(clean), stamp, stamp)
        made.properties.setdefault(TIMESTAMP_PROPERTY, stamp)
        made.properties |= {"hs_object_id": made.id, "hs_createdate": stamp}
        made.properties["hs_lastmodifieddate"] = stamp
        self.communications[made.id] = made
        for contact_id in contacts:
            self.links.setdefault(contact_id, []).append(made.id)
        return made

    def of(self, contact_id: str) -> list[Communication]:
        """The communications associated with a contact, oldest association first."""
        ids = self.links.get(contact_id, [])
        return [self.communications[i] for i in ids if i in self.communications]

    def drop_contact(self, contact_id: str) -> int:
        """A contact's GDPR delete: its associated communications go with it; how many."""
        gone = self.of(contact_id)
        for made in gone:
            del self.communications[made.id]
        self.links.pop(contact_id, None)
        return len(gone)

    def view(self, made: Communication, wanted: Iterable[str] | None = None) -> SimplePublicObject:
        """A communication as the API answers it (asked-for properties, null if empty)."""
        default = (BODY_PROPERTY, CHANNEL_PROPERTY, LOGGED_FROM_PROPERTY, TIMESTAMP_PROPERTY)
        names = dict.fromkeys([*(wanted or default), *ALWAYS])
        return {
            "id": made.id,
            "properties": {n: made.properties.get(n) or None for n in names},
            "createdAt": made.created_at,
            "updatedAt": made.updated_at,
            "archived": False,
        }

    def clear(self) -> None:
        self.communications.clear()
        self.links.clear()


def association_target(value: object) -> str:
    """The contact id of one ``associations`` entry of a communication create, which must be
    communication -> contact (HUBSPOT_DEFINED 81); else a 400."""
    if not isinstance(value, dict):
        raise HubSpotError(400, "VALIDATION_ERROR", "associations must be a list of objects.")
    to = value.get("to")
    target = to.get("id") if isinstance(to, dict) else None
    types = value.get("types")
    ok = (
        isinstance(target, str | int)
        and not isinstance(target, bool)
        and isinstance(types, list)
        and bool(types)
        and all(
            isinstance(t, dict)
            and t.get("associationCategory") == "HUBSPOT_DEFINED"
            and t.get("associationTypeId") == COMMUNICATION_TO_CONTACT
            for t in types
        )
    )
    if not ok:
        raise HubSpotError(
            400,
            "VALIDATION_ERROR",
            "The sandbox only associates communications with contacts (HUBSPOT_DEFINED 81).",
        )
    return str(target)
