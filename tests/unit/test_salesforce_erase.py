"""Salesforce `forget` and `export`: syncd's Tasks and the record go to the Recycle Bin, a
human's Task stays, a lost DELETE answer goes up; export reads the record and Task dates;
every write stamps syncd_synced_at__c. Against the sandbox, in process over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import ConnectorSettings, Contact
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.mapping import MESSAGE_ID_FIELD, SYNCED_AT_FIELD
from connectors.salesforce.sandbox.app import SalesforceSandbox
from connectors.salesforce.sandbox.store import RECYCLE_BIN_DAYS
from sync.errors import RecordRejected, WriteUncertain
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, with_fields
from tests.doubles import FakeClock, RecordingTransport

BASE = "http://127.0.0.1:8765"
DATA = "/services/data/v62.0"
GRACE = Contact(
    "urn:li:member:9100",
    {"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example"},
)


class LosesAnswer(httpx.AsyncBaseTransport):
    """Lets the sandbox apply the first request of ``method`` on ``path_prefix``, then
    breaks the connection before its answer arrives, as a network can."""

    def __init__(self, app: SalesforceSandbox, method: str, path_prefix: str) -> None:
        self.inner = httpx.ASGITransport(app=app.app)
        self.method, self.path_prefix = method, path_prefix
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        hit = request.method == self.method and request.url.path.startswith(self.path_prefix)
        if hit and not self.lost:
            self.lost.append(request.url.path)
            raise httpx.ReadError("connection reset by peer")
        return response


def make_crm(
    sandbox: SalesforceSandbox,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    **options: object,
) -> SalesforceCRM:
    settings = ConnectorSettings(
        "salesforce",
        "salesforce",
        "https://login.salesforce.com",
        options={"login_url": BASE, **options},
    )
    return SalesforceCRM(
        settings,
        sandbox.credential(TOKEN),
        transport=transport or httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=3, sleep=FakeClock().sleep),
    )


def task(sandbox: SalesforceSandbox, who: str, message_id: str | None, **fields: str) -> str:
    """A Task on ``who``: syncd's when it carries a message id, else one a person logged."""
    values = {"WhoId": who, "Subject": "LinkedIn message", "Status": "Completed", **fields}
    if message_id is not None:
        values[MESSAGE_ID_FIELD] = message_id
    return sandbox.seed("Task", values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> SalesforceSandbox:
    return SalesforceSandbox(tokens=[TOKEN], clock=clock.monotonic)


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


async def created(sandbox: SalesforceSandbox, *people: Contact) -> list[str]:
    crm = make_crm(sandbox)
    outcomes = await crm.upsert_contacts(list(people))
    await crm.aclose()
    return [str(o.id) for o in outcomes]


class TestErase:
    """forget deletes the person's record and only the Tasks syncd wrote on it."""

    async def test_deletes_syncd_tasks_and_keeps_a_humans(self, sandbox: SalesforceSandbox) -> None:
        """Tasks carrying a message id go with the record; a person's Task and another
        person's Tasks stay."""
        ada, grace = await created(sandbox, ADA, GRACE)
        ours = [task(sandbox, ada, f"msg-{n}") for n in range(3)]
        humans = task(sandbox, ada, None, Subject="Call about the engine")
        graces = task(sandbox, grace, "msg-grace")
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.activities) == ("erased", ada, 3)
        assert all(sandbox.org.deleted("Task", t) is not None for t in ours)
        assert sandbox.org.find("Task", humans) is not None
        assert sandbox.org.find("Task", graces) is not None
        (batch,) = recorder.to(f"{DATA}/composite/sobjects", "DELETE")
        assert batch.url.params["ids"].split(",") == ours
        assert [s.path for s in recorder.to(f"{DATA}/sobjects/", "DELETE")] == [
            f"{DATA}/sobjects/Contact/{ada}"
        ]
        assert sandbox.contact_count() == 1

    async def test_without_tasks_one_delete(self, sandbox: SalesforceSandbox) -> None:
        """A person with no syncd Task costs one DELETE, of the record."""
        (ada,) = await created(sandbox, ADA)
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.activities) == ("erased", 0)
        assert [(s.method, s.path) for s in recorder.sent if s.method == "DELETE"] == [
            ("DELETE", f"{DATA}/sobjects/Contact/{ada}")
        ]

    async def test_record_lands_in_the_recycle_bin(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        """queryAll sees the erased record with IsDeleted true, query does not; a read says
        ENTITY_IS_DELETED; 15 days later it is purged."""
        (ada,) = await created(sandbox, ADA)
        crm = make_crm(sandbox)
        await crm.erase(ADA)
        await crm.aclose()
        q = {"q": f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{ada}'"}  # noqa: S608
        live = (await api.get(f"{DATA}/query", params=q)).json()
        every = (await api.get(f"{DATA}/queryAll", params=q)).json()
        read = await api.get(f"{DATA}/sobjects/Contact/{ada}")
        assert live["records"] == []
        assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(ada, True)]
        assert read.status_code == 404
        assert read.json() == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}]
        clock.advance(RECYCLE_BIN_DAYS * 86_400 - 1)
        assert (await api.get(f"{DATA}/queryAll", params=q)).json()["totalSize"] == 1
        clock.advance(1)
        assert (await api.get(f"{DATA}/queryAll", params=q)).json()["totalSize"] == 0

    async def test_lost_answer_goes_up_and_a_rerun_is_absent(
        self, sandbox: SalesforceSandbox
    ) -> None:
        """The record's DELETE applied but its answer lost: WriteUncertain, not a resend;
        erase run again finds no one."""
        (ada,) = await created(sandbox, ADA)
        lossy = LosesAnswer(sandbox, "DELETE", f"{DATA}/sobjects/Contact/")
        crm = make_crm(sandbox, transport=lossy)
        with pytest.raises(WriteUncertain):
            await crm.erase(ADA)
        again = await crm.erase(ADA)
        await crm.aclose()
        assert lossy.lost == [f"{DATA}/sobjects/Contact/{ada}"]
        assert [r.method for r in sandbox.core.requests].count("DELETE") == 1
        assert again.outcome == "absent"
        assert sandbox.org.deleted("Contact", ada) is not None

    async def test_refused_task_delete_keeps_the_record(self, sandbox: SalesforceSandbox) -> None:
        """When the Tasks cannot be deleted the record stays, so a later forget finds them."""
        (ada,) = await created(sandbox, ADA)
        task(sandbox, ada, "msg-1")
        sandbox.core.fail_next(400, path_prefix=f"{DATA}/composite/sobjects")
        crm = make_crm(sandbox)
        with pytest.raises(RecordRejected):
            await crm.erase(ADA)
        await crm.aclose()
        assert sandbox.org.find("Contact", ada) is not None

    async def test_a_lead_is_erased(self, sandbox: SalesforceSandbox) -> None:
        """With object = "Lead" the Lead is found and deleted, its Tasks with it."""
        crm = make_crm(sandbox, object="Lead")
        (made,) = await crm.upsert_contacts([ADA])
        task(sandbox, str(made.id), "msg-1")
        erased = await crm.erase(ADA)
        await crm.aclose()
        assert (erased.outcome, erased.id, erased.activities) == ("erased", made.id, 1)
        assert sandbox.org.deleted("Lead", str(made.id)) is not None


