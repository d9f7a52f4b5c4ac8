"""HubSpot forget and export: the GDPR delete the client sends (and the plain DELETE it never
sends), the sandbox's GDPR delete as HubSpot documents it, and ``syncd_synced_at``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import SYNCED_AT, ConnectorSettings
from connectors.hubspot.client import GDPR_DELETE, HubSpotCRM
from connectors.hubspot.mapping import CUSTOM_PROPERTIES
from connectors.hubspot.sandbox.app import HubSpotSandbox
from sync.errors import ConnectorError, WriteUncertain
from sync.retry import RetryPolicy
from tests.contract import ADA, TOKEN, with_fields
from tests.doubles import FakeClock, RecordingTransport

BASE = "http://sandbox.test"
CONTACTS = "/crm/v3/objects/contacts"


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


@pytest.fixture
async def api(sandbox: HubSpotSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the sandbox, holding the valid token."""
    async with httpx.AsyncClient(
        base_url=BASE,
        transport=httpx.ASGITransport(app=sandbox.app),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class TestEraseRequest:
    """erase() finds the person, then sends exactly HubSpot's GDPR delete."""

    async def test_one_gdpr_delete_with_the_record_id(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """The body is ``{"objectId": "<record id>"}``: HubSpot's PublicGdprDeleteInput
        requires ``objectId`` (a string) and takes an optional ``idProperty``, left out so
        the id is the record's own (HubSpot-public-api-spec-collection, CRM/Contacts v3)."""
        (created,) = await crm.upsert_contacts([ADA])
        erased = await crm.erase(ADA)
        (sent,) = wire.to(GDPR_DELETE)
        assert (sent.method, sent.path) == ("POST", "/crm/v3/objects/contacts/gdpr-delete")
        assert sent.url.query == b""
        assert sent.json() == {"objectId": created.id}
        assert isinstance(sent.json()["objectId"], str)
        assert (erased.outcome, erased.id, erased.activities) == ("erased", created.id, 0)
        statuses = [r.status for r in sandbox.core.requests if r.path == GDPR_DELETE]
        assert statuses == [204]

    async def test_a_plain_delete_is_never_sent(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """Neither DELETE nor batch/archive (both restorable for 90 days) is ever sent, and
        the erased contact is not in the sandbox's archive."""
        (created,) = await crm.upsert_contacts([ADA])
        await crm.erase(ADA)
        again = await crm.erase(ADA)
        assert again.outcome == "absent"
        assert [s for s in wire.sent if s.method == "DELETE"] == []
        assert wire.to(f"{CONTACTS}/batch/archive") == []
        assert created.id not in sandbox.store.archived
        assert len(wire.to(GDPR_DELETE)) == 1

    async def test_the_company_stays_and_its_link_goes(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """The person's company is not the person's data: it stays; the association goes."""
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        assert sandbox.company_names(created.id) == ["Analytical Engines"]
        await crm.erase(ADA)
        assert [co.properties["name"] for co in sandbox.companies.companies.values()] == [
            "Analytical Engines"
        ]
        assert created.id not in sandbox.companies.links

    async def test_ambiguous_sends_no_delete(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """Two name-and-company twins: nothing is sent to the GDPR delete."""
        twin = {"firstname": "Ada", "lastname": "Lovelace", "company": "Analytical Engines"}
        for _ in range(2):
            sandbox.store.create(sandbox.store.validate(twin))
        erased = await crm.erase(ADA)
        assert erased.outcome == "ambiguous"
        assert wire.to(GDPR_DELETE) == []
        assert sandbox.contact_count() == 2

    async def test_a_lost_answer_is_write_uncertain_and_erasing_again_is_absent(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """The delete happened but its answer broke: WriteUncertain, sent once; the re-run
        the relay makes finds the person absent and sends nothing more."""
        await crm.upsert_contacts([ADA])
        sandbox.core.garbage_next("corrupt_gzip", applied=True, path_prefix=GDPR_DELETE)
        with pytest.raises(WriteUncertain):
            await crm.erase(ADA)
        assert sandbox.contact_count() == 0
        assert len(wire.to(GDPR_DELETE)) == 1
        again = await crm.erase(ADA)
        assert again.outcome == "absent"
        assert len(wire.to(GDPR_DELETE)) == 1

    async def test_a_contact_gone_since_the_lookup_is_absent(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """A 404 from the GDPR delete (the contact went between lookup and delete) is
        ``absent``, not an error."""
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None

        def vanish(request: httpx.Request) -> None:
            if request.url.path == GDPR_DELETE:
                sandbox.store.contacts.pop(str(created.id), None)

        racing = HubSpotCRM(
            ConnectorSettings("hubspot", "hubspot", BASE),
            TOKEN,
            transport=RecordingTransport.over(sandbox.app, before=vanish),
            retry=RetryPolicy(attempts=4, sleep=FakeClock().sleep),
        )
        erased = await racing.erase(ADA)
        await racing.aclose()
        assert erased.outcome == "absent"
        assert [r.status for r in sandbox.core.requests if r.path == GDPR_DELETE] == [404]

    async def test_a_404_that_is_not_hubspots_is_an_error(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """A 404 without HubSpot's OBJECT_NOT_FOUND (a proxy, a wrong path) is never
        reported as ``absent``: the person may still be there."""
        await crm.upsert_contacts([ADA])
        sandbox.core.fail_next(
            404, path_prefix=GDPR_DELETE, body=b"<html>Not Found</html>", content_type="text/html"
        )
        with pytest.raises(ConnectorError):
            await crm.erase(ADA)
        assert sandbox.contact_count() == 1


class TestExport:
    """export() reads what HubSpot holds and writes nothing."""

    async def test_export_reads_back_and_writes_nothing(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """Only reads go out (GET, batch/read, search); the stamp is the stored one."""
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        before = len(wire.sent)
        held = await crm.export(ADA)
        reads = {f"{CONTACTS}/batch/read", f"{CONTACTS}/search"}
        for sent in wire.sent[before:]:
            assert sent.method == "GET" or sent.path in reads, sent.path
        assert held.synced_at == sandbox.store.contacts[created.id].properties[SYNCED_AT]
        assert held.activities == ()
        assert "phone" not in held.fields


class TestSyncedAt:
    """syncd_synced_at is a datetime property, set by every write and by nothing else."""

    async def test_the_property_is_a_datetime_that_says_what_it_is(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """syncd creates it as type datetime, field type date, described as its stamp."""
        await crm.upsert_contacts([ADA])
        definition = sandbox.store.properties[SYNCED_AT]
        assert (definition["type"], definition["fieldType"]) == ("datetime", "date")
        assert "syncd" in definition["label"]
        assert "each write" in definition["description"]

    async def test_writes_send_an_iso_utc_stamp(
        self, crm: HubSpotCRM, wire: RecordingTransport
    ) -> None:
        """The create and the update each carry the time of the write, ISO 8601 UTC."""
        start = datetime.now(UTC).replace(microsecond=0)
        await crm.upsert_contacts([ADA])
        await crm.upsert_contacts([with_fields(ADA, phone="+44 20 7946 0003")])
        (create,) = wire.to(f"{CONTACTS}/batch/create")
        (update,) = wire.to(f"{CONTACTS}/batch/update")
        stamps = [
            create.json()["inputs"][0]["properties"][SYNCED_AT],
            update.json()["inputs"][0]["properties"][SYNCED_AT],
        ]
        for stamp in stamps:
            assert stamp.endswith("Z")
            assert start <= _instant(stamp) <= datetime.now(UTC)

    async def test_an_unchanged_upsert_does_not_move_the_stamp(
        self, crm: HubSpotCRM, wire: RecordingTransport, sandbox: HubSpotSandbox
    ) -> None:
        """Nothing to write means nothing is written, the stamp included."""
        (created,) = await crm.upsert_contacts([ADA])
        assert created.id is not None
        first = sandbox.store.contacts[created.id].properties[SYNCED_AT]
        (again,) = await crm.upsert_contacts([ADA])
        assert again.outcome == "unchanged"
        assert wire.to(f"{CONTACTS}/batch/update") == []
        assert sandbox.store.contacts[created.id].properties[SYNCED_AT] == first


class TestSandboxGdprDelete:
    """The sandbox's gdpr-delete and datetime values, as HubSpot documents them."""

    async def test_by_id_is_204_and_permanent(
        self, api: httpx.AsyncClient, sandbox: HubSpotSandbox
    ) -> None:
        """204 with no body; the contact is gone, not archived, where a plain DELETE
        archives."""
        kept = (await api.post(CONTACTS, json={"properties": {"email": "k@b.example"}})).json()
        gone = (await api.post(CONTACTS, json={"properties": {"email": "g@b.example"}})).json()
        purged = await api.post(GDPR_DELETE, json={"objectId": gone["id"]})
        archived = await api.delete(f"{CONTACTS}/{kept['id']}")
        assert (purged.status_code, purged.content) == (204, b"")
        assert archived.status_code == 204
        assert (await api.get(f"{CONTACTS}/{gone['id']}")).status_code == 404
        assert set(sandbox.store.archived) == {kept["id"]}
        assert purged.headers["X-HubSpot-Correlation-Id"]

    @pytest.mark.parametrize(
        ("body", "status", "category"),
        [
            pytest.param({"objectId": "999999"}, 404, "OBJECT_NOT_FOUND", id="missing-id"),
            pytest.param({}, 400, "VALIDATION_ERROR", id="no-object-id"),
            pytest.param({"objectId": ""}, 400, "VALIDATION_ERROR", id="empty-object-id"),
            pytest.param(
                {"objectId": "x", "idProperty": "firstname"},
                400,
                "VALIDATION_ERROR",
                id="not-a-unique-property",
            ),
        ],
    )
    async def test_refusals_are_hubspot_error_bodies(
        self, api: httpx.AsyncClient, body: dict[str, str], status: int, category: str
    ) -> None:
        """A missing id is 404, a bad body 400, each with HubSpot's error body."""
        answer = await api.post(GDPR_DELETE, json=body)
        error = answer.json()
        assert (answer.status_code, error["status"], error["category"]) == (
            status,
            "error",
            category,
        )
        assert error["correlationId"] == answer.headers["X-HubSpot-Correlation-Id"]

    async def test_an_unknown_email_is_blocklisted(
        self, api: httpx.AsyncClient, sandbox: HubSpotSandbox
    ) -> None:
        """By email with no such contact: 204, and that email is then refused on a create
        (single or batch) with a validation error; other emails still go in."""
        blocked = await api.post(
            GDPR_DELETE, json={"objectId": "Gone@B.example", "idProperty": "email"}
        )
        single = await api.post(CONTACTS, json={"properties": {"email": "gone@b.example"}})
        batch = await api.post(
            f"{CONTACTS}/batch/create",
            json={"inputs": [{"properties": {"email": "GONE@b.example"}}]},
        )
        other = await api.post(CONTACTS, json={"properties": {"email": "here@b.example"}})
        assert blocked.status_code == 204
        for refused in (single, batch):
            assert (refused.status_code, refused.json()["category"]) == (400, "VALIDATION_ERROR")
            assert refused.json()["errors"][0]["code"] == "BLOCKLISTED_EMAIL"
        assert other.status_code == 201
        assert sandbox.contact_count() == 1

    async def test_an_existing_email_is_deleted_not_blocklisted(
        self, api: httpx.AsyncClient, sandbox: HubSpotSandbox
    ) -> None:
        """By email of a contact: that contact is deleted; the blocklist is for emails that
        matched no one."""
        await api.post(CONTACTS, json={"properties": {"email": "a@b.example"}})
        answer = await api.post(
            GDPR_DELETE, json={"objectId": "a@b.example", "idProperty": "email"}
        )
        assert answer.status_code == 204
        assert sandbox.contact_count() == 0
        assert sandbox.store.blocklist == set()

    async def test_the_client_reports_a_blocklisted_person_without_their_data(
        self, crm: HubSpotCRM, sandbox: HubSpotSandbox
    ) -> None:
        """Relaying a person whose email was blocklisted fails with the code, not the email."""
        sandbox.store.gdpr_delete(ADA.fields["email"], "email")
        (outcome,) = await crm.upsert_contacts([ADA])
        assert (outcome.outcome, outcome.reason) == ("failed", "rejected")
        assert "BLOCKLISTED_EMAIL" in outcome.detail
        assert ADA.fields["email"] not in outcome.detail

    @pytest.mark.parametrize(
        ("value", "stored"),
        [
            pytest.param("1427997766000", "2015-04-02T18:02:46.000Z", id="epoch-ms"),
            pytest.param("2015-04-02T20:02:46.5+02:00", "2015-04-02T18:02:46.500Z", id="offset"),
            pytest.param("2015-04-02T18:02:46Z", "2015-04-02T18:02:46.000Z", id="utc"),
            pytest.param("yesterday", None, id="words"),
            pytest.param("2015-04-02", None, id="date-only"),
            pytest.param("2015-04-02T18:02:46", None, id="no-offset"),
        ],
    )
    async def test_datetime_values(
        self, api: httpx.AsyncClient, sandbox: HubSpotSandbox, value: str, stored: str | None
    ) -> None:
        """A datetime property takes ISO 8601 with an offset or epoch milliseconds, answers
        ISO 8601 UTC with milliseconds, and refuses anything else with a 400."""
        sandbox.store.add_property(next(d for d in CUSTOM_PROPERTIES if d["name"] == SYNCED_AT))
        answer = await api.post(CONTACTS, json={"properties": {SYNCED_AT: value}})
        if stored is None:
            assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")
            assert answer.json()["errors"][0]["code"] == "INVALID_DATETIME"
            assert sandbox.contact_count() == 0
        else:
            assert answer.status_code == 201
            assert answer.json()["properties"][SYNCED_AT] == stored
