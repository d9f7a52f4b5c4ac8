"""The Pipedrive client's HTTP session: one ``httpx.AsyncClient`` with the credential
(``x-api-token``, or an OAuth access token refreshed on demand), Pipedrive's envelope, and
the burst window's pacing (:mod:`connectors.pipedrive.ratelimit`), so requests wait instead
of drawing a 429.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

import anyio
import httpx

from connectors._credentials import OAuthCredential, token_or_oauth
from connectors._http import json_object, send
from connectors._ratelimit import Limiter
from connectors.base import ConnectorSettings
from connectors.pipedrive import auth, ratelimit
from sync.errors import AuthError, FatalConnectorError
from sync.retry import RetryPolicy

_OK = range(200, 300)


class Session:
    """Authenticated requests to one Pipedrive company, retried as ``retry`` says."""

    def __init__(
        self,
        settings: ConnectorSettings,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None,
        retry: RetryPolicy,
        limiter: Limiter | None = None,
    ) -> None:
        self._connector = settings.instance
        self._retry = retry
        self._limiter = ratelimit.limiter(retry.sleep) if limiter is None else limiter
        oauth_url = settings.options.get("oauth_url") or "https://oauth.pipedrive.com"
        self._oauth_url = str(oauth_url).rstrip("/")
        self._auth = auth.TokenAuth()
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            transport=transport,
            auth=self._auth,
            timeout=30.0,
        )
        self._oauth: OAuthCredential | None = None
        self._problem: AuthError | None = None
        try:
            parsed = token_or_oauth(self._connector, credential)
        except AuthError as error:
            self._problem = error  # raised by the first call, not by the constructor
        else:
            if isinstance(parsed, OAuthCredential):
                self._oauth = parsed
            else:
                self._auth.api_token = parsed
        self._refresh_lock = anyio.Lock()

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        ok: Container[int] = _OK,
    ) -> httpx.Response:
        if self._problem is not None:
            raise self._problem
        if self._oauth is not None and self._auth.access_token is None:
            await self.refresh()
        extra: dict[str, Any] = {} if body is None else {"json": body}
        return await send(
            self._http,
            method,
            path,
            connector=self._connector,
            policy=self._retry,
            classify=auth.classify,
            ok=ok,
            refresh=self.refresh if self._oauth is not None else None,
            limiter=self._limiter,
            params=params,
            **extra,
        )

    async def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of a successful answer in Pipedrive's envelope."""
        response = await self.call(method, path, **kwargs)
        return self.envelope(response)[0]

    def envelope(self, response: httpx.Response) -> tuple[Any, dict[str, Any]]:
        body = json_object(self._connector, response)
        if body.get("success") is not True:
            raise FatalConnectorError(
                self._connector,
                f"{self._connector} answered HTTP {response.status_code} without success",
                status=response.status_code,
                request_id=response.headers.get(auth.REQUEST_ID_HEADER),
            )
        more = body.get("additional_data")
        return body.get("data"), more if isinstance(more, dict) else {}

    async def refresh(self) -> None:
        """Trade the refresh token for a new access token, held in memory only."""
        assert self._oauth is not None
        stale = self._auth.access_token
        async with self._refresh_lock:
            if self._auth.access_token != stale:
                return  # another request refreshed while this one waited
            response = await send(
                self._http,
                "POST",
                self._oauth_url + auth.TOKEN_PATH,
                connector=self._connector,
                policy=self._retry,
                classify=auth.classify_token,
                idempotent=True,  # a refresh creates nothing: safe to send again
                auth=httpx.BasicAuth(self._oauth.client_id, self._oauth.client_secret),
                data={"grant_type": "refresh_token", "refresh_token": self._oauth.refresh_token},
            )
            answer = json_object(self._connector, response)
            token, renewed = answer.get("access_token"), answer.get("refresh_token")
            if not isinstance(token, str) or not token:
                raise FatalConnectorError(
                    self._connector, f"{self._connector} answered a refresh without a token"
                )
            if isinstance(renewed, str) and renewed:
                self._oauth.refresh_token = renewed
            self._auth.access_token = token
