"""HubSpot messages and follow mode: the Communications the client writes (checked against
HubSpot's guide and published spec), what it reads back, its failures, and the follow flag,
against the sandbox in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ConnectorSettings, Contact, Message, activities, missing
from connectors.hubspot.client import HubSpotCRM
from connectors.hubspot.communications import associations_path
from connectors.hubspot.mapping import (
    BODY_LIMIT,
    COMMUNICATIONS,
    FOLLOW_PROPERTY,
    LINKEDIN_PROPERTY,
    MESSAGE_ID_PROPERTY,
    TEXT_LIMIT,
    utf16_length,
)
from connectors.hubspot.sandbox.app import HubSpotSandbox
from sync.errors import ActivitiesRefused, RecordRejected, WriteUncertain
from sync.retry import RetryPolicy
from tests.contract import ADA, CONVERSATION, TOKEN
from tests.doubles import FakeClock, RecordingTransport

BASE = "http://sandbox.test"
CREATE = f"{COMMUNICATIONS}/batch/create"


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(tokens=[TOKEN])


@pytest.fixture
def wire(sandbox: HubSpotSandbox) -> RecordingTransport:
    """What the client sends, on its way to the sandbox."""
    return RecordingTransport.over(sandbox.app)


@pytest.fixture
async def crm(wire: RecordingTransport) -> AsyncIterator[HubSpotCRM]:
    client = HubSpotCRM(
        ConnectorSettings("hubspot", "hubspot", BASE),
        TOKEN,
        transport=wire,
        retry=RetryPolicy(attempts=4, sleep=FakeClock().sleep),
    )
    yield client
    await client.aclose()


async def ada(crm: HubSpotCRM) -> str:
    (created,) = await crm.upsert_contacts([ADA])
    assert created.id is not None
    return created.id


def chat(count: int, start: int = 0) -> list[Message]:
    """``count`` short messages, oldest first, alternating direction."""
    t0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    return [
        Message(f"x-{n}", "c-9", "me" if n % 2 else "them", t0 + timedelta(minutes=n), f"#{n}")
        for n in range(start, start + count)
    ]


class TestCreateBody:
    """Each message is one LinkedIn communication, associated to the contact in the create."""

    async def test_the_exact_batch_create_body(
        self, crm: HubSpotCRM, wire: RecordingTransport
    ) -> None:
        """One input per message: channel LINKEDIN_MESSAGE, logged from CRM, the body behind
        its direction, hs_timestamp the message's time (UTC, milliseconds), syncd's key, and
        the association to the contact inline (HUBSPOT_DEFINED 81, communication -> contact).

        Shapes: https://developers.hubspot.com/docs/api/crm/communications (properties, the
        associations object, 81 for a contact in its example);
        HubSpot-public-api-spec-collection CRM/Communications v3
        (BatchInputSimplePublicObjectBatchInputForCreate: inputs[] of {properties: string map,
        associations: [{to: {id}, types: [{associationCategory, associationTypeId}]}]}).
        """
        record = await ada(crm)
        first, second = CONVERSATION[:2]
        logged = await crm.add_messages(record, missing([first, second], set(), BODY_LIMIT))
        (sent,) = wire.to(CREATE)
        assert sent.method == "POST"
        association = {
            "to": {"id": record},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}],
        }
        assert sent.json() == {
            "inputs": [
                {
                    "properties": {
                        "hs_communication_channel_type": "LINKEDIN_MESSAGE",
                        "hs_communication_logged_from": "CRM",
                        "hs_communication_body": f"Sent: {first.text}",
                        "hs_timestamp": "2026-03-01T09:01:00.000Z",
                        "syncd_message_id": "m-1",
                    },
                    "associations": [association],
                },
                {
                    "properties": {
                        "hs_communication_channel_type": "LINKEDIN_MESSAGE",
                        "hs_communication_logged_from": "CRM",
                        "hs_communication_body": f"Received: {second.text}",
                        "hs_timestamp": "2026-03-01T09:02:00.000Z",
                        "syncd_message_id": "m-2",
                    },
                    "associations": [association],
                },
            ]
        }
        assert (logged.written, logged.split) == (2, 0)

    async def test_syncd_property_is_created_once_on_communications(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """syncd_message_id is defined on the communications object (not on contacts) by the
        first write, and not again."""
        record = await ada(crm)
        await crm.add_messages(record, missing(chat(2), set(), BODY_LIMIT))
        await crm.add_messages(record, missing(chat(2, 2), set(), BODY_LIMIT))
        made = wire.to("/crm/v3/properties/communications", "POST")
        assert [s.json()["name"] for s in made] == [MESSAGE_ID_PROPERTY]
        assert made[0].json()["type"] == "string"
        assert MESSAGE_ID_PROPERTY in sandbox.communications.properties
        assert MESSAGE_ID_PROPERTY not in sandbox.store.properties

    async def test_150_messages_go_in_batches_of_at_most_100(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """HubSpot's batch create takes at most 100 inputs: 150 messages are two calls."""
        record = await ada(crm)
        logged = await crm.add_messages(record, missing(chat(150), set(), BODY_LIMIT))
        sizes = [len(s.json()["inputs"]) for s in wire.to(CREATE)]
        assert sizes == [100, 50]
        assert logged.written == 150
        assert len(sandbox.communications.of(record)) == 150

    def test_the_body_limit_fits_hubspot_in_utf16(self) -> None:
        """A part of all emoji behind the longest direction prefix is within HubSpot's
        65,536 characters, counted as the JVM counts them (UTF-16 units).

        https://developers.hubspot.com/docs/guides/api/crm/properties (string: "limited to
        65,536 characters")."""
        text = "👋" * (BODY_LIMIT * 3)
        parts = activities(
            Message("e", "c", "them", datetime(2026, 1, 1, tzinfo=UTC), text), BODY_LIMIT
        )
        assert len(parts) == 4
        assert max(utf16_length("Received: " + p.body) for p in parts) <= TEXT_LIMIT
        assert utf16_length("Received: " + "👋" * (BODY_LIMIT + 1)) > TEXT_LIMIT - 2


