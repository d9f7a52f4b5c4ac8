"""Whatever a profile holds (any unicode, huge fields, control characters, NULs, lone
surrogates, bidi marks), the privacy rules and every CRM's mapping never crash with
anything but our own errors, and none of it reaches the log (P1, P3)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import FIELDS, Contact, Person
from connectors.hubspot import mapping as hubspot
from connectors.pipedrive import mapping as pipedrive
from connectors.salesforce import mapping as salesforce
from sync import log
from sync.config import PrivacyConfig
from sync.errors import SyncdError
from sync.privacy import apply

#: Characters that break naive code: NUL and other controls, bidi overrides and marks,
#: line and paragraph separators, a BOM, combining marks, and lone surrogates.
NASTY = (
    "\0", "\x01", "\x07", "\x1b", "\x7f", "\t", "\n", "\r", "\x85", "\u2028", "\u2029",
    "\u200b", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff",
    "\u0301", "\ufffd", "\ud800", "\udbff", "\udc00", "\udfff", "@", "%s", "{}", "\\",
    '"', "<script>", "/in/", "İ", "ß", "ﬃ", "Σ",
)  # fmt: skip

piece = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=("Cs", "Cc", "Cf", "Zl", "Zp")), max_size=8),
    st.sampled_from(NASTY),
)
ordinary = st.lists(piece, max_size=6).map("".join)
huge = st.builds(
    lambda part, times: part * times, st.text(min_size=1, max_size=4), st.integers(1_000, 8_000)
)
value = st.one_of(ordinary, ordinary, ordinary, huge)
optional = st.one_of(st.none(), value)

people = st.builds(
    Person,
    member_id=value,
    public_id=value,
    first_name=value,
    last_name=value,
    profile_url=value,
    headline=optional,
    location=optional,
    email=st.one_of(optional, st.builds("{}@{}".format, value, value)),
    phone=optional,
    company=optional,
    company_domain=optional,
    title=optional,
)
rules = st.builds(
    PrivacyConfig,
    blocked_email_domains=st.lists(value, max_size=2).map(tuple),
    blocked_companies=st.lists(value.map(str.lower), max_size=2).map(tuple),
    fields=st.one_of(st.just(FIELDS), st.lists(st.sampled_from(FIELDS), unique=True).map(tuple)),
)
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # each example is pure computation: modest, so the file runs in seconds

logger = log.get_logger("syncd.relay")


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real logging set-up, to a JSON file, for the whole module."""
    path = tmp_path_factory.mktemp("log") / "syncd.log"
    log.configure("debug", path)
    yield path
    log.reset()


def end_of(path: Path) -> int:
    """Where the log file ends now, every handler flushed."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.stat().st_size if path.exists() else 0


def new_strings(path: Path, offset: int) -> list[str]:
    """Every string in the lines logged past ``offset``, JSON escapes decoded."""
    end_of(path)

    def walk(item: object) -> Iterator[str]:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, inner in item.items():
                yield key
                yield from walk(inner)
        elif isinstance(item, list):
            for inner in item:
                yield from walk(inner)

    with path.open("rb") as file:
        file.seek(offset)
        data = file.read()
    lines = data.decode("utf-8").splitlines()
    return [s for line in lines for s in walk(json.loads(line))]


def fail_with(text: str) -> None:
    raise ValueError(text)


def distinctive(person: Person) -> list[str]:
    """The person's values long enough that finding one in the log is a leak, not chance."""
    values = [v for v in (getattr(person, f) for f in Person.__slots__) if isinstance(v, str)]
    return [v for v in values if len(v.strip()) >= 8]


def map_everywhere(contact: Contact) -> None:
    """Every CRM's pure mapping functions, the way their clients call them."""
    fields = dict(contact.fields)
    hubspot.to_fields(hubspot.to_properties(fields))
    hubspot.canonical(fields)
    field_map = pipedrive.FieldMap(
        "abc123", "def456", job_title=True, postal_address=True, synced_at="f9"
    )
    want = pipedrive.desired(fields, field_map)
    body = pipedrive.person_body(want, field_map, None, member_id=contact.member_id)
    first, last = pipedrive.split_name(str(body.get("name", "")))
    existing = pipedrive.person_from(
        {
            "id": 1,
            "name": pipedrive.full_name(first, last),
            "first_name": first,
            "last_name": last,
            "emails": body.get("emails", []),
            "phones": body.get("phones", []),
            "custom_fields": body.get("custom_fields", {}),
            "add_time": "2026-01-14T10:20:00Z",
            "update_time": "2026-01-14T10:20:00Z",
        }
    )
    if existing is not None:
        pipedrive.person_fields(existing, field_map, fields.get("company"))
        pipedrive.member_of(existing, field_map)
        again = pipedrive.person_body(want, field_map, existing, member_id=None)
        pipedrive.stamped(again, field_map, datetime.now(UTC))
    for obj in ("Contact", "Lead"):
        sobject = salesforce.to_sobject(obj, salesforce.canonical(obj, fields))
        salesforce.record_fields(obj, sobject)
        salesforce.has_name(fields)


class TestFuzzedProfiles:
    """Generated profiles through the privacy rules, every mapping, and the log."""

    @FUZZ
    @given(person=people, privacy=rules)
    def test_mapping_raises_only_our_errors(self, person: Person, privacy: PrivacyConfig) -> None:
        """apply() and every mapping either succeed or raise a SyncdError subclass."""
        try:
            contact = apply(person, privacy)
            map_everywhere(contact)
        except SyncdError:
            pass

    @FUZZ
    @given(person=people, privacy=rules)
    def test_values_never_reach_the_log(
        self, sink: Path, person: Person, privacy: PrivacyConfig
    ) -> None:
        """Logged every way the code could slip (as values, as an event, in an exception,
        through a foreign logger), no generated value appears in the log file."""
        start = end_of(sink)
        try:
            contact = apply(person, privacy)
            map_everywhere(contact)
            outcome = "mapped"
        except SyncdError as error:
            logger.warning("privacy.refused", reason=type(error).__name__, detail=str(error))
            outcome = "refused"
        logger.info(
            "relay.mapped", crm="hubspot", outcome=outcome, person=person, fields=person.fields()
        )
        logger.info(person.first_name, count=1)
        try:
            fail_with(f"{person.first_name} {person.email} {person.profile_url}")
        except ValueError:
            logger.exception("relay.failed", crm="pipedrive")
        logging.getLogger("asyncio").error("task %s failed: %r", person.public_id, person)
        after = new_strings(sink, start)
        assert after, "nothing was logged"
        for secret in distinctive(person):
            assert not any(secret in line for line in after), "a generated value reached the log"