class TestExport:
    """export reads the record, when syncd wrote it, and the dates of syncd's Tasks."""

    async def test_task_dates_oldest_first(self, sandbox: SalesforceSandbox) -> None:
        """Each syncd Task's ActivityDate (its CreatedDate when it has none), oldest first;
        a person's Task is not syncd's and is left out."""
        (ada,) = await created(sandbox, ADA)
        task(sandbox, ada, "msg-2", ActivityDate="2024-03-05")
        task(sandbox, ada, "msg-1", ActivityDate="2023-11-20")
        undated = task(sandbox, ada, "msg-3")
        task(sandbox, ada, None, ActivityDate="2020-01-01")
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        held = await crm.export(ADA)
        await crm.aclose()
        made = sandbox.org.find("Task", undated)
        assert made is not None
        assert held.activities == (
            datetime(2023, 11, 20, tzinfo=UTC),
            datetime(2024, 3, 5, tzinfo=UTC),
            datetime.fromisoformat(str(made["CreatedDate"])),
        )
        assert {s.method for s in recorder.sent} == {"GET", "POST"}
        assert [s.path for s in recorder.sent if s.method == "POST"] == ["/services/oauth2/token"]

    async def test_fields_link_and_synced_at(self, sandbox: SalesforceSandbox) -> None:
        """The mapped fields, the Lightning link and the stored syncd_synced_at__c."""
        (ada,) = await created(sandbox, ADA)
        crm = make_crm(sandbox)
        held = await crm.export(ADA)
        await crm.aclose()
        stored = sandbox.org.find("Contact", ada)
        assert stored is not None
        assert held.url == f"{BASE}/lightning/r/Contact/{ada}/view"
        assert held.synced_at == stored[SYNCED_AT_FIELD]
        assert held.fields["company"] == "Analytical Engines"
        assert held.activities == ()


