"""The one connector session: every client's HTTP client, credential and token refresh.

A :class:`Session` parses the credential from the keyring (a plain token, or an OAuth app's
JSON), sends it with each attempt, trades the refresh token for an access token before the
first call and after a 401 (one refresh at a time: a request that waited for the lock finds
the new token and does not refresh again), and sends every request through
:func:`connectors._http.send` (rate limiter, retry policy, error classification).

A vendor supplies only what it does its own way, as a :class:`Vendor` value: where its token
endpoint is, how the refresh proves the app's identity, how a plain token travels, whether
the token answer names the API's root URL, and how its error answers read. Access tokens
and rotated refresh tokens live in this object only, never on disk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Container, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
import httpx

from connectors._http import Classifier, json_body, json_object, send
from connectors._ratelimit import Limiter
from sync.config_check import is_loopback
from sync.errors import AuthError, FatalConnectorError, SyncdError
from sync.retry import RetryPolicy

OAUTH_KEYS = ("client_id", "client_secret", "refresh_token")
_OK = range(200, 300)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

#: Puts a plain token on a request, the vendor's way.
PlainToken = Callable[[httpx.Request, str], None]


@dataclass(slots=True)
class OAuthCredential:
    """An OAuth app's identity, the refresh token a user granted it (replaced in memory when
    the vendor rotates it), and optionally the API's root URL (Salesforce's instance)."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    instance_url: str | None = None


def parse_credential(connector: str, value: str) -> str | OAuthCredential:
    """A plain token as is, or the OAuth JSON ``{client_id, client_secret, refresh_token[,
    instance_url]}`` (other keys ignored); AuthError naming keys, never values, otherwise."""
    text = value.strip()
    if not text:
        raise AuthError(
            connector, f"no credential for {connector}; store one with `syncd auth set {connector}`"
        )
    if not text.startswith("{"):
        return text
    again = f"store it again with `syncd auth set {connector}`"
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError):  # nested past the parser: not JSON to us
        data = None
    if not isinstance(data, dict):
        raise AuthError(connector, f"the {connector} credential is not valid JSON; {again}")
    missing = [k for k in OAUTH_KEYS if not (isinstance(data.get(k), str) and data[k].strip())]
    if missing:
        raise AuthError(
            connector,
            f"the OAuth credential for {connector} lacks {', '.join(missing)} (each a non-empty "
            f"string); it needs {', '.join(OAUTH_KEYS)} and optionally instance_url; {again}",
        )
    instance = data.get("instance_url")
    if instance is not None and not (isinstance(instance, str) and _acceptable(instance)):
        raise AuthError(
            connector,
            f"the OAuth credential for {connector} has an instance_url that is not an "
            f"https:// URL; {again}",
        )
    client_id, client_secret, refresh_token = (str(data[k]).strip() for k in OAUTH_KEYS)
    return OAuthCredential(
        client_id,
        client_secret,
        refresh_token,
        instance_url=instance.strip().rstrip("/") if instance else None,
    )


def bearer(request: httpx.Request, token: str) -> None:
    """Sends a token as ``Authorization: Bearer``."""
    request.headers["Authorization"] = f"Bearer {token}"


def in_header(name: str) -> PlainToken:
    """Sends a token as the value of header ``name`` (never in the query string)."""

    def put(request: httpx.Request, token: str) -> None:
        request.headers[name] = token

    return put


@dataclass(frozen=True, slots=True)
class Vendor:
    """What one vendor's session does its own way."""

    #: Turns an unexpected answer into syncd's error.
    classify: Classifier
    #: The full URL where a refresh token is traded; None: OAuth credentials are refused.
    token_url: str | None = None
    #: How the refresh proves the app's identity: in the form, or with HTTP Basic.
    client_auth: Literal["form", "basic"] = "form"
    #: How a plain token is sent; None: plain tokens are refused (OAuth only).
    plain: PlainToken | None = bearer
    #: The token answer's ``instance_url`` is the API's root URL (Salesforce).
    instance_url: bool = False


class _Auth(httpx.Auth):
    """Signs each attempt with the session's current token and remembers the access token
    it sent, so a 401 refreshes only if no one has refreshed since."""

    def __init__(self, sign: Callable[[httpx.Request], str | None]) -> None:
        self._sign = sign
        self.sent: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sent = self._sign(request)
        yield request


