"""Pipedrive's messages and follow flag: the exact note syncd writes, which notes count as
syncd's, a lost note answer, notes and search paging, a refused notes permission, export's
message dates, and the sandbox's note and person-list routes against Pipedrive's OpenAPI
files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import Activity, Contact, Followed, Message, activities, missing
from connectors.pipedrive.client import PipedriveCRM
from connectors.pipedrive.mapping import (
    BODY_LIMIT,
    FOLLOW_FIELD,
    FOLLOWING,
    NOTE_CONTENT_LIMIT,
    note_content,
    note_key,
    note_marker,
    read_note,
)
from connectors.pipedrive.sandbox.app import PipedriveSandbox
from sync.errors import ActivitiesRefused, WriteUncertain
from tests.contract import ADA, TOKEN
from tests.doubles import RecordingTransport
from tests.test_pipedrive import BASE, custom_key, validate
from tests.unit.test_pipedrive_erase import crm_over, written

NOTES = "/api/v1/notes"
PERSONS = "/api/v2/persons"
AT = datetime(2026, 3, 1, 9, 1, 30, tzinfo=UTC)


def message(n: int, text: str = "", sender: str = "me") -> Message:
    return Message(
        f"m-{n}",
        "c-1",
        "me" if sender == "me" else "them",
        AT.replace(minute=n),
        text or f"Message number {n}",
    )


def whole(m: Message) -> Activity:
    return Activity(m.id, m, m.text)


class LosesNoteAnswer(httpx.AsyncBaseTransport):
    """Hands each request to the sandbox; the ``nth`` note POST is applied there, then its
    answer is lost on the way back, as when the connection breaks."""

    def __init__(self, sandbox: PipedriveSandbox, nth: int) -> None:
        self.inner = httpx.ASGITransport(app=sandbox.app)
        self.nth = nth
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == NOTES:
            self.posts += 1
            if self.posts == self.nth:
                await response.aread()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response


@pytest.fixture
def sandbox() -> PipedriveSandbox:
    return PipedriveSandbox(tokens=[TOKEN])


@pytest.fixture
async def api(sandbox: PipedriveSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=BASE,
        transport=httpx.ASGITransport(app=sandbox.app),
        headers={"x-api-token": TOKEN},
    ) as client:
        yield client


class TestNoteShape:
    """Each message is one note: escaped text, a direction line, the marker with its key."""

    async def test_the_note_body_is_exact(self, sandbox: PipedriveSandbox) -> None:
        """The request carries person_id, the message time as add_time, and the escaped
        text, a newline as <br>, then the direction and marker lines."""
        person_id = await written(sandbox)
        received = message(2, 'a < b & "c"\nnext line 👋🏽', sender="them")
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        logged = await crm.add_messages(str(person_id), [whole(message(1)), whole(received)])
        await crm.aclose()
        bodies = [s.json() for s in recorder.to(NOTES, "POST")]
        assert (logged.written, logged.split) == (2, 0)
        assert bodies[1] == {
            "person_id": person_id,
            "add_time": "2026-03-01 09:02:30",
            "content": '<p>a &lt; b &amp; "c"<br>next line 👋🏽</p>'
            "<p>LinkedIn message received 2026-03-01 09:02 UTC</p>"
            "<p>relayed by syncd · message m-2</p>",
        }
        assert bodies[0]["content"].endswith(
            "<p>LinkedIn message sent 2026-03-01 09:01 UTC</p><p>relayed by syncd · message m-1</p>"
        )

    def test_a_note_reads_back_exactly(self) -> None:
        """read_note gives back the key, text (markup-like text and emoji intact),
        direction and minute of what note_content wrote."""
        text = "<b>not bold</b> &amp; stays\r\nas typed 🧪 <br>"
        part = activities(message(3, text * 3, sender="them"), 40)[1]
        parsed = read_note(note_content(part))
        assert parsed is not None
        assert (parsed.key, parsed.body, parsed.direction) == (part.key, part.body, "received")
        assert parsed.at == AT.replace(minute=3, second=0)
        assert note_key(note_content(part)) == part.key == "m-3#2/" + part.key.split("/")[1]

    async def test_the_worst_body_still_fits_one_note(self, sandbox: PipedriveSandbox) -> None:
        """A body of BODY_LIMIT characters that all grow when escaped stays under Pipedrive's
        100 KB, and the sandbox takes it; one character more would be split."""
        person_id = await written(sandbox)
        worst = message(1, "&" * BODY_LIMIT)
        assert len(note_content(whole(worst)).encode()) <= NOTE_CONTENT_LIMIT
        assert len(activities(message(1, "&" * (BODY_LIMIT + 1)), BODY_LIMIT)) == 2
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        logged = await crm.add_messages(str(person_id), [whole(worst)])
        await crm.aclose()
        assert logged.written == sandbox.note_count(person_id) == 1


class TestWhatSyncdHolds:
    """message_ids reads syncd's markers on every page; a human's notes never count."""

    async def test_a_human_note_is_not_counted(self, sandbox: PipedriveSandbox) -> None:
        """A human's note, even one quoting a marker mid-text, adds no key."""
        person_id = await written(sandbox)
        sandbox.seed_note(person_id, "<p>Called; she liked it.</p>")
        sandbox.seed_note(person_id, f"<p>{note_marker('m-9')}</p><p>copied by hand</p>")
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        await crm.add_messages(str(person_id), [whole(message(1))])
        held = await crm.message_ids(str(person_id))
        await crm.aclose()
        assert held == {"m-1"}

    async def test_notes_are_read_on_every_page(self, sandbox: PipedriveSandbox) -> None:
        """With two notes a page, five messages and a human note take four pages."""
        person_id = await written(sandbox)
        sandbox.page_cap = 2
        conversation = [message(n) for n in range(1, 6)]
        sandbox.seed_note(person_id, "<p>Human</p>")
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        await crm.add_messages(str(person_id), [whole(m) for m in conversation])
        held = await crm.message_ids(str(person_id))
        await crm.aclose()
        assert held == {m.id for m in conversation}
        assert [s.url.params["start"] for s in recorder.to(NOTES, "GET")] == ["0", "2", "4"]

    async def test_a_lost_note_answer_is_write_uncertain(self, sandbox: PipedriveSandbox) -> None:
        """The second note lands but its answer is lost: WriteUncertain, nothing resent;
        message_ids then holds what landed, and the rest is written once."""
        person_id = await written(sandbox)
        conversation = [message(n) for n in range(1, 5)]
        transport = LosesNoteAnswer(sandbox, nth=2)
        crm = crm_over(transport)
        with pytest.raises(WriteUncertain):
            await crm.add_messages(str(person_id), missing(conversation, set(), BODY_LIMIT))
        held = await crm.message_ids(str(person_id))
        rest = await crm.add_messages(str(person_id), missing(conversation, held, BODY_LIMIT))
        await crm.aclose()
        assert held == {"m-1", "m-2"}
        assert transport.posts == 4
        assert rest.written == 2
        assert [v["key"] for v in sandbox.logged(person_id)] == [m.id for m in conversation]

    async def test_a_split_message_counts_once(self, sandbox: PipedriveSandbox) -> None:
        """Three parts of one message and one whole message: written 2, split 1."""
        person_id = await written(sandbox)
        parts = activities(message(1, "x" * 100), 45)
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        logged = await crm.add_messages(str(person_id), [*parts, whole(message(2))])
        await crm.aclose()
        assert len(parts) == 3
        assert (logged.written, logged.split) == (2, 1)


