"""The Pipedrive sandbox's records: persons, organizations, person fields and notes, with
Pipedrive's validation, integer ids, hashed custom-field keys and search. No HTTP here.

Search follows ``/api/v2/persons/search``: case-insensitive, ``exact_match`` compares a
whole value, otherwise a term of at least 2 characters matches inside a value; searchable
custom fields are the text-like ones (https://developers.pipedrive.com/docs/api/v1/ItemSearch).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from connectors.pipedrive.mapping import (
    JOB_TITLE,
    NOTE_CONTENT_LIMIT,
    POSTAL_ADDRESS,
    Address,
    ContactPoint,
    FieldDefinition,
    Note,
    Organization,
    Person,
    split_name,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_V1_TIME = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
)
#: Field types a new custom field may have (``POST /api/v2/personFields``).
CREATABLE_TYPES = frozenset(
    {"varchar", "text", "double", "phone", "date", "daterange", "time", "timerange", "set"}
    | {"enum", "varchar_auto", "address", "monetary", "org", "people", "user"}
)
#: Custom field types the search looks into.
SEARCHABLE_TYPES = frozenset({"address", "varchar", "text", "varchar_auto", "double", "monetary"})
SEARCH_FIELDS = frozenset({"custom_fields", "email", "notes", "phone", "name"})
ORG_SEARCH_FIELDS = frozenset({"address", "custom_fields", "notes", "name"})
#: The user every sandbox token belongs to (persons' ``owner_id``).
USER_ID = 13053
_SYSTEM_FIELDS = (
    ("Name", "name", "varchar"),
    ("First name", "first_name", "varchar"),
    ("Last name", "last_name", "varchar"),
    ("Email", "emails", "varchar"),
    ("Phone", "phones", "phone"),
    ("Organization", "org_id", "org"),
    ("Owner", "owner_id", "user"),
    ("Labels", "label_ids", "set"),
)
_CONTACT_SYNC_FIELDS = (
    ("Job title", JOB_TITLE, "varchar"),
    ("Postal address", POSTAL_ADDRESS, "address"),
)


class PipedriveError(Exception):
    """An answer Pipedrive gives instead of a result: status, message, v2 error code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def bad_request(message: str) -> PipedriveError:
    """A 400 for a body or query Pipedrive would refuse."""
    return PipedriveError(400, message, "ERR_SCHEMA_VALIDATION_FAILED")


def now_rfc3339() -> str:
    """The time as API v2 writes it: ``2025-01-01T10:20:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_v1() -> str:
    """The time as API v1 writes it: ``2019-12-09 13:59:21``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _field(name: str, code: str, kind: str, *, custom: bool) -> FieldDefinition:
    return {
        "field_name": name,
        "field_code": code,
        "field_type": kind,
        "options": [] if kind in ("enum", "set") else None,
        "subfields": None,
        "is_custom_field": custom,
        "is_optional_response_field": False,
    }


