"""Salesforce's access token goes only to a Salesforce host or the login host: an
``instance_url`` or ``nextRecordsUrl`` naming another host is refused before anything is
sent there. Servers are faked with httpx.MockTransport (one odd answer each) and every
request is recorded."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.base import ConnectorSettings
from connectors.salesforce import hosts
from connectors.salesforce.client import SalesforceCRM
from connectors.salesforce.sandbox.app import SalesforceSandbox
from sync.errors import AuthError, FatalConnectorError
from sync.retry import RetryPolicy
from tests.contract import ADA
from tests.doubles import FakeClock

LOGIN = "https://login.salesforce.com"
DATA = "/services/data/v62.0"
ACCESS = "access-canary-5d1e"
CREDENTIAL = SalesforceSandbox().credential("refresh-canary-77aa")


class FakeOrg:
    """A token endpoint that names ``instance`` and an API that answers ``pages`` to
    queries (then empty pages) and ``{}`` to anything else; it records every request."""

    def __init__(self, instance: str | None, pages: list[dict[str, object]] | None = None):
        self.instance = instance
        self.pages = list(pages or [])
        self.sent: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/services/oauth2/token":
            answer: dict[str, object] = {"access_token": ACCESS, "token_type": "Bearer"}
            if self.instance is not None:
                answer["instance_url"] = self.instance
            return httpx.Response(200, json=answer)
        if "/query" in request.url.path:
            page = self.pages.pop(0) if self.pages else {"done": True, "records": []}
            return httpx.Response(200, json={"totalSize": 0, **page})
        return httpx.Response(200, json={})

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.sent]

    def with_token(self) -> list[str]:
        """The hosts that received the access token."""
        return [r.url.host for r in self.sent if ACCESS in r.headers.get("authorization", "")]


def make_crm(org: FakeOrg, *, login: str = LOGIN, credential: str = CREDENTIAL) -> SalesforceCRM:
    settings = ConnectorSettings("salesforce", "salesforce", login, options={"login_url": login})
    return SalesforceCRM(
        settings,
        credential,
        transport=httpx.MockTransport(org.handle),
        retry=RetryPolicy(attempts=2, sleep=FakeClock().sleep),
    )


class TestInstanceUrl:
    """The instance a token answer (or the stored credential) names must be Salesforce's."""

    async def test_another_host_is_refused_before_any_request(self) -> None:
        """instance_url = https://evil.example: AuthError, and evil.example receives nothing."""
        org = FakeOrg("https://evil.example")
        crm = make_crm(org)
        with pytest.raises(AuthError) as caught:
            await crm.upsert_contacts([ADA])
        await crm.aclose()
        assert org.hosts() == ["login.salesforce.com"]
        assert org.with_token() == []
        assert caught.value.exit_code == 4
        assert "evil" not in str(caught.value)

    async def test_userinfo_and_query_are_refused_without_echo(self) -> None:
        """A Salesforce host with userinfo and a query is refused; the error echoes neither."""
        org = FakeOrg("https://user-canary:pw-canary@acme.my.salesforce.com?x=q-canary")
        crm = make_crm(org)
        with pytest.raises(AuthError) as caught:
            await crm.check_auth()
        await crm.aclose()
        assert org.hosts() == ["login.salesforce.com"]
        assert "canary" not in str(caught.value)

    async def test_plain_http_off_loopback_is_refused(self) -> None:
        """http://acme.my.salesforce.com gets no request: the token would travel in clear."""
        org = FakeOrg("http://acme.my.salesforce.com")
        crm = make_crm(org)
        with pytest.raises(FatalConnectorError):
            await crm.check_auth()
        await crm.aclose()
        assert org.hosts() == ["login.salesforce.com"]

    async def test_the_stored_instance_is_checked_too(self) -> None:
        """A token answer without instance_url falls back to the credential's; that one
        is held to the same rule."""
        stored = json.loads(CREDENTIAL) | {"instance_url": "https://evil.example"}
        org = FakeOrg(None)
        crm = make_crm(org, credential=json.dumps(stored))
        with pytest.raises(AuthError):
            await crm.check_auth()
        await crm.aclose()
        assert org.hosts() == ["login.salesforce.com"]

    async def test_a_loopback_login_allows_only_loopback(self) -> None:
        """With a loopback login URL (a sandbox), even an https instance elsewhere is refused."""
        org = FakeOrg("https://acme.my.salesforce.com")
        crm = make_crm(org, login="http://127.0.0.1:8765")
        with pytest.raises(AuthError):
            await crm.check_auth()
        await crm.aclose()
        assert org.hosts() == ["127.0.0.1"]

    @pytest.mark.parametrize(
        "instance",
        [
            pytest.param("https://acme.my.salesforce.com", id="my-domain"),
            pytest.param("https://acme--uat.sandbox.my.salesforce.com", id="sandbox-org"),
            pytest.param("https://na42.salesforce.com", id="pod"),
            pytest.param("https://acme.lightning.force.com", id="force-com"),
            pytest.param("https://login.salesforce.com", id="the-login-host"),
        ],
    )
    async def test_salesforce_hosts_get_the_token(self, instance: str) -> None:
        """An https instance on a Salesforce domain receives the API calls and the token."""
        org = FakeOrg(instance)
        crm = make_crm(org)
        await crm.check_auth()
        await crm.aclose()
        assert org.with_token() == [httpx.URL(instance).host]


