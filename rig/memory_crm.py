"""A CRM and a source that live in dicts, with fault knobs, for testing the relay in process.

Like the sandboxes, each is a *service* (its records, the credentials it refuses, the faults
it will answer next) and hands out *clients* bound to one credential, which is what
:class:`sync.instances.Instances` builds and caches: pass :func:`memory_clients` as its
``clients`` factory. The clients implement the ``Source`` and ``CRM`` Protocols of
``connectors.base`` without inheriting from them. Nothing here opens a socket or sleeps.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import anyio

from connectors.base import (
    Activity,
    Candidate,
    ConnectorSettings,
    Contact,
    Erasure,
    Followed,
    Holding,
    Logged,
    Message,
    Person,
    Presence,
    TargetOutcome,
    fields_to_write,
    match,
    profile_key,
)
from sync.config import Config, DaemonConfig, PrivacyConfig
from sync.errors import ActivitiesRefused, AuthError, RecordRejected, WriteUncertain

MEMORY = "memory"


def numbered_person(n: int) -> Person:
    """Sample person ``n`` for a :class:`MemorySource`: publicId ``person-<n>``, member id
    ``urn:li:member:<n>``, an email and a company, all made up."""
    return Person(
        member_id=f"urn:li:member:{n}",
        public_id=f"person-{n}",
        first_name=f"First{n}",
        last_name=f"Last{n}",
        profile_url=f"https://www.linkedin.example/in/person-{n}",
        email=f"p{n}@work.example",
        company="Engines Ltd",
    )


class _Service:
    """What both memory services share: the calls seen, refused credentials, fault knobs."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        #: Every call the clients made, by verb ("upsert_contacts", "find", …), in order.
        self.calls: list[str] = []
        #: Every credential a client was built with, in order (a new client after a reject).
        self.credentials: list[str] = []
        self._rejected: set[str] = set()
        self._errors: deque[Exception] = deque()
        self._lost_writes = 0

    def fail_next(self, error: Exception, count: int = 1) -> None:
        """The next ``count`` calls (any verb) raise ``error`` and change nothing."""
        self._errors.extend([error] * count)

    def raise_unexpected_next(self, error: Exception | None = None, count: int = 1) -> None:
        """The next ``count`` calls raise an exception that is no syncd error (a bug)."""
        self.fail_next(error or RuntimeError("memory connector: unexpected failure"), count)

    def lose_next_write(self, count: int = 1) -> None:
        """The next ``count`` writes are applied, then their answer is lost (WriteUncertain)."""
        self._lost_writes += count

    def reject(self, credential: str) -> None:
        """Answer every call made with ``credential`` as a rejected credential (AuthError)."""
        self._rejected.add(credential)

    def accept(self, credential: str) -> None:
        """Take ``credential`` again after :meth:`reject`."""
        self._rejected.discard(credential)

    async def _admit(self, verb: str, credential: str) -> None:
        """Record the call, then raise what the knobs say it answers."""
        await anyio.lowlevel.checkpoint()
        self.calls.append(verb)
        if credential in self._rejected:
            raise AuthError(
                self.instance,
                f"{self.instance} rejected its credential (HTTP 401); "
                f"store a valid one with `syncd auth set {self.instance}`",
            )
        if self._errors:
            raise self._errors.popleft()

    def _lose_this_write(self) -> bool:
        if self._lost_writes:
            self._lost_writes -= 1
            return True
        return False


class MemoryCRM(_Service):
    """One CRM's records in a dict, upserted by the source's member id (then URL, email…)."""

    def __init__(self, instance: str, *, strict_match: bool = False) -> None:
        super().__init__(instance)
        self.records: dict[str, Candidate] = {}
        self.strict_match = strict_match
        #: Per record: the activities syncd wrote, in order of writing.
        self.activities: dict[str, list[Activity]] = {}
        #: The records whose follow flag is set.
        self.following: set[str] = set()
        #: Activities per add_messages call at most (a "batch"), to test batch boundaries.
        self.batch = 100
        #: How many contacts each upsert_contacts call carried, in order.
        self.upsert_sizes: list[int] = []
        #: When set, add_messages raises ActivitiesRefused (a credential without the scope).
        self.refuse_activities = False
        self._lost_activity_writes = 0
        #: With a number N: add_messages stops for good before its N-th batch (counting from
        #: 0 over the service's life) and sets :attr:`stalled` — a daemon killed then died
        #: between two batches.
        self.stall_at_batch: int | None = None
        self.stalled = anyio.Event()
        self._batches = 0
        self._ids = itertools.count(1)

    def lose_next_activity_write(self, count: int = 1) -> None:
        """Apply the next ``count`` add_messages batches, then lose their answers."""
        self._lost_activity_writes += count

    def client(self, credential: str) -> MemoryCRMClient:
        """A client of this CRM that sends ``credential``."""
        self.credentials.append(credential)
        return MemoryCRMClient(self, credential)

    def held(self, member_id: str) -> int:
        """How many records carry ``member_id`` (exactly once is 1)."""
        return sum(1 for r in self.records.values() if r.member_id == member_id)

    def _upsert(self, contact: Contact) -> TargetOutcome:
        found = match(contact, self.records.values(), strict=self.strict_match)
        if found.ambiguous:
            return TargetOutcome("ambiguous", candidates=found.ambiguous)
        if found.record is None:
            record_id = str(next(self._ids))
            self.records[record_id] = Candidate(record_id, contact.member_id, dict(contact.fields))
            return TargetOutcome("created", id=record_id)
        record = found.record
        changes = fields_to_write(record.fields, contact.fields, "always")
        if not changes and record.member_id == contact.member_id:
            return TargetOutcome("unchanged", id=record.id)
        fields = {**record.fields, **changes}
        self.records[record.id] = Candidate(record.id, contact.member_id, fields)
        return TargetOutcome("updated", id=record.id)


