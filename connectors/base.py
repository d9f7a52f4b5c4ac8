"""What every connector shares: the Source and CRM Protocols and the values they exchange.

Standard library only: the config loader imports the connector registry, and the thin
CLI commands must not pay for httpx.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal, Protocol

#: The person fields syncd knows, in the order they are shown. A CRM connector maps
#: these onto its own property names; ``[privacy] fields`` is a subset of them.
FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "linkedin_url",
    "location",
)

OutcomeKind = Literal[
    "created", "updated", "unchanged", "ambiguous", "failed", "refused", "erased", "absent"
]

#: The property/field every CRM write sets to the time of that write (ISO 8601, UTC), so a
#: retention review in the CRM can find records syncd has not refreshed in years and
#: `syncd export` can say when syncd last wrote. Nothing about it is stored locally.
SYNCED_AT = "syncd_synced_at"

#: How a person was recognised in a CRM, in the order syncd tries: its own identity property
#: (the source's member id), the profile URL, the email, then first+last name in the same
#: company (skipped when ``[match] strict = true``).
MatchStep = Literal["identity", "profile_url", "email", "name"]
MATCH_STEPS: tuple[MatchStep, ...] = ("identity", "profile_url", "email", "name")

#: "empty-only": write a field only where the CRM has no value; "always": syncd's value
#: wins; a frozenset: syncd owns those fields (always written), the rest are empty-only.
OverwritePolicy = Literal["empty-only", "always"] | frozenset[str]


@dataclass(frozen=True, slots=True)
class Person:
    """One profile as the source shows it to the signed-in member."""

    member_id: str
    public_id: str
    first_name: str
    last_name: str
    profile_url: str
    headline: str | None = None
    location: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    company_domain: str | None = None
    title: str | None = None

    def fields(self) -> dict[str, str]:
        """The person as syncd's canonical fields, empty values left out."""
        values = {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "company": self.company,
            "title": self.title,
            "linkedin_url": self.profile_url,
            "location": self.location,
        }
        return {k: v.strip() for k, v in values.items() if v and v.strip()}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation between the signed-in member and a person."""

    id: str
    conversation_id: str
    sender: Literal["me", "them"]
    sent_at: datetime
    text: str


#: The property/field on every activity syncd writes that carries its :class:`Activity` key
#: (the source's message id, with ``#k/n`` for part k of a split message): how each CRM tells
#: syncd which messages it already holds. Nothing on disk lists message ids.
MESSAGE_ID = "syncd_message_id"
#: The property/field on a person record that says the user follows them (follow mode): the
#: list of followed people lives in the CRM, never on disk.
FOLLOW = "syncd_follow"


@dataclass(frozen=True, slots=True)
class Activity:
    """One message as one CRM activity: a whole message, or one part of a long one."""

    #: The message id, or ``<id>#<k>/<n>`` for part k of n.
    key: str
    message: Message
    #: The text to write: the message's, with ``(k/n) `` in front of a part.
    body: str


def activities(message: Message, limit: int) -> list[Activity]:
    """``message`` as the activities a CRM whose body holds at most ``limit`` characters
    takes: one when it fits, else parts of at most ``limit`` characters each, in order, each
    starting ``(k/n) ``, whose texts joined give the message back exactly."""
    if len(message.text) <= limit:
        return [Activity(message.id, message, message.text)]
    count = 2
    while True:
        room = limit - len(f"({count}/{count}) ")
        if room <= 0:
            raise ValueError(f"a body limit of {limit} characters cannot hold a numbered part")
        needed = -(-len(message.text) // room)
        if needed <= count:
            break
        count = needed
    room = limit - len(f"({count}/{count}) ")
    chunks = [message.text[i : i + room] for i in range(0, len(message.text), room)]
    return [
        Activity(f"{message.id}#{k}/{len(chunks)}", message, f"({k}/{len(chunks)}) {chunk}")
        for k, chunk in enumerate(chunks, start=1)
    ]


def message_of(key: str) -> str:
    """The message id an :class:`Activity` key belongs to."""
    return key.split("#", 1)[0]


def missing(messages: Sequence[Message], held: Collection[str], limit: int) -> list[Activity]:
    """The activities of ``messages`` (oldest first) whose keys the CRM does not hold yet —
    what to write so that each message is there exactly once, even after a crash that left a
    split message half written."""
    ordered = sorted(messages, key=lambda m: (m.sent_at, m.id))
    return [a for m in ordered for a in activities(m, limit) if a.key not in held]


@dataclass(frozen=True, slots=True)
class Logged:
    """What :meth:`CRM.add_messages` wrote on one record."""

    #: Messages written (a message split into parts counts once).
    written: int
    #: How many of them were too long for one activity and were split into parts.
    split: int = 0


@dataclass(frozen=True, slots=True)
class Followed:
    """A person record whose :data:`FOLLOW` flag is set, in one CRM."""

    id: str
    #: The source's publicId, from the profile URL syncd wrote on the record.
    public_id: str


@dataclass(frozen=True, slots=True)
class Contact:
    """What may leave the machine for one person, after the privacy rules."""

    member_id: str
    fields: Mapping[str, str]
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """What happened to one contact in one CRM."""

    outcome: OutcomeKind
    id: str | None = None
    detail: str = ""
    candidates: tuple[str, ...] = ()
    #: Why a ``failed`` outcome failed: "auth" (credential missing or rejected),
    #: "rejected" (the CRM refused the record), "unavailable" (retries exhausted), "error".
    reason: str = ""
    #: With messages asked for: how many were written (None: not asked, or not written).
    messages: int | None = None
    #: Why the messages were not (all) written, when the contact itself was: one sentence.
    messages_error: str = ""


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """One instance's validated config table."""

    instance: str
    type: str
    base_url: str
    overwrite: OverwritePolicy = "empty-only"
    options: Mapping[str, object] = field(default_factory=dict)
    #: ``[match] strict``: never match by name, only by member id, profile URL or email.
    strict_match: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    """A CRM record that might be the person: what matching needs to know of it."""

    id: str
    #: The member id in syncd's identity property/field, if any.
    member_id: str | None
    #: The record as syncd's canonical fields (see :data:`FIELDS`), empty ones left out.
    fields: Mapping[str, str]
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """The verdict of :func:`match`: one record, several (ambiguous), or none."""

    record: Candidate | None = None
    step: MatchStep | None = None
    #: The CRM ids of every candidate when one step found more than one.
    ambiguous: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Presence:
    """Whether a person is in one CRM, for `syncd check` (nothing is written)."""

    found: bool
    id: str | None = None
    owner: str | None = None
    url: str | None = None
    step: MatchStep | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `syncd forget` did in one CRM: the person's record (and the activities syncd
    wrote on it) deleted, no such person, or several candidates (nothing deleted)."""

    outcome: Literal["erased", "absent", "ambiguous"]
    id: str | None = None
    #: Activities syncd wrote for the person (notes, tasks, communications) deleted with it.
    activities: int = 0
    #: What the vendor keeps after the delete, e.g. "purged by Pipedrive after 30 days";
    #: empty when the delete is permanent at once.
    retention: str = ""
    step: MatchStep | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Holding:
    """What one CRM holds about a person right now, for `syncd export` (a subject-access
    request): the fields syncd maps as the CRM holds them, the record's id and link, the
    activities syncd wrote (their dates), and when syncd last wrote the record."""

    found: bool
    id: str | None = None
    url: str | None = None
    #: syncd's canonical fields (see :data:`FIELDS`) as the CRM holds them, empty ones left out.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: When each activity syncd wrote on the record happened, oldest first.
    activities: tuple[datetime, ...] = ()
    #: The record's :data:`SYNCED_AT` value as the CRM holds it (ISO 8601), if any.
    synced_at: str | None = None
    step: MatchStep | None = None
    candidates: tuple[str, ...] = ()


class Source(Protocol):
    """Where people come from. Read-only by construction."""

    name: ClassVar[str]

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        ...

    async def fetch_person(self, public_id: str) -> Person:
        """The profile and shared contact info of one person."""
        ...

    async def fetch_messages(
        self, public_id: str, *, until: Collection[str] = frozenset(), limit: int = 10_000
    ) -> list[Message]:
        """The member's conversation with one person, newest first, every page until a
        message whose id is in ``until`` (what the CRMs hold already; it and older ones are
        left out) or ``limit`` messages. Only conversations with ``public_id`` are read."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class CRM(Protocol):
    """Where people go. Every write is an upsert on the source's member id."""

    name: ClassVar[str]
    #: The longest activity body the CRM takes, in characters (longer messages are split).
    body_limit: ClassVar[int]

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        ...

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; one outcome per contact, in order.

        A record the CRM refuses is a ``failed`` outcome; a problem with the whole call
        (credentials, retries exhausted) raises.
        """
        ...

    async def find(self, contact: Contact) -> Presence:
        """Whether ``contact`` is already in the CRM, by :func:`match`; writes nothing."""
        ...

    async def erase(self, contact: Contact) -> Erasure:
        """Delete the person :func:`match` finds for ``contact`` (``absent`` if none,
        ``ambiguous`` and nothing deleted if several) and the activities syncd wrote for
        them, by the vendor's strongest delete. Companies/organisations/accounts stay.

        Raises like :meth:`upsert_contacts`; a delete whose answer was lost raises
        WriteUncertain, and running ``erase`` again then finds the person ``absent``.
        """
        ...

    async def export(self, contact: Contact) -> Holding:
        """What the CRM holds about the person :func:`match` finds for ``contact``;
        writes nothing."""
        ...

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The :data:`MESSAGE_ID` keys of the activities syncd wrote on record ``record_id``,
        read from the CRM (a human's own notes, tasks or communications are never counted)."""
        ...

    async def add_messages(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write each of ``activities`` (oldest first; what :func:`missing` gives) on record
        ``record_id`` as the CRM's native activity — direction (sent/received), the original
        time, the body, and :data:`MESSAGE_ID` = its key — in the CRM's batches.

        Raises ActivitiesRefused when the credential may not write activities (a missing
        permission or scope), WriteUncertain when a batch's answer was lost (the caller lists
        :meth:`message_ids` again and writes the rest), like upsert_contacts otherwise.
        """
        ...

    async def set_follow(self, contact: Contact, follow: bool) -> Presence:
        """Set (or clear) :data:`FOLLOW` on the record :func:`match` finds for ``contact``;
        ``found`` is False (with ``candidates`` when ambiguous) when there is no one record."""
        ...

    async def followed(self) -> list[Followed]:
        """Every record whose :data:`FOLLOW` is set (every page)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def profile_key(url: str | None) -> str | None:
    """A profile URL reduced to what identifies it: ``in/<publicid>`` in lower case.

    ``https://www.linkedin.com/in/Ada-Q/?utm=x`` and ``linkedin.com/in/ada-q`` are the
    same person; anything without an ``/in/<id>`` path is None.
    """
    if not url:
        return None
    path = url.strip().split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "in":
            return f"in/{parts[i + 1].lower()}"
    return None


