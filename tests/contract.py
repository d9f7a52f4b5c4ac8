"""The behaviour every CRM connector shares, stated once; each connector's test class
subclasses :class:`CRMContract` and fills in the hooks at the bottom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest

from connectors.base import (
    CRM,
    ConnectorSettings,
    Contact,
    Followed,
    Logged,
    Message,
    OverwritePolicy,
    missing,
)
from sync.errors import AuthError
from sync.retry import RetryPolicy
from tests.doubles import FakeClock

TOKEN = "sandbox-token-contract"

ADA = Contact(
    member_id="urn:li:member:9001",
    fields={
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@analytical.example",
        "company": "Analytical Engines",
        "title": "Analyst",
        "linkedin_url": "https://www.linkedin.com/in/ada-lovelace",
    },
)


#: A conversation with Ada, oldest first: the member and Ada taking turns.
CONVERSATION = [
    Message(
        f"m-{n}",
        "c-1",
        "me" if n % 2 else "them",
        datetime(2026, 3, 1, 9, n, tzinfo=UTC),
        text,
    )
    for n, text in enumerate(
        [
            "Hello Ada — great talk at the engine fair!",
            "Thank you! Shall we continue next week?",
            "Yes: Tuesday 10:00 works. 📅",
            "مرحبا — I'll bring the notes.",
            "Perfect, see you then.",
        ],
        start=1,
    )
]


def with_fields(contact: Contact, **changes: str) -> Contact:
    """``contact`` with some fields replaced or added."""
    return Contact(contact.member_id, {**contact.fields, **changes}, contact.messages)


class CRMContract:
    """Upserts are idempotent, keep the CRM's id, respect human edits, and fail usefully."""

    type_name: ClassVar[str]

    # -- hooks each connector's test class provides --------------------------------------

    def make_sandbox(self) -> Any:
        """A fresh sandbox that accepts :data:`TOKEN`-derived credentials."""
        raise NotImplementedError

    def credential(self) -> str:
        """The credential the sandbox accepts, as the keyring would hold it."""
        return TOKEN

    def record_count(self, sandbox: Any) -> int:
        """How many person records the sandbox holds."""
        raise NotImplementedError

    def edit_in_crm(self, sandbox: Any, crm_id: str, field: str, value: str) -> None:
        """Change one canonical field of a record as a human would, in the CRM's UI."""
        raise NotImplementedError

    def crm_class(self) -> Any:
        """The connector's CRM client class."""
        raise NotImplementedError

    def seed_in_crm(self, sandbox: Any, fields: dict[str, str]) -> str:
        """Create a record as a human would in the CRM's UI (no syncd identity); its id.

        ``fields`` are canonical (see ``connectors.base.FIELDS``); ``company`` is the
        record's company as the CRM shows it on a person (a linked organisation/account
        where the CRM has them)."""
        raise NotImplementedError

    def company_of(self, sandbox: Any, crm_id: str) -> str | None:
        """The name of the company/organisation/account the record is linked to."""
        raise NotImplementedError

    def company_count(self, sandbox: Any) -> int:
        """How many company/organisation/account records the sandbox holds."""
        raise NotImplementedError

    def oauth_credential(self, *, valid: bool = True) -> str:
        """An OAuth credential JSON the sandbox accepts (or, ``valid=False``, refuses)."""
        raise NotImplementedError

    def synced_at_of(self, sandbox: Any, crm_id: str) -> str | None:
        """The record's ``syncd_synced_at`` value as the sandbox stores it."""
        raise NotImplementedError

    #: What `forget` says the vendor keeps after its delete ("" when it is permanent at once).
    retention: ClassVar[str] = ""

    #: The longest activity body the vendor takes, in characters (the connector's limit).
    body_limit: ClassVar[int]

    def logged(self, sandbox: Any, crm_id: str) -> list[dict[str, Any]]:
        """The activities syncd wrote on the record, as the sandbox stores them, oldest first:
        ``{"key": <syncd_message_id>, "body": str, "direction": "sent"|"received",
        "at": aware datetime}``."""
        raise NotImplementedError

    def seed_human_activity(self, sandbox: Any, crm_id: str) -> None:
        """Add an activity on the record as a person would in the CRM's UI (no syncd key)."""
        raise NotImplementedError

    # -- shared fixtures -----------------------------------------------------------------

    @pytest.fixture
    def sandbox(self) -> Any:
        return self.make_sandbox()

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    def make_crm(
        self,
        sandbox: Any,
        clock: FakeClock,
        *,
        overwrite: OverwritePolicy = "empty-only",
        credential: str | None = None,
        options: dict[str, object] | None = None,
        strict: bool = False,
    ) -> CRM:
        """A client of the connector, talking to ``sandbox`` in-process over ASGI."""
        settings = ConnectorSettings(
            instance=self.type_name,
            type=self.type_name,
            base_url="http://sandbox.test",
            overwrite=overwrite,
            options={**self.options(), **(options or {})},
            strict_match=strict,
        )
        client: CRM = self.crm_class()(
            settings,
            credential if credential is not None else self.credential(),
            transport=httpx.ASGITransport(app=sandbox.app),
            retry=RetryPolicy(attempts=4, sleep=clock.sleep),
        )
        return client

    # -- the contract --------------------------------------------------------------------

    async def test_upsert_twice_gives_one_record(self, sandbox: Any, clock: FakeClock) -> None:
        """Relaying the same person twice leaves exactly one record."""
        crm = self.make_crm(sandbox, clock)
        first = await crm.upsert_contacts([ADA])
        second = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert first[0].outcome == "created"
        assert second[0].outcome == "unchanged"
        assert second[0].id == first[0].id
        assert self.record_count(sandbox) == 1

    async def test_update_keeps_the_crm_id(self, sandbox: Any, clock: FakeClock) -> None:
        """A new value for an empty field is an update of the same record."""
        crm = self.make_crm(sandbox, clock)
        (first,) = await crm.upsert_contacts([ADA])
        (second,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0000")])
        await crm.aclose()
        assert (second.outcome, second.id) == ("updated", first.id)
        assert self.record_count(sandbox) == 1

    async def test_empty_only_keeps_a_human_edit(self, sandbox: Any, clock: FakeClock) -> None:
        """By default a value someone edited in the CRM is not replaced."""
        crm = self.make_crm(sandbox, clock)
        (first,) = await crm.upsert_contacts([ADA])
        assert first.id is not None
        self.edit_in_crm(sandbox, first.id, "title", "Countess")
        (second,) = await crm.upsert_contacts([with_fields(ADA, title="Mathematician")])
        await crm.aclose()
        assert second.outcome == "unchanged"

    async def test_always_replaces_a_human_edit(self, sandbox: Any, clock: FakeClock) -> None:
        """With overwrite = "always" syncd's value wins."""
        crm = self.make_crm(sandbox, clock, overwrite="always")
        (first,) = await crm.upsert_contacts([ADA])
        assert first.id is not None
        self.edit_in_crm(sandbox, first.id, "title", "Countess")
        (second,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (second.outcome, second.id) == ("updated", first.id)

    async def test_429_waits_for_retry_after(self, sandbox: Any, clock: FakeClock) -> None:
        """A throttled request is retried after at least the Retry-After the CRM sent."""
        crm = self.make_crm(sandbox, clock)
        sandbox.core.fail_next(429, retry_after=7)
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert outcome.outcome == "created"
        assert clock.waits
        assert max(clock.waits) >= 7
        assert self.record_count(sandbox) == 1

    async def test_rejected_token_is_auth_error(self, sandbox: Any, clock: FakeClock) -> None:
        """A credential the CRM refuses raises AuthError naming the instance."""
        crm = self.make_crm(sandbox, clock, credential=self.rejected_credential())
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert caught.value.connector == self.type_name
        assert "syncd auth set" in str(caught.value)
        assert self.record_count(sandbox) == 0

    async def test_check_auth_accepts_and_refuses(self, sandbox: Any, clock: FakeClock) -> None:
        """check_auth passes with the sandbox's credential and raises AuthError without it."""
        good = self.make_crm(sandbox, clock)
        await good.check_auth()
        await good.aclose()
        bad = self.make_crm(sandbox, clock, credential=self.rejected_credential())
        with pytest.raises(AuthError):
            await bad.check_auth()
        await bad.aclose()

    async def test_rejected_record_is_reported_not_retried(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """A record the CRM refuses with a 400 is a failed outcome, after one attempt."""
        crm = self.make_crm(sandbox, clock)
        sandbox.core.fail_next(400, count=50, path_prefix=self.write_path_prefix())
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert outcome.outcome == "failed"
        assert "400" in outcome.detail
        assert clock.waits == []
        assert "Lovelace" not in outcome.detail

    # -- matching: identity, profile URL, email, name + company; never a guess -------------

    async def test_matches_a_human_record_by_profile_url(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """A record someone made with the person's profile URL is the person."""
        seeded = self.seed_in_crm(
            sandbox,
            {
                "first_name": "Ada",
                "last_name": "L.",
                "linkedin_url": "https://linkedin.com/in/ADA-lovelace/",
            },
        )
        crm = self.make_crm(sandbox, clock)
        (outcome,) = await crm.upsert_contacts([ADA])
        (again,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert (outcome.outcome, outcome.id) == ("updated", seeded)
        assert (again.outcome, again.id) == ("unchanged", seeded)
        assert self.record_count(sandbox) == 1

    async def test_matches_a_human_record_by_email(self, sandbox: Any, clock: FakeClock) -> None:
        """A record with the person's email (any case) is the person."""
        seeded = self.seed_in_crm(
            sandbox, {"first_name": "Ada", "last_name": "King", "email": "ADA@analytical.example"}
        )
        crm = self.make_crm(sandbox, clock)
        (outcome,) = await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert outcome.id == seeded
        assert outcome.outcome in ("updated", "unchanged")
        assert self.record_count(sandbox) == 1

    async def test_matches_by_name_within_the_company_unless_strict(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """Same first and last name at the same company is the person; strict mode creates."""
        seeded = self.seed_in_crm(
            sandbox,
            {"first_name": "ada", "last_name": "LOVELACE", "company": "Analytical Engines"},
        )
        loose = self.make_crm(sandbox, clock)
        (outcome,) = await loose.upsert_contacts([ADA])
        await loose.aclose()
        assert outcome.id == seeded
        assert self.record_count(sandbox) == 1
        other = Contact("urn:li:member:9002", {**ADA.fields, "email": "ada2@elsewhere.example"})
        other = with_fields(other, linkedin_url="https://www.linkedin.com/in/ada-two")
        self.seed_in_crm(
            sandbox, {"first_name": "Ada", "last_name": "Lovelace", "company": "Difference Ltd"}
        )
        strict = self.make_crm(sandbox, clock, strict=True)
        (created,) = await strict.upsert_contacts([with_fields(other, company="Difference Ltd")])
        await strict.aclose()
        assert created.outcome == "created"
        assert self.record_count(sandbox) == 3

    async def test_several_candidates_are_ambiguous_and_nothing_is_written(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """Two records that both fit are reported with their ids; neither is touched."""
        twin = {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines"}
        first = self.seed_in_crm(sandbox, dict(twin))
        second = self.seed_in_crm(sandbox, dict(twin))
        crm = self.make_crm(sandbox, clock)
        (outcome,) = await crm.upsert_contacts([ADA])
        presence = await crm.find(ADA)
        await crm.aclose()
        assert outcome.outcome == "ambiguous"
        assert set(outcome.candidates) == {first, second}
        assert outcome.id is None
        assert self.record_count(sandbox) == 2
        assert not presence.found
        assert set(presence.candidates) == {first, second}

    async def test_identity_wins_over_an_email_match(self, sandbox: Any, clock: FakeClock) -> None:
        """Once syncd has written a person, a new email updates that record, not another."""
        crm = self.make_crm(sandbox, clock)
        (first,) = await crm.upsert_contacts([ADA])
        self.seed_in_crm(
            sandbox,
            {"first_name": "Someone", "last_name": "Else", "email": "new@analytical.example"},
        )
        (second,) = await crm.upsert_contacts([with_fields(ADA, email="new@analytical.example")])
        await crm.aclose()
        assert second.id == first.id
        assert second.outcome in ("updated", "unchanged")
        assert self.record_count(sandbox) == 2

    # -- companies -----------------------------------------------------------------------

    async def test_company_is_created_once_and_linked(self, sandbox: Any, clock: FakeClock) -> None:
        """The person's company is found or created, and linked; colleagues share it."""
        colleague = Contact(
            "urn:li:member:9003",
            {"first_name": "Charles", "last_name": "Babbage", "company": "Analytical Engines"},
        )
        crm = self.make_crm(sandbox, clock)
        (ada,) = await crm.upsert_contacts([ADA])
        (charles,) = await crm.upsert_contacts([colleague])
        await crm.aclose()
        assert ada.id is not None
        assert charles.id is not None
        assert self.company_of(sandbox, ada.id) == "Analytical Engines"
        assert self.company_of(sandbox, charles.id) == "Analytical Engines"
        assert self.company_count(sandbox) == 1

    # -- check: presence without writing --------------------------------------------------

    async def test_find_answers_without_writing(self, sandbox: Any, clock: FakeClock) -> None:
        """find() says absent before the first upsert and gives id and link after."""
        crm = self.make_crm(sandbox, clock)
        before = await crm.find(ADA)
        assert not before.found
        assert self.record_count(sandbox) == 0
        (created,) = await crm.upsert_contacts([ADA])
        after = await crm.find(ADA)
        await crm.aclose()
        assert after.found
        assert after.id == created.id
        assert after.step == "identity"
        assert after.url
        assert str(created.id) in after.url

    # -- forget and export (P6) ----------------------------------------------------------

    async def test_every_write_sets_synced_at(self, sandbox: Any, clock: FakeClock) -> None:
        """A create and an update both stamp ``syncd_synced_at`` with the time of the write."""
        crm = self.make_crm(sandbox, clock)
        before = datetime.now(UTC) - timedelta(seconds=5)
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        first = self.synced_at_of(sandbox, created.id)
        (updated,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0002")])
        await crm.aclose()
        assert updated.outcome == "updated"
        second = self.synced_at_of(sandbox, created.id)
        assert first is not None
        assert second is not None
        assert _instant(first) >= before
        assert _instant(second) >= _instant(first)

    async def test_erase_deletes_the_person_and_keeps_the_company(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """forget erases the record found by identity; the company stays; again is absent."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        erased = await crm.erase(ADA)
        again = await crm.erase(ADA)
        after = await crm.find(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.step) == ("erased", created.id, "identity")
        assert erased.retention == self.retention
        assert again.outcome == "absent"
        assert not after.found
        assert self.record_count(sandbox) == 0
        assert self.company_count(sandbox) == 1

    async def test_erase_finds_a_human_record_by_email(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """A record syncd never wrote is still the person's, found as add-contact would."""
        crm = self.make_crm(sandbox, clock)
        crm_id = self.seed_in_crm(
            sandbox, {"first_name": "A.", "last_name": "L.", "email": ADA.fields["email"]}
        )
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.step) == ("erased", crm_id, "email")
        assert self.record_count(sandbox) == 0

    async def test_erase_without_a_member_id_finds_the_profile_url(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """A profile the source no longer shows (no member id) is found by the profile URL
        syncd wrote, and erased."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        gone = Contact(member_id="", fields={"linkedin_url": ADA.fields["linkedin_url"] + "/"})
        erased = await crm.erase(gone)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.step) == ("erased", created.id, "profile_url")
        assert self.record_count(sandbox) == 0

    async def test_erase_of_someone_absent_deletes_nothing(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """Nobody to erase: ``absent``, and the other records are untouched."""
        crm = self.make_crm(sandbox, clock)
        self.seed_in_crm(sandbox, {"first_name": "Grace", "last_name": "Hopper"})
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert erased.outcome == "absent"
        assert self.record_count(sandbox) == 1

    async def test_erase_never_guesses_between_candidates(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """Two records fit by name and company: ``ambiguous``, both ids named, nothing
        deleted (twins by name, as the upsert test has: HubSpot refuses a second contact
        with the same email)."""
        crm = self.make_crm(sandbox, clock)
        twin = {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines"}
        one = self.seed_in_crm(sandbox, dict(twin))
        two = self.seed_in_crm(sandbox, dict(twin))
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.step) == ("ambiguous", "name")
        assert set(erased.candidates) == {one, two}
        assert self.record_count(sandbox) == 2

    async def test_export_shows_what_the_crm_holds(self, sandbox: Any, clock: FakeClock) -> None:
        """export gives the record's id, link, mapped fields (a human's edit included) and
        when syncd last wrote it; it writes nothing."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        self.edit_in_crm(sandbox, created.id, "title", "Countess")
        held = await crm.export(ADA)
        await crm.aclose()
        assert held.found
        assert held.id == created.id
        assert held.url
        assert created.id in held.url
        assert held.fields["title"] == "Countess"
        for key in ("first_name", "last_name", "email"):
            assert held.fields[key] == ADA.fields[key]
        assert held.synced_at == self.synced_at_of(sandbox, created.id)
        assert self.record_count(sandbox) == 1

    async def test_export_of_someone_absent(self, sandbox: Any, clock: FakeClock) -> None:
        """Nobody found: ``found`` is false and nothing else is said."""
        crm = self.make_crm(sandbox, clock)
        held = await crm.export(ADA)
        await crm.aclose()
        assert not held.found
        assert held.id is None
        assert dict(held.fields) == {}

    # -- messages as activities, and the follow flag (issue 12) --------------------------

    async def _write_missing(self, crm: CRM, record: str, messages: list[Message]) -> Logged:
        held = await crm.message_ids(record)
        return await crm.add_messages(record, missing(messages, held, self.body_limit))

    def test_the_client_declares_its_body_limit(self) -> None:
        """The relay splits messages by the client class's own ``body_limit``."""
        assert self.crm_class().body_limit == self.body_limit

    async def test_messages_are_written_once(self, sandbox: Any, clock: FakeClock) -> None:
        """Each message becomes one activity with its direction, time and text; writing the
        same conversation again writes nothing, decided by what the CRM holds."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        self.seed_human_activity(sandbox, created.id)
        first = await self._write_missing(crm, created.id, CONVERSATION[:3])
        again = await self._write_missing(crm, created.id, CONVERSATION[:3])
        held = await crm.message_ids(created.id)
        await crm.aclose()
        assert (first.written, first.split, again.written) == (3, 0, 0)
        assert held == {m.id for m in CONVERSATION[:3]}
        logged = self.logged(sandbox, created.id)
        assert [(a["key"], a["body"], a["direction"]) for a in logged] == [
            (m.id, m.text, "sent" if m.sender == "me" else "received") for m in CONVERSATION[:3]
        ]
        assert [a["at"] for a in logged] == [m.sent_at for m in CONVERSATION[:3]]

    async def test_only_new_messages_are_written(self, sandbox: Any, clock: FakeClock) -> None:
        """Three new messages after a first run: exactly three more activities."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        await self._write_missing(crm, created.id, CONVERSATION[:2])
        later = await self._write_missing(crm, created.id, CONVERSATION)
        await crm.aclose()
        assert later.written == len(CONVERSATION) - 2
        assert [a["key"] for a in self.logged(sandbox, created.id)] == [m.id for m in CONVERSATION]

    async def test_a_long_message_is_split_in_order(self, sandbox: Any, clock: FakeClock) -> None:
        """A body past the vendor's limit goes in numbered parts, in order, that give the
        text back exactly (emoji and all); written counts it once."""
        text = ("Grüße 👋🏽 — " * (self.body_limit // 5))[: self.body_limit * 2 + 17]
        long = Message("m-long", "c-1", "them", CONVERSATION[-1].sent_at, text)
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        logged = await self._write_missing(crm, created.id, [long])
        await crm.aclose()
        assert (logged.written, logged.split) == (1, 1)
        parts = self.logged(sandbox, created.id)
        assert [p["key"] for p in parts] == ["m-long#1/3", "m-long#2/3", "m-long#3/3"]
        assert all(len(p["body"]) <= self.body_limit for p in parts)
        assert "".join(p["body"].split(") ", 1)[1] for p in parts) == text

    async def test_follow_flag_is_set_listed_and_cleared(
        self, sandbox: Any, clock: FakeClock
    ) -> None:
        """follow marks the record, followed() lists it with its publicId, unfollow clears
        it; someone not in the CRM cannot be followed."""
        crm = self.make_crm(sandbox, clock)
        (created,) = await crm.upsert_contacts([ADA])
        before = await crm.followed()
        marked = await crm.set_follow(ADA, True)
        listed = await crm.followed()
        cleared = await crm.set_follow(ADA, False)
        after = await crm.followed()
        nobody = await crm.set_follow(with_fields(ADA, email="x@y.example"), True)
        stranger = Contact("urn:li:member:4242", {"first_name": "No", "last_name": "One"})
        absent = await crm.set_follow(stranger, True)
        await crm.aclose()
        assert before == []
        assert (marked.found, marked.id) == (True, created.id)
        assert listed == [Followed(str(created.id), "ada-lovelace")]
        assert cleared.found
        assert after == []
        assert nobody.found  # found by identity whatever the email says
        assert not absent.found

    # -- tokens: refresh on 401, a refused refresh is AuthError ----------------------------

    async def test_expired_access_token_is_refreshed(self, sandbox: Any, clock: FakeClock) -> None:
        """With an OAuth credential, a 401 refreshes the access token once and goes on."""
        crm = self.make_crm(sandbox, clock, credential=self.oauth_credential())
        (first,) = await crm.upsert_contacts([ADA])
        sandbox.core.expire_tokens()
        (second,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0001")])
        await crm.aclose()
        assert (second.outcome, second.id) == ("updated", first.id)

    async def test_refused_refresh_is_auth_error(self, sandbox: Any, clock: FakeClock) -> None:
        """An OAuth credential whose refresh the CRM refuses is AuthError, nothing written."""
        crm = self.make_crm(sandbox, clock, credential=self.oauth_credential(valid=False))
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert caught.value.connector == self.type_name
        assert self.record_count(sandbox) == 0

    def options(self) -> dict[str, object]:
        """Type-specific config options the client needs against the sandbox."""
        return {}

    def rejected_credential(self) -> str:
        """A credential of the right shape that the sandbox does not accept."""
        return "not-a-valid-token"

    def write_path_prefix(self) -> str:
        """The path prefix of the requests that create records (for fault injection)."""
        raise NotImplementedError


def _instant(value: str) -> datetime:
    """A ``syncd_synced_at`` value as an aware datetime (ISO 8601, or epoch milliseconds as
    HubSpot stores datetime properties)."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