class TestReadBack:
    """What a contact holds is read from HubSpot: its associations, every page."""

    async def test_associations_are_paged_and_human_ones_ignored(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """620 communications (one a person's own) take two association pages of at most
        500 and seven batch reads; the person's has no key and is not counted."""
        record = await ada(crm)
        await crm.add_messages(record, missing(chat(619), set(), BODY_LIMIT))
        store = sandbox.communications
        human = {
            "hs_communication_channel_type": "LINKEDIN_MESSAGE",
            "hs_communication_logged_from": "CRM",
            "hs_communication_body": "typed by hand",
        }
        store.create(store.validate(human), [record])
        held = await crm.message_ids(record)
        pages = wire.to(associations_path(record))
        assert len(pages) == 2
        assert pages[0].url.params["limit"] == "500"
        assert pages[1].url.params["after"] == "500"
        assert len(wire.to(f"{COMMUNICATIONS}/batch/read")) == 7
        assert held == {m.id for m in chat(619)}

    async def test_no_communications_reads_nothing_more(
        self, crm: HubSpotCRM, wire: RecordingTransport
    ) -> None:
        """A contact without communications answers empty after one association call."""
        record = await ada(crm)
        assert await crm.message_ids(record) == frozenset()
        assert len(wire.to(associations_path(record))) == 1
        assert wire.to(f"{COMMUNICATIONS}/batch/read") == []


class TestFailures:
    """A missing scope refuses the activities, never the contact; a lost answer is never
    resent, and what landed is read back."""

    async def test_missing_scopes_is_activities_refused(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """A token without the communications scope: HubSpot's 403 MISSING_SCOPES becomes
        ActivitiesRefused naming the instance and what to do, for reads and writes alike;
        the contact itself was written.

        https://developers.hubspot.com/docs/api-reference/error-handling (403, category)."""
        record = await ada(crm)
        sandbox.deny_communications(TOKEN)
        with pytest.raises(ActivitiesRefused) as writing:
            await crm.add_messages(record, missing(chat(2), set(), BODY_LIMIT))
        with pytest.raises(ActivitiesRefused) as reading:
            await crm.message_ids(record)
        for caught in (writing, reading):
            assert caught.value.status == 403
            assert "MISSING_SCOPES" in str(caught.value)
            assert "syncd auth set hubspot" in str(caught.value)
        assert sandbox.contact_count() == 1
        assert sandbox.communications.communications == {}

    async def test_erase_and_export_survive_a_missing_scope(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """Without the scope, forget and export still work (no activities to report)."""
        await ada(crm)
        sandbox.deny_communications()
        held = await crm.export(ADA)
        erased = await crm.erase(ADA)
        assert (held.found, held.activities) == (True, ())
        assert (erased.outcome, erased.activities) == ("erased", 0)

    async def test_a_lost_answer_is_write_uncertain_then_read_back(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """The batch landed but its answer broke: WriteUncertain, sent once; message_ids then
        shows what landed, and writing what is missing sends nothing more."""
        record = await ada(crm)
        messages = chat(3)
        sandbox.core.garbage_next("corrupt_gzip", applied=True, path_prefix=CREATE)
        with pytest.raises(WriteUncertain):
            await crm.add_messages(record, missing(messages, set(), BODY_LIMIT))
        assert len(wire.to(CREATE)) == 1
        held = await crm.message_ids(record)
        assert held == {m.id for m in messages}
        rest = missing(messages, held, BODY_LIMIT)
        again = await crm.add_messages(record, rest)
        assert (rest, again.written) == ([], 0)
        assert len(wire.to(CREATE)) == 1
        assert len(sandbox.communications.of(record)) == 3

    async def test_a_refused_batch_is_rejected_without_the_vendor_text(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """A 400 on the batch raises with status and category, never HubSpot's message
        (which can quote the body)."""
        record = await ada(crm)
        sandbox.core.fail_next(400, path_prefix=CREATE)
        with pytest.raises(RecordRejected) as caught:
            await crm.add_messages(record, missing(CONVERSATION[:1], set(), BODY_LIMIT))
        assert caught.value.status == 400
        assert "VALIDATION_ERROR" in str(caught.value)
        assert CONVERSATION[0].text not in str(caught.value)


class TestRights:
    """forget and export know the communications syncd wrote."""

    async def test_erase_counts_them_and_they_go_with_the_contact(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """The GDPR delete takes the contact's communications (its associated content);
        Erasure.activities counts syncd's, a person's own is not counted."""
        record = await ada(crm)
        await crm.add_messages(record, missing(CONVERSATION, set(), BODY_LIMIT))
        store = sandbox.communications
        props = {
            "hs_communication_channel_type": "SMS",
            "hs_communication_logged_from": "CRM",
        }
        store.create(store.validate(props), [record])
        erased = await crm.erase(ADA)
        assert (erased.outcome, erased.activities) == ("erased", len(CONVERSATION))
        assert store.communications == {}

    async def test_export_gives_their_dates_oldest_first(self, crm: HubSpotCRM) -> None:
        """Holding.activities are the hs_timestamp of syncd's communications."""
        record = await ada(crm)
        await crm.add_messages(record, missing(CONVERSATION[:3], set(), BODY_LIMIT))
        held = await crm.export(ADA)
        assert held.activities == tuple(m.sent_at for m in CONVERSATION[:3])


class TestFollow:
    """The follow flag is a HubSpot bool on the contact, listed by search."""

    async def test_the_flag_is_a_bool_written_as_text(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """syncd_follow is created once as a bool single checkbox with options true/false,
        and written as the strings "true" and "false".

        https://developers.hubspot.com/docs/guides/api/crm/properties (bool, booleancheckbox)."""
        record = await ada(crm)
        await crm.set_follow(ADA, True)
        await crm.set_follow(ADA, False)
        (made,) = [
            s.json()
            for s in wire.to("/crm/v3/properties/contacts", "POST")
            if s.json().get("name") == FOLLOW_PROPERTY
        ]
        assert (made["type"], made["fieldType"]) == ("bool", "booleancheckbox")
        assert [o["value"] for o in made["options"]] == ["true", "false"]
        writes = [
            s.json()["properties"][FOLLOW_PROPERTY]
            for s in wire.to(f"/crm/v3/objects/contacts/{record}", "PATCH")
        ]
        assert writes == ["true", "false"]
        assert sandbox.store.contacts[record].properties[FOLLOW_PROPERTY] == "false"

    async def test_followed_pages_through_the_search(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """250 followed contacts take two search pages (EQ true, after); unfollowed ones and
        one without syncd's profile URL are left out."""
        await ada(crm)
        await crm.set_follow(ADA, True)
        for n in range(250):
            sandbox.store.create(
                {FOLLOW_PROPERTY: "true", LINKEDIN_PROPERTY: f"https://www.linkedin.com/in/P-{n}/"}
            )
        sandbox.store.create({FOLLOW_PROPERTY: "false", LINKEDIN_PROPERTY: "https://x/in/no"})
        sandbox.store.create({FOLLOW_PROPERTY: "true"})
        listed = await crm.followed()
        searches = [s.json() for s in wire.to("/crm/v3/objects/contacts/search")]
        follow_searches = [
            b
            for b in searches
            if b["filterGroups"][0]["filters"][0]["propertyName"] == FOLLOW_PROPERTY
        ]
        assert [b["after"] for b in follow_searches] == ["0", "200"]
        assert follow_searches[0]["filterGroups"] == [
            {"filters": [{"propertyName": FOLLOW_PROPERTY, "operator": "EQ", "value": "true"}]}
        ]
        assert len(listed) == 251
        assert {f.public_id for f in listed} == {"ada-lovelace", *(f"p-{n}" for n in range(250))}

    async def test_an_ambiguous_person_is_not_followed(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """Two records fit by name and company: nothing is marked, both are named."""
        twin = {"firstname": "Ada", "lastname": "Lovelace", "company": "Analytical Engines"}
        one = sandbox.store.create(dict(twin)).id
        two = sandbox.store.create(dict(twin)).id
        contact = Contact(ADA.member_id, {k: v for k, v in ADA.fields.items() if k != "email"})
        marked = await crm.set_follow(contact, True)
        assert not marked.found
        assert set(marked.candidates) == {one, two}
        assert all(FOLLOW_PROPERTY not in c.properties for c in sandbox.store.contacts.values())

    async def test_nobody_followed_before_the_property_exists(
        self, crm: HubSpotCRM, wire: RecordingTransport
    ) -> None:
        """Before anyone was followed, followed() is empty without a search."""
        assert await crm.followed() == []
        assert wire.to("/crm/v3/objects/contacts/search") == []