class TestRefusedNotes:
    """A credential that may not add notes: ActivitiesRefused, the contact stays."""

    async def test_permission_refusal_is_activities_refused(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Pipedrive's 403 becomes one sentence with status and request id, never retried,
        no message text in it."""
        person_id = await written(sandbox)
        sandbox.refuse_notes = True
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        secret = message(1, "canary-note-7f3e")
        with pytest.raises(ActivitiesRefused) as caught:
            await crm.add_messages(str(person_id), [whole(secret)])
        await crm.aclose()
        error = caught.value
        assert (error.connector, error.status) == ("pipedrive", 403)
        assert error.request_id
        assert "canary" not in error.describe()
        assert "notes" in str(error)
        assert [r.status for r in sandbox.core.requests if r.path == NOTES] == [403]
        assert sandbox.contact_count() == 1
        assert sandbox.note_count(person_id) == 0


class TestFollow:
    """The "syncd follow" text field: set, cleared, and found by search on every page."""

    async def test_set_and_clear_send_one_patch_each(self, sandbox: PipedriveSandbox) -> None:
        """Following twice writes once; unfollowing writes null; the field is a text field
        made once."""
        await written(sandbox)
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        await crm.set_follow(ADA, True)
        await crm.set_follow(ADA, True)
        await crm.set_follow(ADA, False)
        await crm.aclose()
        key = custom_key(sandbox, FOLLOW_FIELD)
        patches = [s.json()["custom_fields"] for s in recorder.to(PERSONS + "/", "PATCH")]
        assert [p[key] for p in patches] == [FOLLOWING, None]
        fields = [f for f in sandbox.store.fields if f["field_name"] == FOLLOW_FIELD]
        assert [f["field_type"] for f in fields] == ["varchar"]

    async def test_followed_reads_every_page(self, sandbox: PipedriveSandbox) -> None:
        """Five followed people on search pages of two, read back by ids; a person who has
        the word in another field, or lost the flag, is not listed."""
        sandbox.page_cap = 2
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        people = [
            Contact(
                f"urn:li:member:{n}",
                {
                    "first_name": f"P{n}",
                    "last_name": "Q",
                    "linkedin_url": f"https://www.linkedin.com/in/Person-{n}/",
                },
            )
            for n in range(1, 8)
        ]
        made = await crm.upsert_contacts(people)
        for contact in people[:6]:
            await crm.set_follow(contact, True)
        await crm.set_follow(people[5], False)
        stranger = sandbox.seed({"first_name": "S", "last_name": "T"})
        sandbox.edit(stranger, "linkedin_url", FOLLOWING)
        recorder = RecordingTransport.over(sandbox.app)
        lister = crm_over(recorder)
        listed = await lister.followed()
        await crm.aclose()
        await lister.aclose()
        assert listed == [Followed(str(o.id), f"person-{n}") for n, o in enumerate(made[:5], 1)]
        searches = recorder.to(PERSONS + "/search", "GET")
        assert len(searches) == 3
        assert {s.url.params["term"] for s in searches} == {FOLLOWING}
        assert all(s.url.params["exact_match"] == "true" for s in searches)

    async def test_nobody_is_followed_before_the_field_exists(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """Without the field, followed() answers [] and creates nothing."""
        crm = crm_over(httpx.ASGITransport(app=sandbox.app))
        listed = await crm.followed()
        await crm.aclose()
        assert listed == []
        assert not [f for f in sandbox.store.fields if f["is_custom_field"]]


class TestExportDates:
    """export dates syncd's notes with the message time, not the time of the write."""

    async def test_export_gives_message_times(self, sandbox: PipedriveSandbox) -> None:
        """Notes written now for messages sent in 2026-03 export as 2026-03 times, to the
        second; a note whose add_time Pipedrive kept as the write time falls back to the
        direction line's minute."""
        person_id = await written(sandbox)
        crm: PipedriveCRM = crm_over(httpx.ASGITransport(app=sandbox.app))
        await crm.add_messages(str(person_id), [whole(message(1)), whole(message(2))])
        sandbox.store.live_notes(person_id)[1]["add_time"] = "2030-01-01 00:00:00"
        held = await crm.export(ADA)
        await crm.aclose()
        assert held.activities == (AT, AT.replace(minute=2, second=0))


class TestSandboxNotes:
    """The sandbox's notes and person lists against Pipedrive's OpenAPI files."""

    async def test_add_time_is_kept_and_checked(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """A note takes add_time in v1's format (the answer fits the spec); another format
        or content past 100 KB is a 400 with the envelope."""
        person_id = await written(sandbox)
        made = await api.post(
            NOTES,
            json={
                "content": "<p>Hi</p>",
                "person_id": person_id,
                "add_time": "2020-02-03 04:05:06",
            },
        )
        wrong = await api.post(
            NOTES, json={"content": "Hi", "person_id": person_id, "add_time": "2020-02-03T04:05"}
        )
        huge = await api.post(
            NOTES, json={"content": "é" * (NOTE_CONTENT_LIMIT // 2 + 1), "person_id": person_id}
        )
        validate("v1", "/notes", "post", made.json())
        assert made.json()["data"]["add_time"] == "2020-02-03 04:05:06"
        assert (wrong.status_code, huge.status_code) == (400, 400)
        assert wrong.json()["success"] is False
        assert sandbox.note_count(person_id) == 1

    async def test_a_refused_note_has_pipedrives_403(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """refuse_notes answers Pipedrive's scope error, and writes nothing."""
        person_id = await written(sandbox)
        sandbox.refuse_notes = True
        refused = await api.post(NOTES, json={"content": "Hi", "person_id": person_id})
        assert refused.status_code == 403
        assert refused.json()["error"] == "Scope and URL mismatch"
        assert refused.json()["errorCode"] == 403
        assert sandbox.note_count(person_id) == 0

    async def test_persons_by_ids_fit_the_v2_spec(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """ids picks persons (at most 100), custom_fields keeps only those keys."""
        first = await written(sandbox)
        await written(sandbox, Contact("urn:li:member:2", {"first_name": "Bo", "last_name": "B"}))
        key = custom_key(sandbox, "syncd member id")
        listed = await api.get(PERSONS, params={"ids": str(first), "custom_fields": key})
        too_many = await api.get(PERSONS, params={"ids": ",".join(map(str, range(1, 102)))})
        validate("v2", "/persons", "get", listed.json())
        (only,) = listed.json()["data"]
        assert only["id"] == first
        assert list(only["custom_fields"]) == [key]
        assert too_many.status_code == 400
