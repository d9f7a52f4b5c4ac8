"""HubSpot's own Python client (``hubspot-api-client``, over urllib3) against the sandbox
served on a real loopback port: the sandbox speaks the shapes the official client sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest
from hubspot import HubSpot  # type: ignore[import-untyped]  # the vendor ships no types
from hubspot.crm.objects.communications import (  # type: ignore[import-untyped]  # no types
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
)
from hubspot.crm.objects.communications.exceptions import (  # type: ignore[import-untyped]  # no types
    ApiException,
)

from connectors.hubspot.sandbox.app import HubSpotSandbox
from rig.loopback import bind_loopback, url_of
from sync.asgi import serve
from tests.contract import TOKEN

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[HubSpotSandbox, str]]:
    """The sandbox on a loopback port, with one contact in it (entered and left in the test's
    own task, as anyio's task group needs)."""
    sandbox = HubSpotSandbox(tokens=[TOKEN])
    sandbox.store.create({"firstname": "Ada", "lastname": "Lovelace"})
    sock = bind_loopback()
    async with anyio.create_task_group() as tg:
        await tg.start(partial(serve, sandbox.app, sock, graceful_seconds=1))
        yield sandbox, url_of(sock)
        tg.cancel_scope.cancel()


def _message(contact_id: str, body: str) -> SimplePublicObjectBatchInputForCreate:
    return SimplePublicObjectBatchInputForCreate(
        properties={
            "hs_communication_channel_type": "LINKEDIN_MESSAGE",
            "hs_communication_logged_from": "CRM",
            "hs_communication_body": body,
            "hs_timestamp": "2026-03-01T09:01:00.000Z",
        },
        associations=[
            PublicAssociationsForObject(
                to=PublicObjectId(id=contact_id),
                types=[
                    AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=81)
                ],
            )
        ],
    )


class TestOfficialClient:
    """What hubspot-api-client sends, the sandbox takes; what it answers, the client reads."""

    async def test_create_with_association_and_read_back(self) -> None:
        """batch create (associated to the contact, type 81), then batch read and the v4
        association list: the communication is there, on the contact, byte for byte."""
        async with serving() as (sandbox, url):
            made_id, body, linked = await self._roundtrip(sandbox, url)
        (contact_id,) = sandbox.store.contacts
        assert body == "Grüße 👋🏽 — مرحبا"
        assert linked == [made_id]
        assert [c.id for c in sandbox.communications.of(contact_id)] == [made_id]

    async def _roundtrip(
        self, sandbox: HubSpotSandbox, url: str
    ) -> tuple[str, str | None, list[str]]:
        (contact_id,) = sandbox.store.contacts
        client = HubSpot(access_token=TOKEN, host=url)
        text = "Grüße 👋🏽 — مرحبا"

        def roundtrip() -> tuple[str, str | None, list[str]]:
            made = client.crm.objects.communications.batch_api.create(
                BatchInputSimplePublicObjectBatchInputForCreate(inputs=[_message(contact_id, text)])
            )
            (created,) = made.results
            read = client.crm.objects.communications.batch_api.read(
                BatchReadInputSimplePublicObjectId(
                    inputs=[SimplePublicObjectId(id=created.id)],
                    properties=["hs_communication_body"],
                    properties_with_history=[],
                )
            )
            linked = client.crm.associations.v4.basic_api.get_page(
                "contact", contact_id, "communication", limit=500
            )
            return (
                created.id,
                read.results[0].properties["hs_communication_body"],
                [str(r.to_object_id) for r in linked.results],
            )

        return await anyio.to_thread.run_sync(roundtrip)

    async def test_a_missing_scope_is_a_403_the_client_reports(self) -> None:
        """A token without the scope gets HubSpot's 403 MISSING_SCOPES, as the official
        client sees it (an ApiException with that status and category)."""
        async with serving() as (sandbox, url):
            refused = await self._refused(sandbox, url)
        assert refused.status == 403
        assert "MISSING_SCOPES" in str(refused.body)
        assert sandbox.communications.communications == {}

    async def _refused(self, sandbox: HubSpotSandbox, url: str) -> ApiException:
        (contact_id,) = sandbox.store.contacts
        sandbox.deny_communications(TOKEN)
        client = HubSpot(access_token=TOKEN, host=url)

        def create() -> ApiException:
            try:
                client.crm.objects.communications.batch_api.create(
                    BatchInputSimplePublicObjectBatchInputForCreate(
                        inputs=[_message(contact_id, "x")]
                    )
                )
            except ApiException as refused:
                return refused
            raise AssertionError("the sandbox accepted a token without the scope")

        return await anyio.to_thread.run_sync(create)
