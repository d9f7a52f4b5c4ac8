"""Finding the Pipedrive person a contact is, step by step (:data:`connectors.base.MATCH_STEPS`),
stopping at the first step that decides: the identity custom field (a person this client
wrote or matched is read back by id; otherwise an exact search in custom fields), the
profile URL's public id (searched inside custom fields), the email (exact) and, unless
``[match] strict``, the full name within the person's organization. Search answers lack
custom fields, so each hit is read by id before :func:`connectors.base.match` judges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from connectors._ratelimit import Limiter
from connectors._session import Session
from connectors.base import (
    MATCH_STEPS,
    Candidate,
    ConnectorSettings,
    Contact,
    Match,
    MatchStep,
    match,
    name_key,
    profile_key,
)
from connectors.pipedrive.directory import Directory
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import (
    FieldMap,
    Person,
    full_name,
    member_of,
    person_fields,
    person_from,
    search_items,
)
from connectors.pipedrive.organizations import Organizations, fold
from sync.errors import FatalConnectorError

PERSONS = "/api/v2/persons"


class People:
    """The persons of one Pipedrive company, as :func:`connectors.base.match` sees them."""

    def __init__(
        self,
        api: Session,
        settings: ConnectorSettings,
        orgs: Organizations,
        *,
        search: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        #: The limiter of search calls: the token's window and the search API's own.
        self._search_limiter = search
        self._settings = settings
        self._orgs = orgs
        #: Member id -> person id of records this client wrote or matched: read back by id,
        #: so a re-add never depends on the search index having caught up.
        self.known: dict[str, int] = {}
        #: Candidates by matching key from listings, for bulk upserts (see directory.py).
        self.directory = Directory(api, clock)

    def forget(self, person_id: int) -> None:
        """Stop reading ``person_id`` back by member id (it was deleted)."""
        self.known = {k: v for k, v in self.known.items() if v != person_id}
        self.directory.drop(person_id)

    async def judge(
        self, contact: Contact, fields: FieldMap, records: Mapping[int, Person]
    ) -> tuple[Match, dict[str, Person]]:
        """The verdict on ``contact`` among the persons the directory names for it, read
        beforehand (``records``): every step's candidates at once, judged by :func:`match`."""
        strict = self._settings.strict_match
        ids = self.directory.candidates(contact, strict=strict) & set(records)
        found = {str(i): records[i] for i in sorted(ids)}
        candidates = [await self._candidate(p, fields, contact) for p in found.values()]
        return match(contact, candidates, strict=strict), found

    async def lookup(self, contact: Contact, fields: FieldMap) -> tuple[Match, dict[str, Person]]:
        """Fetch candidates step by step until a step decides; the verdict and the records."""
        strict = self._settings.strict_match
        records: dict[str, Person] = {}
        candidates: dict[str, Candidate] = {}
        verdict = Match()
        for index, step in enumerate(MATCH_STEPS):
            if step == "name" and strict:
                break
            for person_id in await self._step_ids(step, contact, fields):
                if str(person_id) in records:
                    continue
                person = await self.person(person_id)
                if person is not None:
                    records[str(person_id)] = person
                    candidates[str(person_id)] = await self._candidate(person, fields, contact)
            verdict = match(contact, candidates.values(), strict=strict)
            if verdict.step is not None and MATCH_STEPS.index(verdict.step) <= index:
                break
        return verdict, records

    async def person(self, person_id: int) -> Person | None:
        """A person read by id; None if it is gone."""
        response = await self._api.call("GET", f"{PERSONS}/{person_id}", ok={200, 404})
        if response.status_code == 404:
            return None
        connector = self._api.connector
        person = person_from(envelope(connector, response)[0])
        if person is None:
            raise FatalConnectorError(connector, f"{connector} sent a malformed person")
        return None if person["is_deleted"] else person

    async def existing(self, person: Person, fields: FieldMap, contact: Contact) -> dict[str, str]:
        """The record as canonical fields; a ``name`` equal to the contact's full name
        counts as the contact's first and last name, however Pipedrive split it."""
        out = person_fields(person, fields, await self._orgs.name(person["org_id"]))
        first, last = contact.fields.get("first_name", ""), contact.fields.get("last_name", "")
        if fold(person["name"]) == fold(full_name(first, last)):
            out |= {
                k: v.strip() for k, v in (("first_name", first), ("last_name", last)) if v.strip()
            }
        return out

    async def _step_ids(self, step: MatchStep, contact: Contact, fields: FieldMap) -> list[int]:
        """The ids one matching step's search finds."""
        wanted = contact.fields
        if step == "identity":
            if not fields.member_id or not contact.member_id:  # none: a forget by URL
                return []
            known = self.known.get(contact.member_id)
            if known is not None:
                person = await self.person(known)
                if person is not None and member_of(person, fields) == contact.member_id:
                    return [known]
            return await self._search(contact.member_id, "custom_fields", exact=True)
        if step == "profile_url":
            key = profile_key(wanted.get("linkedin_url"))
            public_id = key.split("/", 1)[1] if key else ""
            if not fields.profile_url or len(public_id) < 2:
                return []
            return await self._search(public_id, "custom_fields", exact=False)
        if step == "email":
            email = (wanted.get("email") or "").strip()
            return await self._search(email, "email", exact=True) if email else []
        if name_key(wanted) is None:
            return []
        org_id = await self._orgs.id(wanted["company"], create=False)
        if org_id is None:
            return []
        term = full_name(wanted.get("first_name"), wanted.get("last_name"))
        return await self._search(term, "name", exact=True, org_id=org_id)

    async def _search(
        self, term: str, field: str, *, exact: bool, org_id: int | None = None
    ) -> list[int]:
        params = {"term": term, "fields": field, "limit": "100"}
        if exact:
            params["exact_match"] = "true"
        if org_id is not None:
            params["organization_id"] = str(org_id)
        response = await self._api.call(
            "GET", f"{PERSONS}/search", params=params, limiter=self._search_limiter
        )
        data = envelope(self._api.connector, response)[0]
        return sorted({item["id"] for item in search_items(data)})

    async def _candidate(self, person: Person, fields: FieldMap, contact: Contact) -> Candidate:
        seen = await self.existing(person, fields, contact)
        email = fold(contact.fields.get("email"))
        if email and any(fold(p["value"]) == email for p in person["emails"]):
            seen["email"] = email  # any of its emails, not only the primary one
        owner = person["owner_id"]
        return Candidate(
            id=str(person["id"]),
            member_id=member_of(person, fields),
            fields=seen,
            owner=str(owner) if owner is not None else None,
        )
