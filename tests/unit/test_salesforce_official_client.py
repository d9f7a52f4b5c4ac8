"""Salesforce's shapes as the official client sends them: simple-salesforce, pointed at the
sandbox served over TLS on a real loopback port, creates Tasks (one by one and through
sObject Collections), queries them back page by page, and syncd's client reads what it
wrote."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from anyio.abc import TaskStatus
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce

from connectors.base import ConnectorSettings
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.mapping import MESSAGE_ID_FIELD
from connectors.salesforce.sandbox.app import SalesforceSandbox
from rig.loopback import bind_loopback
from sync.retry import RetryPolicy
from tests.contract import TOKEN
from tests.doubles import FakeClock

VERSION = "62.0"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Server(uvicorn.Server):
    """uvicorn that leaves the test process's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _serve(
    config: uvicorn.Config,
    sock: socket.socket,
    *,
    task_status: TaskStatus[uvicorn.Server] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """As ``sync.asgi.serve``, with the TLS settings of ``config``."""
    config.load()
    server = _Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    task_status.started(server)
    try:
        await server.main_loop()
    finally:
        with anyio.CancelScope(shield=True):
            await server.shutdown(sockets=[sock])


@contextlib.asynccontextmanager
async def served_over_tls(sandbox: SalesforceSandbox, folder: Path) -> AsyncIterator[str]:
    """The sandbox served by uvicorn over TLS on a loopback port; its https root."""
    cert_file, key_file = self_signed(folder)
    sock = bind_loopback()
    config = uvicorn.Config(
        sandbox.app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    async with anyio.create_task_group() as tg:
        server = await tg.start(partial(_serve, config, sock))
        try:
            yield f"https://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True


async def in_thread(call: Callable[[], Any]) -> Any:
    """Run one blocking simple-salesforce call off the event loop."""
    return await anyio.to_thread.run_sync(call)


@pytest.mark.e2e
class TestSimpleSalesforce:
    """The sandbox takes and answers what the official client sends."""

    async def test_tasks_created_and_queried_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A Task by sobjects/Task/, two by composite/sobjects, all read back by query_all
        over several pages; syncd's message_ids then lists the three keys, not the human's.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
        """
        sandbox = SalesforceSandbox(tokens=[TOKEN], query_batch_size=2)
        async with served_over_tls(sandbox, tmp_path) as root:
            cafile = str(tmp_path / "cert.pem")
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", cafile)  # requests trusts the test's CA
            grant = json.loads(sandbox.credential(TOKEN)) | {"grant_type": "refresh_token"}
            async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=cafile)) as raw:
                answer = await raw.post(f"{root}/services/oauth2/token", data=grant)
            sf = Salesforce(
                instance_url=root, session_id=answer.json()["access_token"], version=VERSION
            )
            contact = await in_thread(lambda: sf.Contact.create({"LastName": "Lovelace"}))
            who = contact["id"]
            one = {"WhoId": who, "Subject": "LinkedIn message sent", "Status": "Completed"}
            single = await in_thread(lambda: sf.Task.create(one | {MESSAGE_ID_FIELD: "m-1"}))
            records = [
                {"attributes": {"type": "Task"}, **one, MESSAGE_ID_FIELD: key}
                for key in ("m-2", "m-3")
            ]
            body = {"allOrNone": True, "records": records}
            many = await in_thread(
                lambda: sf.restful("composite/sobjects", method="POST", json=body)
            )
            await in_thread(lambda: sf.Task.create({"WhoId": who, "Subject": "Call"}))
            soql = f"SELECT Id, {MESSAGE_ID_FIELD}, Status FROM Task WHERE WhoId = '{who}'"  # noqa: S608 - an id the sandbox made
            found = await in_thread(lambda: sf.query_all(soql))
            # syncd's own client reads the same org in process (it trusts only the OS's CAs).
            settings = ConnectorSettings(
                "salesforce",
                "salesforce",
                "http://127.0.0.1",
                options={"login_url": "http://127.0.0.1"},
            )
            crm = SalesforceCRM(
                settings,
                sandbox.credential(TOKEN),
                transport=httpx.ASGITransport(app=sandbox.app),
                retry=RetryPolicy(sleep=FakeClock().sleep),
            )
            held = await crm.message_ids(who)
            await crm.aclose()
        assert single["success"] is True
        assert [r["success"] for r in many] == [True, True]
        assert found["totalSize"] == 4
        assert sorted(str(r[MESSAGE_ID_FIELD]) for r in found["records"]) == [
            "None",
            "m-1",
            "m-2",
            "m-3",
        ]
        assert held == {"m-1", "m-2", "m-3"}
        paths = [r.path for r in sandbox.core.requests]
        assert f"/services/data/v{VERSION}/query/" in paths  # simple-salesforce's trailing /
        assert any("/query/01g" in p for p in paths)  # and it followed nextRecordsUrl