class Store:
    """Everything one Pipedrive company holds, keyed by integer ids."""

    def __init__(self, *, contact_sync: bool = True) -> None:
        self.contact_sync = contact_sync
        self.fields: list[FieldDefinition] = [
            _field(n, c, t, custom=False)
            for n, c, t in (*_SYSTEM_FIELDS, *(_CONTACT_SYNC_FIELDS if contact_sync else ()))
        ]
        self.persons: dict[int, Person] = {}
        self.organizations: dict[int, Organization] = {}
        self.notes: dict[int, Note] = {}
        self._ids = {"person": 0, "organization": 0, "note": 0}
        #: Seconds a person write stays invisible to search: a search index trails the
        #: records it indexes, so syncd must never need search to see its own writes.
        self.search_lag = 0.0
        self._written: dict[int, float] = {}

    def clear(self) -> None:
        """Forget records; field definitions stay, as deleting data leaves the schema."""
        self.persons.clear()
        self.organizations.clear()
        self.notes.clear()

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # -- person fields -----------------------------------------------------------------

    def add_field(self, name: str, kind: str) -> FieldDefinition:
        """Define a person custom field; its key is a fresh 40-hex hash."""
        if not name.strip() or len(name) > 255:
            raise bad_request("field_name must be between 1 and 255 characters")
        if kind not in CREATABLE_TYPES:
            raise bad_request("field_type is not one of the allowed values")
        code = hashlib.sha1(secrets.token_bytes(16), usedforsecurity=False).hexdigest()
        field = _field(name, code, kind, custom=True)
        self.fields.append(field)
        return field

    def custom_codes(self) -> dict[str, FieldDefinition]:
        """Custom fields by their hashed key."""
        return {f["field_code"]: f for f in self.fields if f["is_custom_field"]}

    # -- persons -----------------------------------------------------------------------

    def person(self, person_id: int) -> Person:
        """A live person, or the 404 Pipedrive answers."""
        person = self.persons.get(person_id)
        if person is None or person["is_deleted"]:
            raise PipedriveError(404, "Person not found", "ERR_NOT_FOUND")
        return person

    def person_or_deleted(self, person_id: int) -> Person:
        """A person, live or marked deleted (kept until the purge), or a 404 for an id that
        never was."""
        person = self.persons.get(person_id)
        if person is None:
            raise PipedriveError(404, "Person not found", "ERR_NOT_FOUND")
        return person

    def create_person(self, body: Mapping[str, object]) -> Person:
        """A new person from a ``POST /api/v2/persons`` body."""
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required")
        stamp = now_rfc3339()
        person: Person = {
            "id": self._next("person"),
            "name": "",
            "first_name": None,
            "last_name": None,
            "owner_id": USER_ID,
            "org_id": None,
            "add_time": stamp,
            "update_time": stamp,
            "emails": [],
            "phones": [],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "custom_fields": dict.fromkeys(self.custom_codes()),
        }
        if self.contact_sync:
            person[JOB_TITLE] = None
            person[POSTAL_ADDRESS] = None
        self._apply(person, body)
        self.persons[person["id"]] = person
        self._written[person["id"]] = time.monotonic()
        return person

    def update_person(self, person_id: int, body: Mapping[str, object]) -> Person:
        """Apply a ``PATCH /api/v2/persons/{id}`` body."""
        person = self.person(person_id)
        if "name" in body and not (isinstance(body["name"], str) and body["name"].strip()):
            raise bad_request("name must be a non-empty string")
        self._apply(person, body)
        person["update_time"] = now_rfc3339()
        self._written[person_id] = time.monotonic()
        return person

    def _apply(self, person: Person, body: Mapping[str, object]) -> None:
        # Check everything first: a refused write changes nothing.
        known = {"name", "owner_id", "org_id", "emails", "phones", "visible_to", "label_ids"}
        known |= {"custom_fields", "add_time", "marketing_status"}
        if self.contact_sync:
            known |= {JOB_TITLE, POSTAL_ADDRESS, "notes", "im", "birthday"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise bad_request(f"Unknown parameter(s): {', '.join(unknown)}")
        emails = _points(body["emails"], "emails", email=True) if "emails" in body else None
        phones = _points(body["phones"], "phones") if "phones" in body else None
        org_id = body.get("org_id", person["org_id"])
        if org_id is not None and (not isinstance(org_id, int) or org_id not in self.organizations):
            raise PipedriveError(400, "Organization not found", "ERR_INVALID_INPUT")
        custom = body.get("custom_fields", {})
        if not isinstance(custom, dict):
            raise bad_request("custom_fields must be an object")
        codes = self.custom_codes()
        for key, value in custom.items():
            if key not in codes:
                raise bad_request(f"Custom field {key} does not exist")
            if value is not None and not isinstance(value, str | int | float):
                raise bad_request(f"custom_fields.{key} has a wrong type")
        title = body.get(JOB_TITLE, person.get(JOB_TITLE))
        if title is not None and not isinstance(title, str):
            raise bad_request("job_title must be a string")
        address = body.get(POSTAL_ADDRESS, person.get(POSTAL_ADDRESS))
        if address is not None and not isinstance(address, dict):
            raise bad_request("postal_address must be an object")
        # Then write.
        if isinstance(body.get("name"), str):
            person["name"] = " ".join(str(body["name"]).split())
            person["first_name"], person["last_name"] = split_name(person["name"])
        if emails is not None:
            person["emails"] = emails
        if phones is not None:
            person["phones"] = phones
        person["org_id"] = org_id
        for key, value in custom.items():
            person["custom_fields"][key] = None if value in (None, "") else str(value)
        if self.contact_sync:
            person[JOB_TITLE] = title or None
            person[POSTAL_ADDRESS] = _address(address) if address else None

    def delete_person(self, person_id: int) -> None:
        """Mark a person deleted: Pipedrive keeps it 30 days, then purges it (the purge is
        not emulated). A person already deleted is not found again."""
        person = self.person(person_id)
        person["is_deleted"] = True
        person["update_time"] = now_rfc3339()

    def live_persons(self) -> list[Person]:
        """Persons not marked deleted, by id."""
        return [p for _, p in sorted(self.persons.items()) if not p["is_deleted"]]

    def search_persons(
        self, term: str, fields: Iterable[str], *, exact: bool, org_id: int | None = None
    ) -> list[Person]:
        """Persons whose chosen ``fields`` match ``term``, best first."""
        wanted = _search_term(term, exact)
        searchable = {
            k for k, f in self.custom_codes().items() if f["field_type"] in SEARCHABLE_TYPES
        }
        hits: list[Person] = []
        cutoff = time.monotonic() - self.search_lag
        for person in self.live_persons():
            if org_id is not None and person["org_id"] != org_id:
                continue
            if self.search_lag > 0 and self._written.get(person["id"], 0.0) > cutoff:
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(person["name"])
            if "email" in fields:
                values += [p["value"] for p in person["emails"]]
            if "phone" in fields:
                values += [p["value"] for p in person["phones"]]
            if "custom_fields" in fields:
                values += [v for k, v in person["custom_fields"].items() if v and k in searchable]
            if any(_matches(v, wanted, exact) for v in values):
                hits.append(person)
        return hits

    # -- organizations -----------------------------------------------------------------

    def organization(self, org_id: int) -> Organization:
        """A live organization, or a 404."""
        org = self.organizations.get(org_id)
        if org is None or org["is_deleted"]:
            raise PipedriveError(404, "Organization not found", "ERR_NOT_FOUND")
        return org

    def create_organization(self, body: Mapping[str, object]) -> Organization:
        """A new organization from a ``POST /api/v2/organizations`` body (names may repeat,
        as in Pipedrive)."""
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required")
        stamp = now_rfc3339()
        org: Organization = {
            "id": self._next("organization"),
            "name": name.strip(),
            "owner_id": USER_ID,
            "add_time": stamp,
            "update_time": stamp,
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "address": None,
            "custom_fields": {},
        }
        self.organizations[org["id"]] = org
        return org

    def search_organizations(
        self, term: str, fields: Iterable[str], *, exact: bool
    ) -> list[Organization]:
        """Organizations whose name (or address) matches ``term``."""
        wanted = _search_term(term, exact)
        hits = []
        for org in (o for _, o in sorted(self.organizations.items()) if not o["is_deleted"]):
            values = [org["name"]] if "name" in fields else []
            if "address" in fields and org["address"]:
                values.append(org["address"].get("value") or "")
            if any(_matches(v, wanted, exact) for v in values):
                hits.append(org)
        return hits

    # -- notes (API v1) ------------------------------------------------------------------

    def create_note(self, body: Mapping[str, object]) -> Note:
        """A note from a ``POST /api/v1/notes`` body; it must be attached to something."""
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise PipedriveError(400, "Note content is required.")
        if len(content.encode("utf-8", "surrogatepass")) > NOTE_CONTENT_LIMIT:
            raise PipedriveError(400, "Note content is too long.")
        added = body.get("add_time")
        if added is not None and not (isinstance(added, str) and _V1_TIME.fullmatch(added)):
            raise PipedriveError(400, "add_time must be in the format YYYY-MM-DD HH:MM:SS.")
        person_id, org_id, deal_id = (
            _optional_id(body, k) for k in ("person_id", "org_id", "deal_id")
        )
        if person_id is None and org_id is None and deal_id is None and not body.get("lead_id"):
            raise PipedriveError(
                400, "Note must be attached to a deal, person, organization or lead."
            )
        if person_id is not None:
            self.person(person_id)
        if org_id is not None:
            self.organization(org_id)
        stamp = now_v1()
        note: Note = {
            "id": self._next("note"),
            "content": content,
            "person_id": person_id,
            "org_id": org_id,
            "deal_id": deal_id,
            "user_id": USER_ID,
            "add_time": added if isinstance(added, str) else stamp,
            "update_time": stamp,
            "active_flag": True,
            "pinned_to_person_flag": body.get("pinned_to_person_flag") in (True, 1, "1"),
        }
        self.notes[note["id"]] = note
        return note

    def delete_note(self, note_id: int) -> None:
        """``DELETE /api/v1/notes/{id}``: the note is gone from every list; a note that is
        not there (or already deleted) is a 404."""
        note = self.notes.get(note_id)
        if note is None or not note["active_flag"]:
            raise PipedriveError(404, "Note not found")
        note["active_flag"] = False
        note["update_time"] = now_v1()

    def live_notes(self, person_id: int | None = None) -> list[Note]:
        """Notes not deleted, by id; only the person's when ``person_id`` is given."""
        return [
            n
            for _, n in sorted(self.notes.items())
            if n["active_flag"] and (person_id is None or n["person_id"] == person_id)
        ]


def _optional_id(body: Mapping[str, object], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise PipedriveError(400, f"{key} must be an integer.")
    return int(value)


def _points(value: object, what: str, *, email: bool = False) -> list[ContactPoint]:
    """``emails``/``phones`` of a write: a list of ``{value, primary?, label?}``."""
    if not isinstance(value, list):
        raise bad_request(f"{what} must be an array")
    out: list[ContactPoint] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise bad_request(f"{what} items must be objects with a string value")
        text = str(item["value"]).strip()
        if email and not _EMAIL.match(text):
            # Pipedrive quotes the value it refused; so does the sandbox, so tests prove the
            # client never passes this text on.
            raise bad_request(f"{what}.value {text!r} is not a valid email address")
        label = item.get("label")
        out.append(
            {"value": text, "primary": item.get("primary") is True, "label": str(label or "work")}
        )
    if out and not any(p["primary"] for p in out):
        out[0]["primary"] = True
    return out


def _address(value: Mapping[str, object]) -> Address:
    return {"value": str(value.get("value") or "") or None}


def _search_term(term: str, exact: bool) -> str:
    wanted = " ".join(term.split()).casefold()
    if len(wanted) < (1 if exact else 2):
        raise bad_request("term must be at least 2 characters long (1 with exact_match)")
    return wanted


def _matches(value: str, wanted: str, exact: bool) -> bool:
    have = " ".join(value.split()).casefold()
    return have == wanted if exact else wanted in have
