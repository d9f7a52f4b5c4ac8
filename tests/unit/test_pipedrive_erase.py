"""Pipedrive's forget and export: which notes are syncd's, the requests erase sends, notes
paging, a lost delete answer, the synced-at stamp, and the sandbox's delete and note routes
against Pipedrive's OpenAPI files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import ConnectorSettings, Contact
from connectors.pipedrive.client import RETENTION, PipedriveCRM
from connectors.pipedrive.mapping import (
    PAGE_LIMIT,
    SYNCED_AT_FIELD,
    is_syncd_note,
    note_marker,
)
from connectors.pipedrive.sandbox.app import PipedriveSandbox
from sync.errors import WriteUncertain
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, with_fields
from tests.doubles import FakeClock, RecordingTransport
from tests.test_pipedrive import BASE, custom_key, make_crm, validate

PERSONS = "/api/v2/persons"
NOTES = "/api/v1/notes"
HUMAN_NOTE = "<p>Met Ada at the fair; call back in May.</p>"


def syncd_note(message_id: str, text: str = "Thanks for the intro!") -> str:
    """A note as syncd writes one (issue 12), after Pipedrive's HTML sanitising."""
    return f"<p>{text}</p><p>{note_marker(message_id)}</p>"


def crm_over(transport: httpx.AsyncBaseTransport) -> PipedriveCRM:
    settings = ConnectorSettings("pipedrive", "pipedrive", BASE, options={"oauth_url": BASE})
    return PipedriveCRM(
        settings, TOKEN, transport=transport, retry=RetryPolicy(sleep=FakeClock().sleep)
    )


async def written(sandbox: PipedriveSandbox, contact: Contact = ADA) -> int:
    """Upsert ``contact`` with a client of its own; the person's id."""
    crm = make_crm(sandbox)
    (outcome,) = await crm.upsert_contacts([contact])
    await crm.aclose()
    assert outcome.id is not None
    return int(outcome.id)


def add_note(sandbox: PipedriveSandbox, person_id: int, content: str, at: str = "") -> int:
    note = sandbox.store.create_note({"content": content, "person_id": person_id})
    if at:
        note["add_time"] = at
    return note["id"]


class LosesDeleteAnswers(httpx.AsyncBaseTransport):
    """Hands each request to the sandbox; a person DELETE is applied there, then its answer
    is lost on the way back, as when the connection breaks."""

    def __init__(self, sandbox: PipedriveSandbox) -> None:
        self.inner = httpx.ASGITransport(app=sandbox.app)
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "DELETE" and request.url.path.startswith(PERSONS + "/"):
            await response.aread()
            self.lost.append(request.url.path)
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


class TestSyncdNotes:
    """A note is syncd's only when its last line of text is syncd's marker."""

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            pytest.param(syncd_note("m-1"), True, id="paragraphs"),
            pytest.param("Hello\nrelayed by syncd · message m-2", True, id="plain-text"),
            pytest.param("Hi<br/>relayed by syncd &middot; message m-3", True, id="br-entity"),
            pytest.param(
                "<div>Hi</div><div>relayed&nbsp;by syncd · message 7</div><p></p>",
                True,
                id="nbsp-trailing-empty",
            ),
            pytest.param(HUMAN_NOTE, False, id="human"),
            pytest.param(
                "<p>relayed by syncd · message 9</p><p>and my own words after it</p>",
                False,
                id="marker-not-last",
            ),
            pytest.param("<p>relayed by syncd · message </p>", False, id="no-message-id"),
            pytest.param("", False, id="empty"),
        ],
    )
    def test_is_syncd_note(self, content: str, expected: bool) -> None:
        """Pipedrive's sanitised HTML is read as lines of text; only a final marker counts."""
        assert is_syncd_note(content) is expected

    def test_marker_names_the_message(self) -> None:
        """The marker carries the source message id, whitespace removed; an empty id fails."""
        assert note_marker("urn:li:msg:42") == "relayed by syncd · message urn:li:msg:42"
        with pytest.raises(ValueError, match="message id"):
            note_marker("  ")


