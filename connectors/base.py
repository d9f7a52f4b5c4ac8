"""What every connector shares: the Source and CRM Protocols and the values they exchange.

Standard library only: the config loader imports the connector registry, and the thin
CLI commands must not pay for httpx.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

OutcomeKind = Literal["created", "updated", "unchanged", "ambiguous", "failed", "refused"]

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


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """One instance's validated config table."""

    instance: str
    type: str
    base_url: str
    overwrite: OverwritePolicy = "empty-only"
    options: Mapping[str, object] = field(default_factory=dict)


class Source(Protocol):
    """Where people come from. Read-only by construction."""

    name: ClassVar[str]

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        ...

    async def fetch_person(self, public_id: str) -> Person:
        """The profile and shared contact info of one person."""
        ...

    async def fetch_messages(self, public_id: str, *, limit: int = 50) -> list[Message]:
        """The conversation with one person, newest first."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class CRM(Protocol):
    """Where people go. Every write is an upsert on the source's member id."""

    name: ClassVar[str]

    async def check_auth(self) -> None:
        """Raise AuthError unless the credential is accepted."""
        ...

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> list[TargetOutcome]:
        """Create or update each contact; one outcome per contact, in order.

        A record the CRM refuses is a ``failed`` outcome; a problem with the whole call
        (credentials, retries exhausted) raises.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


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
