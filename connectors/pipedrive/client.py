"""The Pipedrive client: persons upserted on the source's member id, through API v2.

Pipedrive has no batch write and no unique custom fields, so each contact is looked up step
by step (:data:`connectors.base.MATCH_STEPS`), stopping at the first step that decides:
the identity custom field (a record this client wrote is read back by id; otherwise
``/api/v2/persons/search?fields=custom_fields&exact_match=true``), the profile URL (the
public id, searched inside custom fields), the email (``fields=email&exact_match=true``) and,
unless ``[match] strict``, the name within the person's organization
(``fields=name&exact_match=true&organization_id=…``). Search answers lack custom fields, so
each hit is read by id before :func:`connectors.base.match` judges. Then only what
:func:`connectors.base.fields_to_write` allows is sent, in one ``PATCH`` or ``POST``.
Every create and update also stamps the "syncd synced at" field with the time of the write.

Each message becomes one v1 note on the person (:mod:`connectors.pipedrive.notes`), dated
with the message's time; which messages Pipedrive holds is read from syncd's note markers.
The follow flag is the "syncd follow" person field (:mod:`connectors.pipedrive.follow`).
The lookup steps are in :mod:`connectors.pipedrive.lookup`, organizations in
:mod:`connectors.pipedrive.organizations`; this module holds the CRM verbs and the writes.

``erase`` finds the person the same way, deletes the notes syncd wrote on it (v1
``/api/v1/notes``: only those carrying syncd's marker) and then the person
(``DELETE /api/v2/persons/{id}``, which Pipedrive keeps 30 days before purging); ``export``
reads what Pipedrive holds and writes nothing.
Docs: https://developers.pipedrive.com/docs/api/v2 (and ``specs/pipedrive/v2.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

import anyio
import httpx

from connectors._concurrent import both
from connectors._ratelimit import Layered, Limiter
from connectors._session import Session, Vendor, in_header
from connectors.base import (
    Activity,
    ConnectorSettings,
    Contact,
    Erasure,
    Followed,
    Holding,
    Logged,
    MatchStep,
    Presence,
    TargetOutcome,
    fields_to_write,
    match_keys,
)
from connectors.pipedrive import errors, follow, ratelimit
from connectors.pipedrive.fields import PERSON_FIELDS, PersonFields
from connectors.pipedrive.lookup import PERSONS, People
from connectors.pipedrive.mapping import (
    BODY_LIMIT,
    FOLLOWING,
    FieldMap,
    Person,
    desired,
    member_of,
    note_time,
    person_body,
    person_fields,
    person_from,
    stamped,
    synced_at_of,
)
from connectors.pipedrive.notes import add_notes, delete_notes, message_keys, syncd_notes
from connectors.pipedrive.organizations import Organizations
from sync.errors import FatalConnectorError, RecordRejected, SyncdError
from sync.retry import RetryPolicy

#: What Pipedrive keeps after ``DELETE /api/v2/persons/{id}``: the person is marked deleted
#: and purged after 30 days (``v2.yaml``, ``deletePerson``).
RETENTION = "purged by Pipedrive after 30 days"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - an endpoint path, not a secret
DEFAULT_OAUTH_URL = "https://oauth.pipedrive.com"
_DEFAULT_RETRY = RetryPolicy()
#: People of one batch written at once; the rate limiter keeps the pace legal.
PARALLEL = 8
#: From this many people in one call, candidates come from a listing of the company (see
#: directory.py) rather than a search per matching step per person.
BULK_MIN = 10
#: Listing pages (10 tokens each) one call may spend per person while the directory is being
#: built: no more than the searches they replace would cost.
PAGES_PER_PERSON = 2
#: Listing pages the first call of any size spends to learn whether the company is small: if
#: its persons fit in these, every later call (a lone add too) is decided from the directory.
PROBE_PAGES = 2


class PipedriveCRM:
    """Upserts contacts into one Pipedrive company (implements ``connectors.base.CRM``)."""

    name: ClassVar[str] = "pipedrive"
    #: The longest activity body (note / Task description) one activity takes.
    body_limit: ClassVar[int] = BODY_LIMIT

    def __init__(
        self,
        settings: ConnectorSettings,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
        limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._connector = settings.instance
        self._base_url = settings.base_url.rstrip("/")
        options = settings.options
        oauth_url = str(options.get("oauth_url") or DEFAULT_OAUTH_URL).rstrip("/")
        # An API token travels in x-api-token (the OpenAPI files' api_key scheme), never in
        # the query string, where proxies and logs keep it; an OAuth access token as Bearer,
        # refreshed with HTTP Basic client auth:
        # https://pipedrive.readme.io/docs/marketplace-oauth-authorization
        vendor = Vendor(
            errors.classify,
            token_url=oauth_url + TOKEN_PATH,
            client_auth="basic",
            plain=in_header("x-api-token"),
        )
        general = ratelimit.limiter(retry.sleep, clock) if limiter is None else limiter
        search = Layered([general, ratelimit.search_limiter(retry.sleep, clock)])
        self._api = Session(
            self._connector,
            credential,
            vendor,
            base_url=self._base_url,
            transport=transport,
            retry=retry,
            limiter=general,
        )
        self._schema = PersonFields(
            self._api,
            str(options.get("member_id_field") or "syncd member id"),
            str(options.get("profile_url_field") or "LinkedIn profile URL"),
        )
        self._orgs = Organizations(self._api, search=search)
        self._people = People(self._api, settings, self._orgs, search=search, clock=clock)
        #: How many people of one batch are written at once (see upsert_contacts).
        self._parallel = anyio.CapacityLimiter(PARALLEL)
        #: Whether a bulk call began building the directory (later calls carry it on).
        self._building = False

    # -- the CRM protocol ----------------------------------------------------------------

    async def check_auth(self) -> None:
        """Raise AuthError unless Pipedrive accepts the credential (one cheap read)."""
        await self._api.call("GET", PERSON_FIELDS, params={"limit": "1"})

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; one outcome per contact, in order."""
        if not contacts:
            return []
        pages = max(PROBE_PAGES, PAGES_PER_PERSON * len(contacts))
        self._orgs.forget_missing(pages=pages)
        fields = await self._field_map(create=True)
        outcomes: dict[int, TargetOutcome] = {}
        stopped: list[SyncdError] = []  # what stops the whole call (auth, budget, retries)

        directory = self._people.directory
        # A whole directory is refreshed and used by every call. It is built on by bulk
        # calls; a first smaller call only probes (a big company's lone adds keep searching).
        self._building = self._building or len(contacts) >= BULK_MIN
        listed = False
        # A re-import whose people the index knows by identity reads them by id at once;
        # the listing waits until one of them turns out gone or changed (see directory.py).
        known = (
            len(contacts) > 1
            and directory.fresh()
            and all(directory.identity(c) is not None for c in contacts)
        )
        if known:
            listed = True
        elif directory.complete or self._building or not directory.started:
            try:
                if len(contacts) == 1:  # a lone add: the organisations' refresh alongside
                    listed, _ = await both(
                        partial(directory.ready, fields, pages=pages), self._orgs.warm
                    )
                else:
                    listed = await directory.ready(fields, pages=pages)
            except RecordRejected:  # a listing refused: each person is searched instead
                listed = False
        records: dict[int, Person] = {}

        async def one(index: int, scope: anyio.CancelScope) -> None:
            async with self._parallel:
                try:
                    found = records if listed else None
                    outcomes[index] = await self._upsert(contacts[index], fields, found)
                except RecordRejected as error:
                    outcomes[index] = self._rejected(error)
                except SyncdError as error:
                    stopped.append(error)
                    scope.cancel()

        # Pipedrive has no batch write for persons, so a batch's people are written side by
        # side (the rate limiter paces them) — except people who share a matching key (member
        # id, profile URL, email, name): those go one after the other, in order, so two of
        # them never both create, or both claim, the same record.
        for wave in _waves(contacts):
            if listed:  # every candidate of the wave in as few reads as Pipedrive allows
                records = await self._read_candidates([contacts[i] for i in wave])
                if known and not all(self._still_known(contacts[i], records, fields) for i in wave):
                    known = False
                    try:
                        await directory.ready(fields, pages=pages)  # complete: a refresh
                    except RecordRejected:  # as above: each person is searched instead
                        listed = False
                    else:
                        records = await self._read_candidates([contacts[i] for i in wave])
            async with anyio.create_task_group() as tg:
                for index in wave:
                    tg.start_soon(one, index, tg.cancel_scope)
            if stopped:
                raise stopped[0]
        return [outcomes[i] for i in range(len(contacts))]

    async def _read_candidates(self, contacts: Sequence[Contact]) -> dict[int, Person]:
        """Every person the directory names for any of ``contacts``, read as it is now."""
        directory = self._people.directory
        strict = self._settings.strict_match
        return await directory.read(
            set().union(*(directory.candidates(c, strict=strict) for c in contacts))
        )

    def _still_known(
        self, contact: Contact, records: Mapping[int, Person], fields: FieldMap
    ) -> bool:
        """Whether the person the directory knows ``contact`` by still carries its identity."""
        person_id = self._people.directory.identity(contact)
        person = records.get(person_id) if person_id is not None else None
        return person is not None and member_of(person, fields) == (contact.member_id or "").strip()

    async def find(self, contact: Contact) -> Presence:
        """Whether ``contact`` is in Pipedrive, by :func:`match`; writes nothing."""
        self._orgs.forget_missing()
        verdict, _ = await self._people.lookup(contact, await self._field_map(create=False))
        if verdict.record is None:
            return Presence(found=False, step=verdict.step, candidates=verdict.ambiguous)
        rid = verdict.record.id
        return Presence(
            found=True,
            id=rid,
            owner=verdict.record.owner,
            url=self._url(rid),
            step=verdict.step,
        )

    async def erase(self, contact: Contact) -> Erasure:
        """Delete the person :func:`match` finds for ``contact`` and the notes syncd wrote on
        it; organizations stay. A lost answer to the delete raises WriteUncertain: it is not
        resent (a second delete answers 404), and running ``erase`` again finds ``absent``."""
        self._orgs.forget_missing()
        verdict, _ = await self._people.lookup(contact, await self._field_map(create=False))
        if verdict.ambiguous:
            return Erasure("ambiguous", step=verdict.step, candidates=verdict.ambiguous)
        if verdict.record is None:
            return Erasure("absent")
        person_id = int(verdict.record.id)
        notes = await syncd_notes(self._api, person_id)
        await delete_notes(self._api, notes)
        response = await self._api.call(
            "DELETE", f"{PERSONS}/{person_id}", ok={200, 404}, idempotent=False
        )
        self._people.forget(person_id)
        if response.status_code == 404:  # deleted by someone else since it was found
            return Erasure("absent", activities=len(notes), step=verdict.step)
        self._envelope(response)
        return Erasure(
            "erased",
            id=str(person_id),
            activities=len(notes),
            retention=RETENTION,
            step=verdict.step,
        )

    async def export(self, contact: Contact) -> Holding:
        """What Pipedrive holds about the person :func:`match` finds for ``contact``: its
        mapped fields, link, "syncd synced at" value and the dates of syncd's notes."""
        self._orgs.forget_missing()
        fields = await self._field_map(create=False)
        verdict, records = await self._people.lookup(contact, fields)
        if verdict.record is None:
            return Holding(found=False, step=verdict.step, candidates=verdict.ambiguous)
        person = records[verdict.record.id]
        held = person_fields(person, fields, await self._orgs.name(person["org_id"]))
        notes = await syncd_notes(self._api, person["id"])
        dates = sorted(t for t in map(note_time, notes) if t is not None)
        return Holding(
            found=True,
            id=verdict.record.id,
            url=self._url(verdict.record.id),
            fields=held,
            activities=tuple(dates),
            synced_at=synced_at_of(person, fields),
            step=verdict.step,
        )

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The activity keys in the markers of syncd's notes on the person (every page);
        a human's notes are not counted."""
        return await message_keys(self._api, int(record_id))

    async def add_messages(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """One note per activity, oldest first (Pipedrive has no batch note create)."""
        return await add_notes(self._api, int(record_id), activities)

    async def set_follow(self, contact: Contact, follow: bool) -> Presence:
        """Set (or clear) "syncd follow" on the person :func:`match` finds for
        ``contact``; nothing is sent when it already says so."""
        self._orgs.forget_missing()
        fields = await self._field_map(create=False)
        verdict, records = await self._people.lookup(contact, fields)
        if verdict.record is None:
            return Presence(found=False, step=verdict.step, candidates=verdict.ambiguous)
        person = records[verdict.record.id]
        key = await self._schema.follow_key(create=follow)
        current = (person["custom_fields"].get(key) or "").strip() if key else ""
        if key and (current == FOLLOWING) != follow:
            body = {"custom_fields": {key: FOLLOWING if follow else None}}
            stamp = stamped(body, fields, datetime.now(UTC))
            await self._api.call("PATCH", f"{PERSONS}/{person['id']}", body=stamp)
        return Presence(
            found=True,
            id=verdict.record.id,
            owner=verdict.record.owner,
            url=self._url(verdict.record.id),
            step=verdict.step,
        )

    async def followed(self) -> list[Followed]:
        """Every person whose "syncd follow" is set, with its publicId (every page)."""
        key = await self._schema.follow_key(create=False)
        fields = await self._field_map(create=False)
        if not key or not fields.profile_url:
            return []
        return await follow.followed(self._api, key, fields.profile_url)

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()

    def _url(self, person_id: str) -> str:
        """The person's page in Pipedrive's web app."""
        return f"{self._base_url}/person/{person_id}"

    async def _data(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The ``data`` of a successful answer in Pipedrive's envelope."""
        return self._envelope(await self._api.call(method, path, body=body, params=params))[0]

    def _envelope(self, response: httpx.Response) -> tuple[Any, dict[str, Any]]:
        """``data`` and ``additional_data`` of an answer that says ``success``."""
        return errors.envelope(self._connector, response)

    # -- person fields -------------------------------------------------------------------

    async def _field_map(self, *, create: bool) -> FieldMap:
        return await self._schema.field_map(create=create)

    # -- upsert --------------------------------------------------------------------------

    async def _upsert(
        self, contact: Contact, fields: FieldMap, found: dict[int, Person] | None
    ) -> TargetOutcome:
        """Create or update one person; ``found`` holds the candidates read from the
        directory's ids (None: search step by step)."""
        wanted = desired(contact.fields, fields)
        if found is None:
            verdict, records = await self._people.lookup(contact, fields)
        else:
            verdict, records = await self._people.judge(contact, fields, found)
        if verdict.ambiguous:
            return TargetOutcome(
                "ambiguous",
                candidates=verdict.ambiguous,
                detail=f"{self._connector}: {len(verdict.ambiguous)} persons match by "
                f"{verdict.step}; nothing was written",
            )
        if verdict.record is None:
            return await self._create(contact, wanted, fields)
        person = records[verdict.record.id]
        write = fields_to_write(
            await self._people.existing(person, fields, contact), wanted, self._settings.overwrite
        )
        claim = None if member_of(person, fields) else contact.member_id
        body = person_body(write, fields, person, member_id=claim)
        if "company" in write:
            org_id = await self._orgs.id(write["company"], create=True)
            if org_id != person["org_id"]:  # the same organization, spelled otherwise
                body["org_id"] = org_id
        self._people.known[contact.member_id] = person["id"]
        if not body:
            return TargetOutcome("unchanged", id=str(person["id"]))
        body = stamped(body, fields, datetime.now(UTC))
        patched = person_from(await self._data("PATCH", f"{PERSONS}/{person['id']}", body=body))
        if patched is not None:
            self._people.directory.add(patched, fields)
        return TargetOutcome("updated", id=str(person["id"]))

    async def _create(
        self, contact: Contact, wanted: dict[str, str], fields: FieldMap
    ) -> TargetOutcome:
        if not (wanted.get("first_name") or wanted.get("last_name")):
            return TargetOutcome(
                "failed",
                detail=f"{self._connector}: a Pipedrive person needs a name; allow first_name or "
                "last_name in [privacy] fields",
                reason="rejected",
            )
        body = person_body(wanted, fields, None, member_id=contact.member_id)
        body = stamped(body, fields, datetime.now(UTC))
        if "company" in wanted:
            body["org_id"] = await self._orgs.id(wanted["company"], create=True)
        made = person_from(await self._data("POST", PERSONS, body=body))
        if made is None:
            raise FatalConnectorError(self._connector, f"{self._connector} sent a malformed person")
        self._people.known[contact.member_id] = made["id"]
        self._people.directory.add(made, fields)
        return TargetOutcome("created", id=str(made["id"]))

    def _rejected(self, error: RecordRejected) -> TargetOutcome:
        """A failed outcome naming status, code and request id; never Pipedrive's message,
        which can quote the person's data."""
        detail = f"{self._connector} refused the record: {error}" + (
            f"; request id {error.request_id}" if error.request_id else ""
        )
        return TargetOutcome("failed", detail=detail, reason="rejected")


def _waves(contacts: Sequence[Contact]) -> list[list[int]]:
    """Contact indexes in waves: within a wave no two contacts share a matching key, and a
    contact that shares one with an earlier contact comes in a later wave."""
    waves: list[list[int]] = []
    taken: list[set[tuple[MatchStep, object]]] = []
    for index, contact in enumerate(contacts):
        keys = match_keys(contact)
        level = 0
        for depth, seen in enumerate(taken):
            if keys & seen:
                level = depth + 1
        if level == len(waves):
            waves.append([])
            taken.append(set())
        waves[level].append(index)
        taken[level] |= keys
    return waves