class Session:
    """Authenticated, rate-limited, retried requests to one instance of a vendor's API."""

    def __init__(
        self,
        connector: str,
        credential: str,
        vendor: Vendor,
        *,
        base_url: str = "",
        transport: httpx.AsyncBaseTransport | None,
        retry: RetryPolicy,
        limiter: Limiter | None = None,
        timeout: httpx.Timeout | float = 30.0,
        headers: Mapping[str, str] | None = None,
        on_request: Sequence[Callable[[httpx.Request], Awaitable[None]]] = (),
        on_response: Sequence[Callable[[httpx.Response], Awaitable[None]]] = (),
    ) -> None:
        self.connector = connector
        self._vendor = vendor
        self._retry = retry
        self._limiter = limiter
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers=headers,
            event_hooks={"request": list(on_request), "response": list(on_response)},
        )
        self._plain: str | None = None
        self._oauth: OAuthCredential | None = None
        self._access: str | None = None
        self._instance: str | None = None
        self._lock = anyio.Lock()
        self._problem: AuthError | None = None
        try:
            self._adopt(parse_credential(connector, credential))
        except AuthError as error:
            self._problem = error  # raised by the first call, not by the constructor

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying HTTP client."""
        return self._http

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()

    async def ready(self) -> str:
        """The API's root URL ("" where the base URL serves), after a first refresh if an
        OAuth credential has no access token yet; the credential's problem, if it has one."""
        if self._problem is not None:
            raise self._problem
        if self._oauth is not None and self._access is None:
            await self._refresh(stale=None)
        return self._instance or ""

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str | int] | None = None,
        ok: Container[int] = _OK,
        idempotent: bool | None = None,
        limiter: Limiter | None = None,
    ) -> httpx.Response:
        """One API call (see :func:`connectors._http.send`); ``path`` is relative to the
        API's root, ``limiter`` replaces the session's for this call."""
        root = await self.ready()
        auth = _Auth(self._sign)

        async def refresh() -> None:
            await self._refresh(stale=auth.sent)

        return await send(
            self._http,
            method,
            root + path,
            connector=self.connector,
            policy=self._retry,
            classify=self._vendor.classify,
            ok=ok,
            refresh=refresh if self._oauth is not None else None,
            idempotent=idempotent,
            limiter=limiter or self._limiter,
            auth=auth,
            params=params,
            json=body,
        )

    # -- the credential ----------------------------------------------------------------

    def _adopt(self, parsed: str | OAuthCredential) -> None:
        c = self.connector
        if isinstance(parsed, OAuthCredential):
            if self._vendor.token_url is None:
                raise AuthError(
                    c,
                    f"the {c} credential is OAuth JSON, but {c} takes a token; "
                    f"store one with `syncd auth set {c}`",
                )
            self._oauth = parsed
        elif self._vendor.plain is None:
            raise AuthError(
                c,
                f"the {c} credential is not the OAuth JSON {{client_id, client_secret, "
                f"refresh_token}}; store it with `syncd auth set {c}`",
            )
        else:
            self._plain = parsed

    def _sign(self, request: httpx.Request) -> str | None:
        if self._access is not None:
            bearer(request, self._access)
        elif self._plain is not None and self._vendor.plain is not None:
            self._vendor.plain(request, self._plain)
        return self._access

    async def _refresh(self, *, stale: str | None) -> None:
        """Trade the refresh token for a new access token, unless it changed since ``stale``
        was sent."""
        oauth, url = self._oauth, self._vendor.token_url
        assert oauth is not None
        assert url is not None
        async with self._lock:
            if self._access is not None and self._access != stale:
                return  # another request refreshed while this one waited
            grant = {"grant_type": "refresh_token", "refresh_token": oauth.refresh_token}
            client: httpx.BasicAuth | None = None
            if self._vendor.client_auth == "basic":
                client = httpx.BasicAuth(oauth.client_id, oauth.client_secret)
            else:
                grant |= {"client_id": oauth.client_id, "client_secret": oauth.client_secret}
            response = await send(
                self._http,
                "POST",
                url,
                connector=self.connector,
                policy=self._retry,
                classify=self._refused,
                idempotent=True,  # a refresh creates nothing: safe to send again
                auth=client,
                data=grant,
            )
            answer = json_object(self.connector, response)
            token, renewed = answer.get("access_token"), answer.get("refresh_token")
            if not isinstance(token, str) or not token:
                raise FatalConnectorError(
                    self.connector, f"{self.connector} answered a token refresh without a token"
                )
            if self._vendor.instance_url:
                instance = answer.get("instance_url") or oauth.instance_url
                self._instance = self._trusted(instance, url)
            if isinstance(renewed, str) and renewed:
                oauth.refresh_token = renewed
            self._access = token

    def _trusted(self, instance: object, token_url: str) -> str:
        # The access token goes to this URL: never in clear text, unless the token endpoint
        # was plain http on a loopback host too (a sandbox, as the config allows).
        login = httpx.URL(token_url)
        local = login.scheme == "http" and is_loopback(login.host)
        if isinstance(instance, str) and instance:
            url = httpx.URL(instance)
            if url.host and (url.scheme == "https" or (local and is_loopback(url.host))):
                return instance.rstrip("/")
        raise FatalConnectorError(
            self.connector,
            f"{self.connector} answered an instance URL syncd will not send a token to",
        )

    def _refused(self, connector: str, response: httpx.Response) -> SyncdError:
        """A refused refresh is AuthError (authorise syncd again); anything else is read
        as the vendor reads its answers."""
        if response.status_code not in (400, 401, 403):
            return self._vendor.classify(connector, response)
        body = json_body(response)
        fields = body if isinstance(body, dict) else {}
        # OAuth's own "error" (invalid_grant…), else HubSpot's "status"; never free text.
        codes = [fields.get("error"), fields.get("status")]
        code = next((c for c in codes if isinstance(c, str) and _CODE.match(c)), None)
        return AuthError(
            connector,
            f"{connector} refused to refresh the OAuth token ({code or response.status_code}); "
            f"authorise syncd again and store the new credential with `syncd auth set {connector}`",
        )


def _acceptable(url: str) -> bool:
    """An https URL, or an http one on a loopback host (a sandbox)."""
    try:
        parts = httpx.URL(url.strip())
    except httpx.InvalidURL:
        return False
    return bool(parts.host) and (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.host))
    )


__all__ = [
    "OAuthCredential",
    "PlainToken",
    "Session",
    "Vendor",
    "bearer",
    "in_header",
    "parse_credential",
]
