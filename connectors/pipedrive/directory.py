"""Which Pipedrive persons could be a contact, known from one listing instead of a search per
matching step per person.

In bulk, searching costs the most: ``GET /api/v2/persons/search`` costs 20 tokens, has its own
limit of 10 requests per 2 s, and a new person needs one per matching step to prove it is new.
The list endpoint ``GET /api/v2/persons`` (10 tokens for up to 500 persons, ``v2.yaml``'s
``x-token-cost``) reads the same records straight from the database, so one listing of the
company, then one ``updated_since`` listing per batch, tells for every step which persons could
match: their ids under the identity field's member id, the profile URL's key, every email and
the full name. The candidates are then read by id, 100 per call (``?ids=``), and
:func:`connectors.base.match` judges them as it judges search hits. A person a human created or
edited between batches is in the next ``updated_since`` listing, so every step still finds it.

A batch whose every contact the index already knows by syncd's identity field (a re-import)
needs no listing while the last one is under :data:`FRESH_FOR` old: the identity step decides
before any other, and reading those persons by id shows them as they are now. Should one have
been deleted or lost its identity value, the caller refreshes before judging (see
:meth:`Directory.identity`).

Only keyed hashes of those keys are held (a random key per process, in memory only): the
index answers "which ids carry this key" without keeping anyone's email or name.
Docs: https://developers.pipedrive.com/docs/api/v2 (``getPersons``: ``updated_since``,
``sort_by``, ``custom_fields``, ``ids``, ``limit`` up to 500) and
https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting (token costs).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from connectors._session import Session
from connectors.base import Contact, profile_key
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import FieldMap, Person, full_name, member_of, person_from
from connectors.pipedrive.organizations import fold

PERSONS = "/api/v2/persons"
#: Persons per listing page (the most ``GET /api/v2/persons`` answers).
LIST_LIMIT = 500
#: Ids per ``GET /api/v2/persons?ids=`` (the most it takes).
IDS_LIMIT = 100
#: How far before the build began the first ``updated_since`` reaches back: a person edited
#: while the build paged past it is read again, whatever the clocks' skew.
SKEW = timedelta(minutes=10)
#: How long a listing counts as fresh for a batch of people all known by their identity
#: (seconds): a person someone else gave the same identity value since then is seen at most
#: this late (and then makes the match ambiguous, as it would have).
FRESH_FOR = 10.0


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Directory:
    """Person ids by matching key, for one Pipedrive company, built page by page."""

    def __init__(self, api: Session, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        #: When the index was last brought up to date with Pipedrive (clock seconds).
        self._listed_at = -math.inf
        self._salt = secrets.token_bytes(16)
        self._ids: dict[bytes, set[int]] = {}
        self._keys: dict[int, tuple[bytes, ...]] = {}
        self._cursor: str | None = None
        self._started = False
        self.complete = False
        #: ``updated_since`` of the next refresh (the newest ``update_time`` seen).
        self._since = ""
        self._newest = ""

    @property
    def started(self) -> bool:
        """Whether a build has begun (a later call continues or refreshes it)."""
        return self._started

    async def ready(self, fields: FieldMap, *, pages: int) -> bool:
        """Build on by at most ``pages`` listing pages, or refresh a complete index; whether
        the index now holds every person as Pipedrive has them."""
        if self.complete:
            await self._refresh(fields)
            return True
        if not self._started:
            self._started = True
            self._since = _rfc3339(datetime.now(UTC) - SKEW)
        for _ in range(max(1, pages)):
            params = self._params(fields, sort_by="id")
            first = not self._cursor
            if self._cursor:
                params["cursor"] = self._cursor
            people, self._cursor = await self._page(params)
            self.add_all(people, fields)
            if self._cursor is None:
                self.complete = True
                self._listed_at = self._clock()
                self._since = min(self._since, self._newest) if self._newest else self._since
                if not first:  # one page is one snapshot; several may miss an edit between
                    await self._refresh(fields)
                return True
        return False

    def fresh(self) -> bool:
        """Whether the index is complete and was listed less than :data:`FRESH_FOR` ago."""
        return self.complete and self._clock() - self._listed_at < FRESH_FOR

    def identity(self, contact: Contact) -> int | None:
        """The one person id the index holds under ``contact``'s member id, if exactly one."""
        if not contact.member_id:
            return None
        ids = self._ids.get(self._hash("identity", contact.member_id.strip()), set())
        return next(iter(ids)) if len(ids) == 1 else None

    def candidates(self, contact: Contact, *, strict: bool) -> set[int]:
        """Every person id that carries one of ``contact``'s matching keys."""
        out: set[int] = set()
        for key in self._contact_keys(contact, strict=strict):
            out |= self._ids.get(key, set())
        return out

    def add(self, person: Person, fields: FieldMap) -> None:
        """Index ``person`` as it is now (a write's answer, a listing, a read)."""
        self.drop(person["id"])
        if person["is_deleted"]:
            return
        keys = tuple(self._person_keys(person, fields))
        self._keys[person["id"]] = keys
        for key in keys:
            self._ids.setdefault(key, set()).add(person["id"])
        self._newest = max(self._newest, person["update_time"] or "")

    def add_all(self, people: Iterable[Person], fields: FieldMap) -> None:
        """Index each of ``people``."""
        for person in people:
            self.add(person, fields)

    def drop(self, person_id: int) -> None:
        """Forget ``person_id`` (deleted, or about to be indexed again)."""
        for key in self._keys.pop(person_id, ()):
            ids = self._ids.get(key)
            if ids is not None:
                ids.discard(person_id)
                if not ids:
                    del self._ids[key]

    async def read(self, ids: Iterable[int]) -> dict[int, Person]:
        """The live persons among ``ids``, read 100 per call; the others are forgotten."""
        wanted = sorted(set(ids))
        out: dict[int, Person] = {}
        for start in range(0, len(wanted), IDS_LIMIT):
            chunk = wanted[start : start + IDS_LIMIT]
            params = {"ids": ",".join(map(str, chunk)), "limit": str(IDS_LIMIT)}
            cursor: str | None = ""
            while cursor is not None:
                people, cursor = await self._page(
                    {**params, **({"cursor": cursor} if cursor else {})}
                )
                out |= {p["id"]: p for p in people if not p["is_deleted"]}
            for gone in set(chunk) - set(out):
                self.drop(gone)
        return out

    async def _refresh(self, fields: FieldMap) -> None:
        """Index every person updated since the last listing (each page in turn)."""
        params = self._params(fields, sort_by="update_time")
        params["updated_since"] = self._since
        listed_at = self._clock()
        cursor: str | None = ""
        newest = self._since
        while cursor is not None:
            people, cursor = await self._page({**params, **({"cursor": cursor} if cursor else {})})
            self.add_all(people, fields)
            newest = max([newest, *(p["update_time"] for p in people)])
        # ``updated_since`` includes its own second: a person written in the same second as
        # the newest seen is read again next time, never missed.
        self._since = newest
        self._listed_at = listed_at

    def _params(self, fields: FieldMap, *, sort_by: str) -> dict[str, str]:
        keys = ",".join(k for k in (fields.member_id, fields.profile_url) if k)
        return {
            "limit": str(LIST_LIMIT),
            "sort_by": sort_by,
            "sort_direction": "asc",
            **({"custom_fields": keys} if keys else {}),
        }

    async def _page(self, params: dict[str, str]) -> tuple[list[Person], str | None]:
        response = await self._api.call("GET", PERSONS, params=params)
        data, more = envelope(self._api.connector, response)
        people = [p for p in map(person_from, data if isinstance(data, list) else []) if p]
        cursor = more.get("next_cursor") if isinstance(more, dict) else None
        return people, cursor if isinstance(cursor, str) and cursor else None

    def _hash(self, step: str, key: str) -> bytes:
        raw = f"{step}\x00{key}".encode()
        return hashlib.blake2b(raw, key=self._salt, digest_size=16).digest()

    def _person_keys(self, person: Person, fields: FieldMap) -> set[bytes]:
        keys = set()
        member = member_of(person, fields)
        if member:
            keys.add(self._hash("identity", member))
        profile = profile_key(person["custom_fields"].get(fields.profile_url))
        if profile:
            keys.add(self._hash("profile_url", profile))
        keys |= {self._hash("email", fold(p["value"])) for p in person["emails"] if p["value"]}
        # The name step compares first and last names, however Pipedrive split ``name``:
        # the whole name and the joined parts cover both.
        for name in (person["name"], full_name(person["first_name"], person["last_name"])):
            if fold(name):
                keys.add(self._hash("name", fold(name)))
        return keys

    def _contact_keys(self, contact: Contact, *, strict: bool) -> set[bytes]:
        wanted = contact.fields
        keys = set()
        if contact.member_id:
            keys.add(self._hash("identity", contact.member_id.strip()))
        profile = profile_key(wanted.get("linkedin_url"))
        if profile:
            keys.add(self._hash("profile_url", profile))
        if fold(wanted.get("email")):
            keys.add(self._hash("email", fold(wanted.get("email"))))
        name = fold(full_name(wanted.get("first_name"), wanted.get("last_name")))
        if name and not strict:
            keys.add(self._hash("name", name))
        return keys