class TestSyncedAt:
    """Every write carries syncd_synced_at__c in Salesforce's DateTime format."""

    async def test_writes_carry_the_stamp(self, sandbox: SalesforceSandbox) -> None:
        """The create and the update send a UTC DateTime; an unchanged upsert sends none."""
        recorder = RecordingTransport.over(sandbox.app)
        crm = make_crm(sandbox, transport=recorder)
        before = datetime.now(UTC).replace(microsecond=0)
        await crm.upsert_contacts([ADA])
        await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0003")])
        await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0003")])
        await crm.aclose()
        bodies = [s.json() for s in recorder.sent if s.method == "PATCH"]
        assert len(bodies) == 2
        for body in bodies:
            stamp = body[SYNCED_AT_FIELD]
            assert stamp.endswith("+0000")
            assert len(stamp) == len("2024-05-20T20:49:32.000+0000")
            assert datetime.fromisoformat(stamp) >= before

    @pytest.mark.parametrize(
        ("value", "stored"),
        [
            pytest.param("2024-05-20T20:49:32Z", "2024-05-20T20:49:32.000+0000", id="zulu"),
            pytest.param(
                "2024-05-20T22:49:32.5+02:00", "2024-05-20T20:49:32.500+0000", id="offset"
            ),
        ],
    )
    async def test_sandbox_stores_datetimes_in_utc(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient, value: str, stored: str
    ) -> None:
        """A DateTime with any offset is stored and answered in UTC, as Salesforce does."""
        answer = await api.post(
            f"{DATA}/sobjects/Contact", json={"LastName": "T", SYNCED_AT_FIELD: value}
        )
        held = sandbox.org.find("Contact", answer.json()["id"])
        assert held is not None
        assert held[SYNCED_AT_FIELD] == stored

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("yesterday", id="words"),
            pytest.param("2024-13-01T00:00:00Z", id="month-13"),
            pytest.param("2024-05-20 20:49:32", id="no-T-no-zone"),
        ],
    )
    async def test_sandbox_refuses_a_bad_datetime(self, api: httpx.AsyncClient, value: str) -> None:
        """A value Salesforce cannot read as a DateTime is 400 JSON_PARSER_ERROR."""
        answer = await api.post(
            f"{DATA}/sobjects/Contact", json={"LastName": "T", SYNCED_AT_FIELD: value}
        )
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


class TestSandboxDelete:
    """DELETE of one row and of a collection answer as Salesforce documents."""

    async def test_collection_delete_results_in_order(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient
    ) -> None:
        """One DeleteResult per id in order: deleted, already deleted, malformed."""
        one = sandbox.seed("Contact", {"LastName": "One"})
        two = sandbox.seed("Contact", {"LastName": "Two"})
        await api.delete(f"{DATA}/sobjects/Contact/{two}")
        answer = await api.delete(
            f"{DATA}/composite/sobjects", params={"ids": f"{one},{two},nonsense"}
        )
        first, second, third = answer.json()
        assert answer.status_code == 200
        assert first == {"id": one, "success": True, "errors": []}
        assert second["success"] is False
        assert second["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
        assert third["errors"][0]["statusCode"] == "MALFORMED_ID"
        assert sandbox.contact_count() == 0

    async def test_all_or_none_rolls_back(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient
    ) -> None:
        """With allOrNone=true one bad id keeps every record where it was."""
        one = sandbox.seed("Contact", {"LastName": "One"})
        answer = await api.delete(
            f"{DATA}/composite/sobjects", params={"ids": f"{one},nonsense", "allOrNone": "true"}
        )
        results = answer.json()
        assert [r["success"] for r in results] == [False, False]
        assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert sandbox.org.find("Contact", one) is not None

    async def test_single_delete_answers(
        self, sandbox: SalesforceSandbox, api: httpx.AsyncClient
    ) -> None:
        """204 once; then 404 ENTITY_IS_DELETED; an id that never was is 404 NOT_FOUND."""
        one = sandbox.seed("Contact", {"LastName": "One"})
        first = await api.delete(f"{DATA}/sobjects/Contact/{one}")
        second = await api.delete(f"{DATA}/sobjects/Contact/{one}")
        never = await api.delete(f"{DATA}/sobjects/Contact/003000000000000AAA")
        assert first.status_code == 204
        assert (second.status_code, second.json()[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
        assert (never.status_code, never.json()[0]["errorCode"]) == (404, "NOT_FOUND")
