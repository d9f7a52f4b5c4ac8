"""The one connector session: its credential parser, its locked refresh, and a guard that
fails if a second copy of the session, refresh or credential code comes back."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from connectors._session import OAuthCredential, Session, Vendor, parse_credential
from connectors.base import ConnectorSettings
from connectors.hubspot import errors as hubspot_errors
from connectors.hubspot.sandbox.app import HubSpotSandbox
from connectors.linkedin.client import LinkedInSource
from connectors.salesforce import errors as salesforce_errors
from connectors.salesforce.sandbox.app import SalesforceSandbox
from sync.errors import AuthError, FatalConnectorError
from sync.retry import RetryPolicy
from tests.doubles import FakeClock, RecordingTransport

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "connectors" / "_session.py"
SECRET = "canary-secret-6b1f0e9d2c3a4b5c"
OAUTH = {"client_id": "cid", "client_secret": SECRET, "refresh_token": SECRET + "r"}
HUBSPOT = "http://hubspot.test"
HUBSPOT_OAUTH = {"refresh-canary-5c1d": ("client-canary-9a2e", "secret-canary-3b7f")}
CONTACTS = "/crm/v3/objects/contacts"


# -- the guard: one copy only -----------------------------------------------------------

#: Words only the session's refresh and parser need as literal strings.
GRANT_WORDS = frozenset({"refresh_token", "client_secret", "grant_type"})


def copies_in(path: Path) -> list[str]:
    """What in ``path`` looks like a second session: an ``httpx.Auth`` subclass, a refresh
    lock, or the OAuth grant's field names spelled out."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            found += [f"class {node.name}({b})" for b in bases if b.split(".")[-1] == "Auth"]
        elif isinstance(node, ast.Constant) and node.value in GRANT_WORDS:
            found.append(f"the string {node.value!r}")
        elif isinstance(node, ast.Attribute | ast.Name):
            name = (node.attr if isinstance(node, ast.Attribute) else node.id).lower()
            if "refresh" in name and "lock" in name:
                found.append(f"the name {name}")
    return found


def product_modules() -> list[Path]:
    files = sorted((ROOT / "connectors").rglob("*.py")) + sorted((ROOT / "sync").rglob("*.py"))
    return [f for f in files if "sandbox" not in f.relative_to(ROOT).parts and f != SESSION]


class TestOneCopy:
    """The HTTP call, the refresh and the credential parser exist once, in _session.py."""

    @pytest.mark.parametrize(
        "path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in product_modules()]
    )
    def test_no_second_session(self, path: Path) -> None:
        """No product module outside connectors/_session.py signs requests or refreshes."""
        assert copies_in(path) == [], f"{path.relative_to(ROOT)} copies the session"

    def test_the_session_itself_is_seen(self) -> None:
        """The scanner finds the session's own auth flow, lock and grant (so it can fail)."""
        found = copies_in(SESSION)
        assert "class _Auth(httpx.Auth)" in found
        assert "the string 'refresh_token'" in found

    def test_the_scanner_sees_a_copy(self, tmp_path: Path) -> None:
        """A module with its own Bearer, refresh lock and grant is flagged three ways."""
        copy = tmp_path / "client.py"
        copy.write_text(
            "import anyio, httpx\n"
            "class Bearer(httpx.Auth):\n    pass\n"
            "class Client:\n"
            "    def __init__(self):\n        self._refresh_lock = anyio.Lock()\n"
            "    def form(self):\n        return {'grant_type': 'refresh_token'}\n"
        )
        found = copies_in(copy)
        assert "class Bearer(httpx.Auth)" in found
        assert "the name _refresh_lock" in found
        assert "the string 'grant_type'" in found


# -- the credential parser --------------------------------------------------------------