def _fold(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


def name_key(fields: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(first, last, company) folded for comparison; None unless all three are known."""
    key = (
        _fold(fields.get("first_name")),
        _fold(fields.get("last_name")),
        _fold(fields.get("company")),
    )
    return key if all(key) else None


def _step_key(step: MatchStep, member_id: str | None, fields: Mapping[str, str]) -> object:
    if step == "identity":
        return member_id or None
    if step == "profile_url":
        return profile_key(fields.get("linkedin_url"))
    if step == "email":
        return _fold(fields.get("email")) or None
    return name_key(fields)


def match_keys(contact: Contact) -> set[tuple[MatchStep, object]]:
    """Every key :func:`match` could find ``contact`` by, tagged with its step: two
    contacts sharing one could match the same CRM record."""
    keys = ((step, _step_key(step, contact.member_id, contact.fields)) for step in MATCH_STEPS)
    return {(step, key) for step, key in keys if key is not None}


def match(contact: Contact, candidates: Iterable[Candidate], *, strict: bool = False) -> Match:
    """Find ``contact`` among ``candidates``, step by step (see :data:`MATCH_STEPS`).

    The first step with any hit decides: one hit is the match, several are ``ambiguous``
    (never guessed). A record that carries another member's id is never this person, so it
    only counts for the identity step — unless ``contact`` has no member id (`forget` of a
    profile the source no longer shows, found by the profile URL syncd wrote). Connectors
    fetch the candidates however their API allows (one query with ORs, batch reads,
    searches) and let this function judge them.
    """
    pool = list({c.id: c for c in candidates}.values())
    for step in MATCH_STEPS:
        if step == "name" and strict:
            break
        wanted = _step_key(step, contact.member_id, contact.fields)
        if wanted is None:
            continue
        hits = [
            c
            for c in pool
            if (
                step == "identity"
                or not c.member_id
                or not contact.member_id  # unknown (a profile the source no longer shows)
                or c.member_id == contact.member_id
            )
            and _step_key(step, c.member_id, c.fields) == wanted
        ]
        if len(hits) == 1:
            return Match(record=hits[0], step=step)
        if hits:
            return Match(step=step, ambiguous=tuple(sorted((c.id for c in hits), key=_id_order)))
    return Match()


def _id_order(record_id: str) -> tuple[int, str]:
    return (len(record_id), record_id)


def fields_to_write(
    existing: Mapping[str, str | None],
    desired: Mapping[str, str],
    policy: OverwritePolicy,
) -> dict[str, str]:
    """The fields of ``desired`` that must be sent, given what the CRM already holds.

    A value equal to the CRM's is never sent; an empty CRM value is always filled; a
    non-empty one that differs is replaced only when the policy lets syncd own it, so a
    human's edit survives the default.
    """
    out: dict[str, str] = {}
    for key, value in desired.items():
        current = (existing.get(key) or "").strip()
        if current == value:
            continue
        if not current or policy == "always" or (isinstance(policy, frozenset) and key in policy):
            out[key] = value
    return out