class TestErase:
    """erase deletes syncd's notes, then the person through API v2; a human's note stays."""

    async def test_deletes_syncd_notes_and_keeps_a_humans(self, sandbox: PipedriveSandbox) -> None:
        """Two syncd notes are deleted and counted; the colleague's note is not touched."""
        person_id = await written(sandbox)
        human = add_note(sandbox, person_id, HUMAN_NOTE)
        add_note(sandbox, person_id, syncd_note("m-1"))
        add_note(sandbox, person_id, syncd_note("m-2"))
        other = await written(sandbox, Contact("urn:li:member:77", {"first_name": "Grace"}))
        add_note(sandbox, other, syncd_note("m-3"))
        crm = make_crm(sandbox)
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.activities) == ("erased", str(person_id), 2)
        assert [n["id"] for n in sandbox.store.live_notes(person_id)] == [human]
        assert sandbox.note_count(other) == 1
        assert sandbox.store.persons[person_id]["is_deleted"] is True
        assert sandbox.contact_count() == 1

    async def test_sends_v1_note_deletes_then_the_v2_person_delete(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """The exact deletes: each syncd note on /api/v1/notes/{id}, then the person on
        /api/v2/persons/{id}, with no body and the token in its header."""
        person_id = await written(sandbox)
        note = add_note(sandbox, person_id, syncd_note("m-1"))
        add_note(sandbox, person_id, HUMAN_NOTE)
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        await crm.erase(ADA)
        await crm.aclose()
        deletes = [(s.method, s.path, s.content) for s in recorder.sent if s.method == "DELETE"]
        assert deletes == [
            ("DELETE", f"{NOTES}/{note}", b""),
            ("DELETE", f"{PERSONS}/{person_id}", b""),
        ]
        for sent in recorder.sent:
            assert sent.headers["x-api-token"] == TOKEN
            assert "api_token" not in str(sent.url.query)
        assert not any(s.path.startswith("/api/v1/persons") for s in recorder.sent)
        (listed,) = recorder.to(NOTES, "GET")
        assert dict(listed.url.params) == {
            "person_id": str(person_id),
            "start": "0",
            "limit": str(PAGE_LIMIT),
        }

    async def test_reads_every_page_of_notes(self) -> None:
        """With more notes than a page holds, every page is read and every syncd note goes."""
        sandbox = PipedriveSandbox(tokens=[TOKEN], burst=1000)  # 250 deletes in one window
        person_id = await written(sandbox)
        for n in range(PAGE_LIMIT + 3):
            add_note(sandbox, person_id, syncd_note(f"m-{n}") if n % 2 else HUMAN_NOTE)
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        erased = await crm.erase(ADA)
        await crm.aclose()
        starts = [s.url.params["start"] for s in recorder.to(NOTES, "GET")]
        assert starts == ["0", str(PAGE_LIMIT)]
        assert erased.activities == (PAGE_LIMIT + 3) // 2
        assert sandbox.note_count(person_id) == (PAGE_LIMIT + 3) - erased.activities
        remaining = sandbox.store.live_notes(person_id)
        assert all(not is_syncd_note(n["content"]) for n in remaining)

    async def test_a_lost_delete_answer_is_write_uncertain_and_a_rerun_is_absent(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """The delete was applied but its answer lost: WriteUncertain, the delete not resent;
        erase run again finds nobody."""
        person_id = await written(sandbox)
        transport = LosesDeleteAnswers(sandbox)
        crm = crm_over(transport)
        with pytest.raises(WriteUncertain) as caught:
            await crm.erase(ADA)
        again = await crm.erase(ADA)
        await crm.aclose()
        assert transport.lost == [f"{PERSONS}/{person_id}"]
        assert caught.value.connector == "pipedrive"
        assert again.outcome == "absent"
        assert sandbox.contact_count() == 0
        deletes = [r for r in sandbox.core.requests if r.method == "DELETE"]
        assert len(deletes) == 1

    async def test_says_pipedrive_keeps_the_person_30_days(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """The outcome names the 30 days, and Pipedrive does still answer the deleted
        person by id, flagged deleted, while search no longer finds it."""
        person_id = await written(sandbox)
        crm = make_crm(sandbox)
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert erased.retention == RETENTION == "purged by Pipedrive after 30 days"
        read = await api.get(f"{PERSONS}/{person_id}")
        search = await api.get(
            f"{PERSONS}/search", params={"term": ADA.fields["email"], "fields": "email"}
        )
        assert (read.status_code, read.json()["data"]["is_deleted"]) == (200, True)
        assert search.json()["data"]["items"] == []

    async def test_organization_and_other_people_stay(self, sandbox: PipedriveSandbox) -> None:
        """Only the person goes: its organization and a colleague are untouched."""
        await written(sandbox)
        colleague = await written(
            sandbox,
            Contact("urn:li:member:5", {"first_name": "Charles", "company": "Analytical Engines"}),
        )
        crm = make_crm(sandbox)
        await crm.erase(ADA)
        await crm.aclose()
        assert sandbox.company_of(colleague) == "Analytical Engines"
        assert [p["id"] for p in sandbox.store.live_persons()] == [colleague]


class TestExport:
    """export reports syncd's notes by date and the stamp, and writes nothing."""

    async def test_lists_syncd_note_dates_oldest_first(self, sandbox: PipedriveSandbox) -> None:
        """Only syncd's notes, by add_time, oldest first; no write of any kind is sent."""
        person_id = await written(sandbox)
        add_note(sandbox, person_id, syncd_note("m-2"), at="2025-03-02 09:00:00")
        add_note(sandbox, person_id, HUMAN_NOTE, at="2024-01-01 00:00:00")
        add_note(sandbox, person_id, syncd_note("m-1"), at="2025-01-15 18:30:05")
        recorder = RecordingTransport.over(sandbox.app)
        crm = crm_over(recorder)
        held = await crm.export(ADA)
        await crm.aclose()
        assert held.activities == (
            datetime(2025, 1, 15, 18, 30, 5, tzinfo=UTC),
            datetime(2025, 3, 2, 9, 0, 0, tzinfo=UTC),
        )
        assert held.url == f"{BASE}/person/{person_id}"
        assert held.synced_at is not None
        assert held.synced_at.endswith("Z")
        assert {s.method for s in recorder.sent} == {"GET"}
        assert sandbox.note_count(person_id) == 3


class TestSyncedAt:
    """The stamp moves with every write and only then."""

    async def test_an_unchanged_upsert_leaves_the_stamp(self, sandbox: PipedriveSandbox) -> None:
        """Nothing to write, nothing sent: the old stamp stays; a real change replaces it."""
        person_id = await written(sandbox)
        key = custom_key(sandbox, SYNCED_AT_FIELD)
        sandbox.store.persons[person_id]["custom_fields"][key] = "2020-01-01T00:00:00Z"
        crm = make_crm(sandbox)
        (same,) = await crm.upsert_contacts([ADA])
        kept = sandbox.store.persons[person_id]["custom_fields"][key]
        (changed,) = await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0003")])
        await crm.aclose()
        moved = sandbox.store.persons[person_id]["custom_fields"][key]
        assert (same.outcome, kept) == ("unchanged", "2020-01-01T00:00:00Z")
        assert changed.outcome == "updated"
        assert moved is not None
        assert datetime.fromisoformat(moved.replace("Z", "+00:00")).year >= 2025

    async def test_a_company_from_before_gets_the_field_on_its_next_write(
        self, sandbox: PipedriveSandbox
    ) -> None:
        """A company that has syncd's other fields but not the stamp gets it made once."""
        sandbox.store.add_field("syncd member id", "varchar")
        sandbox.store.add_field("LinkedIn profile URL", "varchar")
        await written(sandbox)
        made = [f for f in sandbox.store.fields if f["field_name"] == SYNCED_AT_FIELD]
        assert [f["field_type"] for f in made] == ["varchar"]


class TestSandboxDeletes:
    """The sandbox's person and note deletes answer as Pipedrive's OpenAPI files say."""

    async def test_person_delete_fits_the_v2_spec(self, api: httpx.AsyncClient) -> None:
        """200 ``{success, data: {id}}``; unknown or already deleted ids are 404."""
        made = (await api.post(PERSONS, json={"name": "Ada Lovelace"})).json()["data"]
        deleted = await api.delete(f"{PERSONS}/{made['id']}")
        twice = await api.delete(f"{PERSONS}/{made['id']}")
        unknown = await api.delete(f"{PERSONS}/4242")
        patched = await api.patch(f"{PERSONS}/{made['id']}", json={"name": "Back"})
        listed = await api.get(PERSONS)
        validate("v2", "/persons/{id}", "delete", deleted.json())
        assert deleted.json() == {"success": True, "data": {"id": made["id"]}}
        assert deleted.headers["x-token-cost"] == "3"
        for answer in (twice, unknown, patched):
            assert answer.status_code == 404
            assert answer.json()["success"] is False
        assert listed.json()["data"] == []

    async def test_notes_delete_and_pages_fit_the_v1_spec(
        self, sandbox: PipedriveSandbox, api: httpx.AsyncClient
    ) -> None:
        """A note delete answers ``data: true`` then 404; lists page by start and limit."""
        made = (await api.post(PERSONS, json={"name": "Ada Lovelace"})).json()["data"]
        ids = [add_note(sandbox, made["id"], f"note {n}") for n in range(3)]
        first = await api.get(NOTES, params={"person_id": made["id"], "limit": 2})
        second = await api.get(NOTES, params={"person_id": made["id"], "start": 2, "limit": 2})
        deleted = await api.delete(f"{NOTES}/{ids[0]}")
        again = await api.delete(f"{NOTES}/{ids[0]}")
        too_big = await api.get(NOTES, params={"limit": PAGE_LIMIT + 1})
        validate("v1", "/notes", "get", first.json())
        validate("v1", "/notes/{id}", "delete", deleted.json())
        assert first.json()["additional_data"]["pagination"] == {
            "start": 0,
            "limit": 2,
            "more_items_in_collection": True,
            "next_start": 2,
        }
        assert [n["id"] for n in second.json()["data"]] == [ids[2]]
        assert second.json()["additional_data"]["pagination"]["more_items_in_collection"] is False
        assert deleted.json() == {"success": True, "data": True}
        assert deleted.headers["x-token-cost"] == "6"
        assert (again.status_code, too_big.status_code) == (404, 400)
        assert sandbox.note_count(made["id"]) == 2
        seen = {(r.method, r.path) for r in sandbox.core.requests}
        assert ("DELETE", f"{NOTES}/{ids[0]}") in seen