class TestParseCredential:
    """A plain token, or the OAuth JSON of the README's Credentials table."""

    @pytest.mark.parametrize("value", ["pat-na1-abc", "  plain  ", "[1, 2]"])
    def test_plain_token(self, value: str) -> None:
        """Anything that does not start like a JSON object is a plain token, trimmed."""
        assert parse_credential("hubspot", value) == value.strip()

    def test_full(self) -> None:
        """All keys, an instance_url, and unknown extra keys ignored."""
        value = json.dumps(
            {**OAUTH, "instance_url": "https://eu.my.salesforce.com/", "scope": "api"}
        )
        assert parse_credential("salesforce", value) == OAuthCredential(
            "cid", SECRET, SECRET + "r", "https://eu.my.salesforce.com"
        )

    def test_repr_hides_secrets(self) -> None:
        """The credential's repr shows no secret part."""
        credential = parse_credential("hubspot", json.dumps(OAUTH))
        assert SECRET not in repr(credential)
        assert "cid" not in repr(credential)

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            pytest.param("", "no credential for salesforce", id="empty"),
            pytest.param("{" + SECRET, "not valid JSON", id="broken-json"),
            pytest.param('{"a":' * 100_000 + SECRET, "not valid JSON", id="nested-past-the-parser"),
            pytest.param(
                json.dumps({"client_id": "x"}), "lacks client_secret, refresh_token", id="missing"
            ),
            pytest.param(json.dumps({**OAUTH, "client_id": 1}), "lacks client_id", id="not-string"),
            pytest.param(
                json.dumps({**OAUTH, "refresh_token": " "}), "lacks refresh_token", id="blank"
            ),
            pytest.param(
                json.dumps({**OAUTH, "instance_url": "http://x.example"}), "instance_url", id="http"
            ),
            pytest.param(json.dumps({**OAUTH, "instance_url": 7}), "instance_url", id="not-url"),
        ],
    )
    def test_malformed(self, value: str, fragment: str) -> None:
        """A malformed credential is an AuthError naming keys, never values."""
        with pytest.raises(AuthError) as caught:
            parse_credential("salesforce", value)
        assert fragment in str(caught.value)
        assert "`syncd auth set salesforce`" in str(caught.value)
        assert caught.value.connector == "salesforce"
        assert SECRET not in str(caught.value)

    def test_loopback_instance_is_allowed(self) -> None:
        """A plain-http instance_url is accepted on loopback, as the config allows."""
        value = json.dumps({**OAUTH, "instance_url": "http://127.0.0.1:8080"})
        parsed = parse_credential("salesforce", value)
        assert isinstance(parsed, OAuthCredential)
        assert parsed.instance_url == "http://127.0.0.1:8080"

    async def test_a_source_refuses_oauth_json(self) -> None:
        """A vendor without a token endpoint refuses OAuth JSON at first use; nothing is sent."""
        recorder = RecordingTransport(httpx.MockTransport(lambda r: httpx.Response(200)))
        settings = ConnectorSettings("source", "linkedin", "http://source.test/api")
        source = LinkedInSource(settings, json.dumps(OAUTH), transport=recorder)
        with pytest.raises(AuthError, match="takes a token") as caught:
            await source.check_auth()
        await source.aclose()
        assert SECRET not in str(caught.value)
        assert recorder.sent == []


# -- the locked refresh -----------------------------------------------------------------