class MemoryCRMClient:
    """The ``CRM`` Protocol over a :class:`MemoryCRM`, bound to one credential."""

    name: ClassVar[str] = MEMORY
    #: Short, so a test's long message is split without megabytes of text.
    body_limit: ClassVar[int] = 200

    def __init__(self, service: MemoryCRM, credential: str) -> None:
        self._service = service
        self._credential = credential
        self.closed = False

    async def _admit(self, verb: str) -> None:
        if self.closed:  # as httpx does: a closed client is a bug in its owner
            raise RuntimeError("memory CRM client used after aclose")
        await self._service._admit(verb, self._credential)

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        await self._admit("check_auth")

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; a lost write is applied before its answer is lost."""
        await self._admit("upsert_contacts")
        self._service.upsert_sizes.append(len(contacts))
        outcomes = [self._service._upsert(contact) for contact in contacts]
        if self._service._lose_this_write():
            instance = self._service.instance
            raise WriteUncertain(
                instance, f"{instance} did not confirm a write (the connection broke)"
            )
        return outcomes

    async def find(self, contact: Contact) -> Presence:
        """Whether ``contact`` is held, by the shared matching rule; writes nothing."""
        await self._admit("find")
        service = self._service
        found = match(contact, service.records.values(), strict=service.strict_match)
        if found.record is None:
            return Presence(False, step=found.step, candidates=found.ambiguous)
        return Presence(True, id=found.record.id, step=found.step)

    async def erase(self, contact: Contact) -> Erasure:
        """Delete the record the shared matching rule finds; a lost delete is applied
        before its answer is lost."""
        await self._admit("erase")
        service = self._service
        found = match(contact, service.records.values(), strict=service.strict_match)
        if found.ambiguous:
            return Erasure("ambiguous", step=found.step, candidates=found.ambiguous)
        if found.record is None:
            return Erasure("absent")
        del service.records[found.record.id]
        gone = service.activities.pop(found.record.id, [])
        service.following.discard(found.record.id)
        if service._lose_this_write():
            raise WriteUncertain(service.instance, f"{service.instance} did not confirm a delete")
        return Erasure("erased", id=found.record.id, step=found.step, activities=len(gone))

    async def export(self, contact: Contact) -> Holding:
        """What the record the shared matching rule finds holds; writes nothing."""
        await self._admit("export")
        service = self._service
        found = match(contact, service.records.values(), strict=service.strict_match)
        if found.record is None:
            return Holding(False, step=found.step, candidates=found.ambiguous)
        record = found.record
        dates = tuple(sorted(a.message.sent_at for a in service.activities.get(record.id, [])))
        return Holding(
            True, id=record.id, fields=dict(record.fields), activities=dates, step=found.step
        )

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The keys of the activities syncd wrote on the record."""
        await self._admit("message_ids")
        return frozenset(a.key for a in self._service.activities.get(record_id, []))

    async def add_messages(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write the activities in batches of :attr:`MemoryCRM.batch`; a lost activity write
        (:meth:`MemoryCRM.lose_next_activity_write`) applies its batch, then loses the answer."""
        service = self._service
        written: set[str] = set()
        split: set[str] = set()
        for start in range(0, len(activities), service.batch):
            await self._admit("add_messages")
            if service.refuse_activities:
                raise ActivitiesRefused(
                    service.instance, f"{service.instance} refused the activities (no permission)"
                )
            if service.stall_at_batch == service._batches:
                service.stalled.set()
                await anyio.sleep_forever()
            service._batches += 1
            chunk = activities[start : start + service.batch]
            service.activities.setdefault(record_id, []).extend(chunk)
            if service._lost_activity_writes:
                service._lost_activity_writes -= 1
                raise WriteUncertain(service.instance, f"{service.instance} did not confirm")
            for activity in chunk:
                written.add(activity.message.id)
                if "#" in activity.key:
                    split.add(activity.message.id)
        return Logged(len(written), len(split))

    async def set_follow(self, contact: Contact, follow: bool) -> Presence:
        """Set or clear the follow flag on the record the shared matching rule finds."""
        await self._admit("set_follow")
        service = self._service
        found = match(contact, service.records.values(), strict=service.strict_match)
        if found.record is None:
            return Presence(False, step=found.step, candidates=found.ambiguous)
        if follow:
            service.following.add(found.record.id)
        else:
            service.following.discard(found.record.id)
        return Presence(True, id=found.record.id, step=found.step)

    async def followed(self) -> list[Followed]:
        """The followed records, with the publicId from their profile URL."""
        await self._admit("followed")
        out = []
        for record_id in sorted(self._service.following, key=int):
            key = profile_key(self._service.records[record_id].fields.get("linkedin_url"))
            if key:
                out.append(Followed(record_id, key.split("/", 1)[1]))
        return out

    async def aclose(self) -> None:
        """Release nothing; later calls fail as they would on a closed HTTP client."""
        self.closed = True


class MemorySource(_Service):
    """The people the signed-in member can see, by publicId, and their conversations."""

    def __init__(self, people: Iterable[Person] = (), *, instance: str = "source") -> None:
        super().__init__(instance)
        self.people: dict[str, Person] = {p.public_id: p for p in people}
        self.messages: dict[str, list[Message]] = {}
        #: Whose conversation each fetch_messages read, in order (only the chosen person's).
        self.conversations_read: list[str] = []

    def client(self, credential: str) -> MemorySourceClient:
        """A client of this source that sends ``credential``."""
        self.credentials.append(credential)
        return MemorySourceClient(self, credential)


class MemorySourceClient:
    """The ``Source`` Protocol over a :class:`MemorySource`, bound to one credential."""

    name: ClassVar[str] = MEMORY

    def __init__(self, service: MemorySource, credential: str) -> None:
        self._service = service
        self._credential = credential
        self.closed = False

    async def _admit(self, verb: str) -> None:
        if self.closed:
            raise RuntimeError("memory source client used after aclose")
        await self._service._admit(verb, self._credential)

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        await self._admit("check_auth")

    async def fetch_person(self, public_id: str) -> Person:
        """The person, or RecordRejected (HTTP 404) for one the member cannot see."""
        await self._admit("fetch_person")
        try:
            return self._service.people[public_id]
        except KeyError:
            instance = self._service.instance
            raise RecordRejected(instance, f"{instance} has no such profile", status=404) from None

    async def fetch_messages(
        self, public_id: str, *, until: Collection[str] = frozenset(), limit: int = 10_000
    ) -> list[Message]:
        """The conversation, newest first, up to the first message in ``until``."""
        await self._admit("fetch_messages")
        self._service.conversations_read.append(public_id)
        newest_first = sorted(
            self._service.messages.get(public_id, []), key=lambda m: m.sent_at, reverse=True
        )
        out: list[Message] = []
        for message in newest_first[:limit]:
            if message.id in until:
                break
            out.append(message)
        return out

    async def aclose(self) -> None:
        """Release nothing; later calls fail."""
        self.closed = True


def memory_clients(
    source: MemorySource, crms: Mapping[str, MemoryCRM]
) -> Callable[[ConnectorSettings, str], MemorySourceClient | MemoryCRMClient]:
    """A client factory for ``Instances(clients=...)``: each instance's memory client."""

    def build(settings: ConnectorSettings, credential: str) -> MemorySourceClient | MemoryCRMClient:
        if settings.instance == source.instance:
            return source.client(credential)
        return crms[settings.instance].client(credential)

    return build


def memory_config(
    crms: Iterable[str], *, privacy: PrivacyConfig | None = None, path: Path | None = None
) -> Config:
    """A config whose source and CRMs are memory connectors (nothing is read from disk)."""
    where = path or Path("memory.toml")

    def settings(instance: str) -> ConnectorSettings:
        return ConnectorSettings(instance, MEMORY, f"memory://{instance}")

    return Config(
        path=where,
        daemon=DaemonConfig(socket=where.with_name("syncd.sock")),
        source=settings("source"),
        crms={name: settings(name) for name in crms},
        privacy=privacy or PrivacyConfig(),
    )
