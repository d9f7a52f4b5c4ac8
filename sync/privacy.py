"""The user's line between pro and perso, applied before anything leaves the machine (P3)."""

from __future__ import annotations

from connectors.base import Contact, Message, Person
from sync.config import PrivacyConfig
from sync.errors import PrivacyRefusal


def apply(person: Person, rules: PrivacyConfig, messages: tuple[Message, ...] = ()) -> Contact:
    """What may leave for ``person``: the allowed fields only; PrivacyRefusal if a rule says no.

    Refusal messages name the rule, never the value that matched it.
    """
    email = (person.email or "").strip().lower()
    domain = email.rpartition("@")[2]
    if domain and any(domain == d or domain.endswith("." + d) for d in rules.blocked_email_domains):
        raise PrivacyRefusal(
            "blocked_email_domains",
            "refused: this person's email domain is in [privacy] blocked_email_domains",
        )
    company = (person.company or "").strip().lower()
    if company and company in rules.blocked_companies:
        raise PrivacyRefusal(
            "blocked_companies",
            "refused: this person's company is in [privacy] blocked_companies",
        )
    allowed = set(rules.fields)
    fields = {k: v for k, v in person.fields().items() if k in allowed}
    return Contact(member_id=person.member_id, fields=fields, messages=messages)