def hubspot_session(
    sandbox: HubSpotSandbox, transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> Session:
    client_id, secret = HUBSPOT_OAUTH["refresh-canary-5c1d"]
    credential = {"client_id": client_id, "client_secret": secret}
    return Session(
        "hubspot",
        json.dumps({**credential, "refresh_token": "refresh-canary-5c1d"}),
        Vendor(hubspot_errors.classify, token_url=HUBSPOT + "/oauth/v1/token"),
        base_url=HUBSPOT,
        transport=transport,
        retry=RetryPolicy(attempts=4, sleep=clock.sleep),
    )


def token_requests(sandbox: HubSpotSandbox) -> list[int]:
    return [r.status for r in sandbox.core.requests if r.path == "/oauth/v1/token"]


class TestLockedRefresh:
    """One refresh at a time; whoever waited for it uses its token."""

    @pytest.mark.parametrize("concurrent", [2, 8])
    async def test_concurrent_401s_refresh_once(self, concurrent: int) -> None:
        """N requests refused together with an expired token cause exactly one refresh."""
        sandbox = HubSpotSandbox(oauth_clients=HUBSPOT_OAUTH)
        all_in = anyio.Event()
        arrived: list[httpx.Request] = []

        async def hold_until_all_arrive(request: httpx.Request) -> None:
            # Every request meets the expired token: none goes before all were sent.
            if request.url.path == CONTACTS and not all_in.is_set():
                arrived.append(request)
                if len(arrived) == concurrent:
                    all_in.set()
                await all_in.wait()

        clock = FakeClock()
        recorder = RecordingTransport.over(sandbox.app, hold_until_all_arrive)
        session = hubspot_session(sandbox, recorder, clock)
        await session.ready()
        sandbox.core.expire_tokens()
        statuses: list[int] = []

        async def read() -> None:
            statuses.append((await session.call("GET", CONTACTS)).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(concurrent):
                group.start_soon(read)
        await session.aclose()
        api = [r.status for r in sandbox.core.requests if r.path == CONTACTS]
        assert statuses == [200] * concurrent
        assert api.count(401) == concurrent
        assert token_requests(sandbox) == [200, 200]  # the first token, then one refresh
        assert clock.waits == [0.0] * concurrent  # each retried at once with the new token

    async def test_first_calls_together_refresh_once(self) -> None:
        """Calls that start together without an access token share the first refresh."""
        sandbox = HubSpotSandbox(oauth_clients=HUBSPOT_OAUTH)
        session = hubspot_session(sandbox, httpx.ASGITransport(app=sandbox.app), FakeClock())
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(session.call, "GET", CONTACTS)
        await session.aclose()
        assert token_requests(sandbox) == [200]
        assert 401 not in [r.status for r in sandbox.core.requests]

    async def test_a_rotated_refresh_token_is_used_next(self) -> None:
        """A refresh answer with a new refresh token replaces the old one, in memory."""
        grants: list[dict[str, str]] = []
        valid = {"current": ""}

        def server(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token":
                grants.append(dict(parse_qsl(request.content.decode())))
                valid["current"] = f"access-{len(grants)}"
                rotated = f"rotated-{len(grants)}"
                body = {"access_token": valid["current"], "refresh_token": rotated}
                return httpx.Response(200, json=body)
            if request.headers.get("authorization") == f"Bearer {valid['current']}":
                return httpx.Response(200, json={})
            return httpx.Response(401, json={})

        session = Session(
            "crm",
            json.dumps(OAUTH),
            Vendor(hubspot_errors.classify, token_url="http://crm.test/token"),
            base_url="http://crm.test",
            transport=httpx.MockTransport(server),
            retry=RetryPolicy(attempts=3, sleep=FakeClock().sleep),
        )
        await session.call("GET", "/x")
        valid["current"] = "expired"
        await session.call("GET", "/x")
        await session.aclose()
        assert [g["refresh_token"] for g in grants] == [SECRET + "r", "rotated-1"]
        assert all(g["client_secret"] == SECRET for g in grants)


# -- the instance URL a token answer names ----------------------------------------------


def salesforce_session(sandbox: SalesforceSandbox, login_url: str) -> Session:
    return Session(
        "salesforce",
        sandbox.credential("refresh-canary"),
        Vendor(
            salesforce_errors.classify,
            token_url=login_url + "/services/oauth2/token",
            plain=None,
            instance_url=True,
        ),
        transport=httpx.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=2, sleep=FakeClock().sleep),
    )


class TestInstanceUrl:
    """The access token goes only to an https instance, or to a loopback sandbox."""

    @pytest.mark.parametrize(
        "login_url",
        [
            pytest.param("https://login.example", id="https"),
            pytest.param("http://127.0.0.1:8765", id="loopback"),
        ],
    )
    async def test_trusted_instance(self, login_url: str) -> None:
        """An https answer, or a loopback one reached over loopback, becomes the API root."""
        sandbox = SalesforceSandbox(tokens=["refresh-canary"])
        session = salesforce_session(sandbox, login_url)
        root = await session.ready()
        await session.aclose()
        assert root == login_url

    async def test_plain_http_elsewhere_is_refused(self) -> None:
        """An instance on plain http off loopback gets no token; nothing but the grant is sent."""
        sandbox = SalesforceSandbox(tokens=["refresh-canary"])
        session = salesforce_session(sandbox, "http://login.example")
        with pytest.raises(FatalConnectorError, match="will not send a token"):
            await session.call("GET", "/services/data/v62.0/limits")
        await session.aclose()
        assert [r.path for r in sandbox.core.requests] == ["/services/oauth2/token"]