class TestMayReceiveToken:
    """The rule itself, host by host."""

    @pytest.mark.parametrize(
        ("url", "login", "allowed"),
        [
            pytest.param("https://acme.my.salesforce.com/x", LOGIN, True, id="my-domain"),
            pytest.param("https://ACME.My.Salesforce.COM./x", LOGIN, True, id="case-and-dot"),
            pytest.param("https://evilsalesforce.com/x", LOGIN, False, id="suffix-without-dot"),
            pytest.param("https://salesforce.com.evil.example/", LOGIN, False, id="prefix"),
            pytest.param("https://evil.example/", LOGIN, False, id="elsewhere"),
            pytest.param("http://acme.my.salesforce.com/", LOGIN, False, id="http"),
            pytest.param(
                "https://login.acme.example/",
                "https://login.acme.example",
                True,
                id="own-login-host",
            ),
            pytest.param("http://localhost:9/", "http://127.0.0.1:8", True, id="loopback"),
            pytest.param("http://10.0.0.1/", "http://127.0.0.1:8", False, id="lan-from-loopback"),
            pytest.param("http://127.0.0.1/", LOGIN, False, id="loopback-from-real-login"),
        ],
    )
    def test_rule(self, url: str, login: str, allowed: bool) -> None:
        """https on *.salesforce.com, *.force.com or the login host; loopback for a sandbox."""
        assert hosts.may_receive_token(httpx.URL(url), httpx.URL(login)) is allowed


class TestNextRecordsUrl:
    """A query page link is followed only as a path on the instance."""

    @pytest.mark.parametrize(
        "link",
        [
            pytest.param("https://evil.example/services/data/v62.0/query/01g-2", id="other-host"),
            pytest.param("//evil.example/services/data/v62.0/query/01g-2", id="scheme-relative"),
            pytest.param("/services/data/v62.0/../../../x", id="dot-dot"),
            pytest.param("/lightning/query/01g-2", id="not-the-api"),
        ],
    )
    async def test_elsewhere_is_refused(self, link: str) -> None:
        """The page is not followed; nothing but the login host and the instance is asked."""
        first = {"done": False, "records": [], "nextRecordsUrl": link}
        org = FakeOrg("https://acme.my.salesforce.com", pages=[first])
        crm = make_crm(org)
        with pytest.raises(FatalConnectorError, match="page link"):
            await crm.find(ADA)
        await crm.aclose()
        assert set(org.hosts()) == {"login.salesforce.com", "acme.my.salesforce.com"}
        assert [r.url.path for r in org.sent].count(f"{DATA}/query") == 1
        assert len(org.sent) == 2

    async def test_a_path_on_the_instance_is_followed(self) -> None:
        """Salesforce's own relative link is fetched from the same instance."""
        link = f"{DATA}/query/01gD0000002HU6KIAW-2000"
        first = {"done": False, "records": [], "nextRecordsUrl": link}
        org = FakeOrg("https://acme.my.salesforce.com", pages=[first])
        crm = make_crm(org)
        await crm.find(ADA)
        await crm.aclose()
        assert [str(r.url) for r in org.sent][-1] == f"https://acme.my.salesforce.com{link}"
