"""Salesforce messages and follow mode: completed Tasks written through sObject Collections
create, read back by syncd_message_id__c (every page, archived ones too, never a person's),
refusals, a lost answer, and the syncd_follow__c checkbox. Against the sandbox, in process
over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.base import Activity, Contact, Followed, Message, activities, missing
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.mapping import (
    BODY_LIMIT,
    DESCRIPTION_LENGTH,
    FOLLOW_FIELD,
    MESSAGE_ID_FIELD,
    PROFILE_URL_FIELD,
    SYNCED_AT_FIELD,
)
from connectors.salesforce.sandbox.app import SalesforceSandbox
from connectors.salesforce.sandbox.store import Field
from sync.errors import ActivitiesRefused, FatalConnectorError, RecordRejected, WriteUncertain
from tests.contract import ADA, TOKEN
from tests.doubles import RecordingTransport
from tests.unit.test_salesforce_erase import BASE, DATA, GRACE, LosesAnswer, created, make_crm

COLLECTIONS = f"{DATA}/composite/sobjects"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PICKLIST = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
READ_ONLY = "INVALID_FIELD_FOR_INSERT_UPDATE"


def conversation(count: int, *, prefix: str = "m") -> list[Message]:
    """``count`` short messages, oldest first, a minute apart, taking turns."""
    return [
        Message(
            f"{prefix}-{n}",
            "c-1",
            "me" if n % 2 else "them",
            START + timedelta(minutes=n),
            f"Message number {n} ✉️",
        )
        for n in range(1, count + 1)
    ]


def syncd_tasks(sandbox: SalesforceSandbox, who: str) -> list[dict[str, str | None]]:
    """The Tasks on ``who`` that carry a message id, oldest first (the Recycle Bin's not)."""
    return [t for t in sandbox.org.rows("Task") if t["WhoId"] == who and t[MESSAGE_ID_FIELD]]


async def write(crm: SalesforceCRM, record: str, messages: list[Message]) -> int:
    """What the relay does: the CRM's keys, then the missing activities; messages written."""
    held = await crm.message_ids(record)
    return (await crm.add_messages(record, missing(messages, held, BODY_LIMIT))).written


@pytest.fixture
def sandbox() -> SalesforceSandbox:
    return SalesforceSandbox(tokens=[TOKEN])


@pytest.fixture
async def api(sandbox: SalesforceSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the sandbox holding a fresh access token."""
    async with httpx.AsyncClient(
        base_url=BASE, transport=httpx.ASGITransport(app=sandbox.app)
    ) as client:
        grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
        token = (await client.post("/services/oauth2/token", data=grant)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


class TestTaskWrites:
    """Each activity is one completed Task on the person, 200 a call, all or none."""

    async def test_the_collections_body(self, sandbox: SalesforceSandbox) -> None:
        """One POST to sObject Collections with allOrNone and one Task per activity: WhoId,
        Status Completed, direction and time in the Subject, the body in Description, the
        day in ActivityDate and the key in syncd_message_id__c.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
        https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm
        """
        (ada,) = await created(sandbox, ADA)
        sent = Message("m-1", "c-1", "me", datetime(2026, 3, 1, 23, 59, 7, tzinfo=UTC), "Hi 👋")
        late = datetime(2026, 3, 2, 0, 30, tzinfo=UTC) + timedelta(hours=2)
        received = Message("m-2", "c-1", "them", late.astimezone(), "Hello!")
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        logged = await crm.add_messages(ada, missing([sent, received], set(), BODY_LIMIT))
        await crm.aclose()
        (post,) = recorder.to(COLLECTIONS, "POST")
        assert post.json() == {
            "allOrNone": True,
            "records": [
                {
                    "attributes": {"type": "Task"},
                    "WhoId": ada,
                    "Status": "Completed",
                    "Subject": "LinkedIn message sent 2026-03-01 23:59:07 UTC",
                    "Description": "Hi 👋",
                    "ActivityDate": "2026-03-01",
                    MESSAGE_ID_FIELD: "m-1",
                },
                {
                    "attributes": {"type": "Task"},
                    "WhoId": ada,
                    "Status": "Completed",
                    "Subject": "LinkedIn message received 2026-03-02 02:30:00 UTC",
                    "Description": "Hello!",
                    "ActivityDate": "2026-03-02",
                    MESSAGE_ID_FIELD: "m-2",
                },
            ],
        }
        assert (logged.written, logged.split) == (2, 0)
        stored = syncd_tasks(sandbox, ada)
        assert [(t["IsClosed"], t["Priority"]) for t in stored] == [("true", "Normal")] * 2
        assert all(t["CompletedDateTime"] for t in stored)

    async def test_more_than_200_go_in_calls_of_200(self, sandbox: SalesforceSandbox) -> None:
        """450 messages: three calls of 200, 200 and 50, in order, each message once."""
        (ada,) = await created(sandbox, ADA)
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        written = await write(crm, ada, conversation(450))
        await crm.aclose()
        sizes = [len(s.json()["records"]) for s in recorder.to(COLLECTIONS, "POST")]
        assert (written, sizes) == (450, [200, 200, 50])
        keys = [t[MESSAGE_ID_FIELD] for t in syncd_tasks(sandbox, ada)]
        assert keys == [f"m-{n}" for n in range(1, 451)]

    async def test_a_long_message_never_reaches_string_too_long(
        self, sandbox: SalesforceSandbox
    ) -> None:
        """A 70 000-character message of emoji is split so that every part fits the 32 000
        characters of Task.Description as Salesforce counts them (an emoji counts two)."""
        (ada,) = await created(sandbox, ADA)
        text = "🛠️ Grüße " * 7_000
        long = Message("m-long", "c-1", "them", START, text)
        crm = make_crm(sandbox)
        logged = await crm.add_messages(ada, missing([long], set(), BODY_LIMIT))
        await crm.aclose()
        parts = [t["Description"] or "" for t in syncd_tasks(sandbox, ada)]
        assert (logged.written, logged.split) == (1, 1)
        assert len(parts) == len(activities(long, BODY_LIMIT)) > 2
        assert all(len(p.encode("utf-16-le")) // 2 <= DESCRIPTION_LENGTH for p in parts)
        assert "".join(p.split(") ", 1)[1] for p in parts) == text
        posts = [r for r in sandbox.core.requests if (r.method, r.path) == ("POST", COLLECTIONS)]
        assert [r.status for r in posts] == [200]

    async def test_sandbox_counts_like_salesforce(self, api: httpx.AsyncClient) -> None:
        """16 001 emoji are 32 002 characters to Salesforce: STRING_TOO_LONG (Description),
        as a SaveResult in a 200 answer."""
        who = (
            await api.post(
                f"{DATA}/sobjects/Contact", json={"LastName": "Lovelace", "Email": "a@b.example"}
            )
        ).json()["id"]
        record = {"attributes": {"type": "Task"}, "WhoId": who, "Description": "😀" * 16_001}
        answer = await api.post(COLLECTIONS, json={"allOrNone": False, "records": [record]})
        (result,) = answer.json()
        assert answer.status_code == 200
        assert (result["success"], result["errors"][0]["statusCode"]) == (False, "STRING_TOO_LONG")
        assert result["errors"][0]["fields"] == ["Description"]

    async def test_a_split_message_half_written_is_finished(
        self, sandbox: SalesforceSandbox
    ) -> None:
        """A crash after part 1 of 3: the next run writes parts 2 and 3 only, and counts the
        message once."""
        (ada,) = await created(sandbox, ADA)
        long = Message("m-long", "c-1", "me", START, "x" * (BODY_LIMIT * 2 + 5))
        crm = make_crm(sandbox)
        await crm.add_messages(ada, activities(long, BODY_LIMIT)[:1])
        logged = await crm.add_messages(
            ada, missing([long], await crm.message_ids(ada), BODY_LIMIT)
        )
        await crm.aclose()
        keys = [t[MESSAGE_ID_FIELD] for t in syncd_tasks(sandbox, ada)]
        assert keys == ["m-long#1/3", "m-long#2/3", "m-long#3/3"]
        assert (logged.written, logged.split) == (1, 1)


class TestRefusals:
    """An org that will not take syncd's Tasks says why; nothing is half-written."""

    async def test_no_right_to_create_tasks(self, sandbox: SalesforceSandbox) -> None:
        """INSUFFICIENT_ACCESS_OR_READONLY is ActivitiesRefused with a sentence, no data."""
        (ada,) = await created(sandbox, ADA)
        sandbox.refuse_tasks()
        crm = make_crm(sandbox)
        with pytest.raises(ActivitiesRefused) as caught:
            await write(crm, ada, conversation(3))
        await crm.aclose()
        message = str(caught.value)
        assert "INSUFFICIENT_ACCESS_OR_READONLY" in message
        assert "create Tasks" in message
        assert "Message number" not in message
        assert "Ada" not in message
        assert syncd_tasks(sandbox, ada) == []
        assert sandbox.org.find("Contact", ada) is not None

    async def test_an_org_without_the_message_id_field(self, sandbox: SalesforceSandbox) -> None:
        """Without syncd_message_id__c on Task, listing and writing are ActivitiesRefused
        naming the field; no Task is written."""
        (ada,) = await created(sandbox, ADA)
        sandbox.drop_field("Task", MESSAGE_ID_FIELD)
        crm = make_crm(sandbox)
        with pytest.raises(ActivitiesRefused, match=MESSAGE_ID_FIELD) as listing:
            await crm.message_ids(ada)
        with pytest.raises(ActivitiesRefused, match=MESSAGE_ID_FIELD) as writing:
            await crm.add_messages(ada, missing(conversation(2), set(), BODY_LIMIT))
        await crm.aclose()
        assert "INVALID_FIELD" in str(listing.value)
        assert "INVALID_FIELD" in str(writing.value)
        assert list(sandbox.org.rows("Task")) == []

    async def test_another_refusal_rolls_the_call_back(self, sandbox: SalesforceSandbox) -> None:
        """An org whose closed status is not "Completed": RecordRejected with the code and
        field, and allOrNone leaves none of the call's Tasks."""
        (ada,) = await created(sandbox, ADA)
        statuses = ("Open", "Done")
        sandbox.org.schemas["Task"]["Status"] = Field("Status", "picklist", 40, values=statuses)
        crm = make_crm(sandbox)
        with pytest.raises(RecordRejected) as caught:
            await write(crm, ada, conversation(3))
        await crm.aclose()
        assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST (Status)" in str(caught.value)
        assert not isinstance(caught.value, ActivitiesRefused)
        assert syncd_tasks(sandbox, ada) == []

    async def test_one_bad_task_rolls_its_call_back(self, sandbox: SalesforceSandbox) -> None:
        """One Task of three refused (STRING_TOO_LONG): RecordRejected naming the code and
        field, and allOrNone leaves the other two unwritten too."""
        (ada,) = await created(sandbox, ADA)
        first, second = conversation(2)
        too_long = Activity("m-x", second, "😀" * (BODY_LIMIT + 1))
        batch = [*activities(first, BODY_LIMIT), too_long, *activities(second, BODY_LIMIT)]
        crm = make_crm(sandbox)
        with pytest.raises(RecordRejected, match=r"STRING_TOO_LONG \(Description\)"):
            await crm.add_messages(ada, batch)
        await crm.aclose()
        assert syncd_tasks(sandbox, ada) == []


class TestExactlyOnce:
    """What the org holds decides what is written: a lost answer, paging, archived Tasks."""

    async def test_a_lost_answer_then_the_rest(self, sandbox: SalesforceSandbox) -> None:
        """The first call's answer is lost: WriteUncertain, nothing resent; message_ids
        then shows the 200 that landed and the next run writes the other 50."""
        (ada,) = await created(sandbox, ADA)
        messages = conversation(250)
        lossy = LosesAnswer(sandbox, "POST", COLLECTIONS)
        crm = make_crm(sandbox, transport=lossy)
        with pytest.raises(WriteUncertain):
            await write(crm, ada, messages)
        landed = await crm.message_ids(ada)
        second = await write(crm, ada, messages)
        await crm.aclose()
        assert landed == {m.id for m in messages[:200]}
        assert second == 50
        keys = [t[MESSAGE_ID_FIELD] for t in syncd_tasks(sandbox, ada)]
        assert sorted(keys) == sorted(m.id for m in messages)
        posts = [r for r in sandbox.core.requests if (r.method, r.path) == ("POST", COLLECTIONS)]
        assert len(posts) == 2

    async def test_message_ids_reads_every_page(self) -> None:
        """With 2 rows a page, 5 Tasks are all listed (queryAll, then the page links)."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], query_batch_size=2)
        (ada,) = await created(sandbox, ADA)
        crm = make_crm(sandbox)
        await write(crm, ada, conversation(5))
        held = await crm.message_ids(ada)
        await crm.aclose()
        assert held == {f"m-{n}" for n in range(1, 6)}
        pages = [r.path for r in sandbox.core.requests if r.path.startswith(f"{DATA}/query")]
        assert len(pages) >= 2

    async def test_a_humans_task_is_never_counted(self, sandbox: SalesforceSandbox) -> None:
        """A Task a person logged, and another person's syncd Tasks, are not this record's."""
        ada, grace = await created(sandbox, ADA, GRACE)
        sandbox.seed("Task", {"WhoId": ada, "Subject": "Call", "Status": "Completed"})
        crm = make_crm(sandbox)
        await write(crm, grace, conversation(2, prefix="g"))
        held = await crm.message_ids(ada)
        await crm.aclose()
        assert held == frozenset()

    async def test_an_archived_task_still_counts(self, sandbox: SalesforceSandbox) -> None:
        """A Task Salesforce archived (a plain query no longer sees it) is still held: the
        message is not written again, and forget deletes it with the rest."""
        (ada,) = await created(sandbox, ADA)
        crm = make_crm(sandbox)
        await write(crm, ada, conversation(3))
        first = syncd_tasks(sandbox, ada)[0]["Id"]
        assert first is not None
        sandbox.archive(first)
        again = await write(crm, ada, conversation(3))
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert again == 0
        assert erased.activities == 3
        assert sandbox.org.deleted("Task", first) is not None

    async def test_export_dates_a_task_by_its_message(self, sandbox: SalesforceSandbox) -> None:
        """export gives each message's own time (from the Subject), not midnight."""
        (ada,) = await created(sandbox, ADA)
        crm = make_crm(sandbox)
        messages = conversation(2)
        await write(crm, ada, messages)
        held = await crm.export(ADA)
        await crm.aclose()
        assert held.activities == tuple(m.sent_at for m in messages)


class TestFollow:
    """The syncd_follow__c checkbox: written on the matched record, listed every page."""

    async def test_the_flag_write(self, sandbox: SalesforceSandbox) -> None:
        """follow PATCHes the record with the checkbox and syncd_synced_at__c; unfollow
        clears it.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
        """
        (ada,) = await created(sandbox, ADA)
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        await crm.set_follow(ADA, True)
        flagged = sandbox.org.require("Contact", ada)[FOLLOW_FIELD]
        await crm.set_follow(ADA, False)
        await crm.aclose()
        patches = recorder.to(f"{DATA}/sobjects/Contact/{ada}", "PATCH")
        assert [set(p.json()) for p in patches] == [{FOLLOW_FIELD, SYNCED_AT_FIELD}] * 2
        assert [p.json()[FOLLOW_FIELD] for p in patches] == [True, False]
        assert (flagged, sandbox.org.require("Contact", ada)[FOLLOW_FIELD]) == ("true", "false")

    async def test_followed_reads_every_page(self) -> None:
        """Five followed people with 2 rows a page: all five, each with its publicId; a
        record without a profile URL is left out."""
        sandbox = SalesforceSandbox(tokens=[TOKEN], query_batch_size=2)
        people = [
            Contact(
                f"urn:li:member:{n}",
                {
                    "first_name": f"F{n}",
                    "last_name": f"L{n}",
                    "linkedin_url": f"https://www.linkedin.com/in/Person-{n}/",
                },
            )
            for n in range(5)
        ]
        ids = await created(sandbox, *people)
        bare = sandbox.seed("Contact", {"LastName": "Nourl", FOLLOW_FIELD: "true"})
        crm = make_crm(sandbox)
        for person in people:
            await crm.set_follow(person, True)
        listed = await crm.followed()
        await crm.aclose()
        assert sorted(listed, key=lambda f: f.id) == [
            Followed(rid, f"person-{n}") for n, rid in enumerate(ids)
        ]
        assert bare not in {f.id for f in listed}

    async def test_a_lead_is_followed(self) -> None:
        """With object = "Lead" the checkbox is on the Lead."""
        sandbox = SalesforceSandbox(tokens=[TOKEN])
        crm = make_crm(sandbox, object="Lead")
        (made,) = await crm.upsert_contacts([ADA])
        marked = await crm.set_follow(ADA, True)
        listed = await crm.followed()
        await crm.aclose()
        assert (marked.found, marked.id) == (True, made.id)
        assert listed == [Followed(str(made.id), "ada-lovelace")]

    async def test_an_org_without_the_field(self, sandbox: SalesforceSandbox) -> None:
        """Without syncd_follow__c, follow and the list are fatal errors naming the field."""
        await created(sandbox, ADA)
        sandbox.drop_field("Contact", FOLLOW_FIELD)
        crm = make_crm(sandbox)
        with pytest.raises(FatalConnectorError, match=FOLLOW_FIELD) as setting:
            await crm.set_follow(ADA, True)
        with pytest.raises(FatalConnectorError, match=FOLLOW_FIELD):
            await crm.followed()
        await crm.aclose()
        assert "Checkbox" in str(setting.value)

    async def test_ambiguous_is_not_followed(self, sandbox: SalesforceSandbox) -> None:
        """Two records fit by name: nothing is flagged, both are named."""
        twins = {
            sandbox.seed(
                "Contact",
                {"FirstName": "Ada", "LastName": "Lovelace"},
                account="Analytical Engines",
            )
            for _ in range(2)
        }
        crm = make_crm(sandbox)
        presence = await crm.set_follow(ADA, True)
        await crm.aclose()
        assert (presence.found, set(presence.candidates)) == (False, twins)
        assert all(r[FOLLOW_FIELD] == "false" for r in sandbox.org.rows("Contact"))


class TestSandboxShapes:
    """The sandbox answers Task and checkbox writes as Salesforce does."""

    async def test_unknown_field_fails_the_whole_request(self, api: httpx.AsyncClient) -> None:
        """A field Task does not have: 400 INVALID_FIELD for the request, nothing made."""
        record = {"attributes": {"type": "Task"}, "Subject": "x", "Nope__c": "y"}
        answer = await api.post(COLLECTIONS, json={"records": [record]})
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "INVALID_FIELD"

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            pytest.param({"Status": "Finished"}, PICKLIST, id="picklist"),
            pytest.param({"CompletedDateTime": "2026-03-01T09:00Z"}, READ_ONLY, id="read-only"),
            pytest.param({"Id": "00T5g000000000001AAA"}, "INVALID_FIELD", id="id-on-create"),
            pytest.param({"WhoId": "003000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", id="who"),
        ],
    )  # fmt: skip
    async def test_record_errors(
        self, api: httpx.AsyncClient, fields: dict[str, str], code: str
    ) -> None:
        """A bad Task is a failed SaveResult with its code; allOrNone=false keeps the rest."""
        good = {"attributes": {"type": "Task"}, "Subject": "fine"}
        bad = {"attributes": {"type": "Task"}, "Subject": "bad", **fields}
        answer = await api.post(COLLECTIONS, json={"allOrNone": False, "records": [good, bad]})
        first, second = answer.json()
        assert (answer.status_code, first["success"], second["success"]) == (200, True, False)
        assert second["errors"][0]["statusCode"] == code

    async def test_checkbox_values(
        self, api: httpx.AsyncClient, sandbox: SalesforceSandbox
    ) -> None:
        """A checkbox takes true/false, answers JSON booleans, is false by default, and is
        found by ``= true``; any other value is JSON_PARSER_ERROR."""
        made = await api.post(f"{DATA}/sobjects/Contact", json={"LastName": "A"})
        rid = made.json()["id"]
        default = (await api.get(f"{DATA}/sobjects/Contact/{rid}")).json()[FOLLOW_FIELD]
        bad = await api.patch(f"{DATA}/sobjects/Contact/{rid}", json={FOLLOW_FIELD: "yes"})
        await api.patch(f"{DATA}/sobjects/Contact/{rid}", json={FOLLOW_FIELD: True})
        query = f"SELECT Id, {PROFILE_URL_FIELD} FROM Contact WHERE {FOLLOW_FIELD} = true"  # noqa: S608 - constants
        found = (await api.get(f"{DATA}/query", params={"q": query})).json()["records"]
        assert default is False
        assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
        assert [r["Id"] for r in found] == [rid]
