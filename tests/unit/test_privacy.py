"""P3: privacy rules apply before anything leaves the machine."""

from __future__ import annotations

import pytest

from connectors.base import FIELDS, Person
from sync.config import PrivacyConfig
from sync.errors import PrivacyRefusal
from sync.privacy import apply

ADA = Person(
    member_id="urn:li:member:1",
    public_id="ada",
    first_name="Ada",
    last_name="Lovelace",
    profile_url="https://www.linkedin.example/in/ada",
    email="ada@Mail.Engines.example",
    phone="+44 1",
    company="Analytical Engines",
    title="Analyst",
    location="London",
)


def rules(**over: tuple[str, ...]) -> PrivacyConfig:
    values: dict[str, tuple[str, ...]] = {
        "blocked_email_domains": (),
        "blocked_companies": (),
        "fields": FIELDS,
    }
    values.update(over)
    return PrivacyConfig(**values)


class TestRules:
    """Each rule refuses or filters, and says which rule without repeating the value."""

    @pytest.mark.parametrize(
        "domains",
        [
            pytest.param(("engines.example",), id="parent-domain"),
            pytest.param(("mail.engines.example",), id="exact-domain"),
        ],
    )
    def test_blocked_email_domain_refuses(self, domains: tuple[str, ...]) -> None:
        """An email in a blocked domain (or a subdomain of one) refuses the person."""
        with pytest.raises(PrivacyRefusal) as caught:
            apply(ADA, rules(blocked_email_domains=domains))
        assert caught.value.rule == "blocked_email_domains"
        assert "engines" not in str(caught.value).lower()

    def test_lookalike_domain_is_not_blocked(self) -> None:
        """A domain that merely ends with the same letters is not blocked."""
        contact = apply(ADA, rules(blocked_email_domains=("ngines.example",)))
        assert contact.fields["email"] == "ada@Mail.Engines.example"

    def test_blocked_company_refuses(self) -> None:
        """The current company on the blocked list refuses the person, case-insensitively."""
        with pytest.raises(PrivacyRefusal) as caught:
            apply(ADA, rules(blocked_companies=("analytical engines",)))
        assert caught.value.rule == "blocked_companies"
        assert "Analytical" not in str(caught.value)

    def test_field_allow_list_filters(self) -> None:
        """Only allowed fields leave; the identity always does."""
        contact = apply(ADA, rules(fields=("first_name", "last_name")))
        assert dict(contact.fields) == {"first_name": "Ada", "last_name": "Lovelace"}
        assert contact.member_id == "urn:li:member:1"
