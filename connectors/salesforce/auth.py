"""How the Salesforce client authenticates, and the one function that turns Salesforce's
error answers into syncd's errors.

OAuth 2.0 refresh-token flow: ``POST <login_url>/services/oauth2/token`` (form-encoded
``grant_type=refresh_token``, ``client_id``, ``client_secret``, ``refresh_token``) answers
``access_token`` and ``instance_url``; the access token lives in memory only. A refused
refresh is 400 ``{"error": "invalid_grant", "error_description": ...}``.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm

Errors are a JSON list of ``{message, errorCode, fields}``; an expired session is 401
``INVALID_SESSION_ID``; the org's API limit is **403** ``REQUEST_LIMIT_EXCEEDED`` (throttling,
retried, never a credential problem).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass, field

import anyio
import httpx

from connectors._http import classify_response, json_object, retry_after_seconds, send
from sync.errors import AuthError, FatalConnectorError, RetryableError, SyncdError
from sync.retry import RetryPolicy

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - an endpoint path, not a secret
LIMIT_INFO_HEADER = "Sforce-Limit-Info"
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,79}$")
_USAGE = re.compile(r"(?:^|[\s,;])api-usage=(\d+)/(\d+)")  # not per-app-api-usage
_KEYS = ("client_id", "client_secret", "refresh_token")


@dataclass(frozen=True, slots=True)
class OAuthCredential:
    """A connected app's identity, the refresh token a user granted it, and optionally
    the org's instance URL."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    instance_url: str | None = None

    def form(self) -> dict[str, str]:
        """The refresh-token grant, form-encoded by the caller."""
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }


def parse_credential(connector: str, credential: str) -> OAuthCredential:
    """The OAuth JSON, or AuthError (never quoting the value) if it is not one."""
    try:
        data: object = json.loads(credential)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data[k].strip() for k in _KEYS
    ):
        raise AuthError(
            connector,
            f"the {connector} credential is not the OAuth JSON "
            f"{{client_id, client_secret, refresh_token}}; store it with "
            f"`syncd auth set {connector}`",
        )
    instance = data.get("instance_url")
    return OAuthCredential(
        client_id=str(data["client_id"]).strip(),
        client_secret=str(data["client_secret"]).strip(),
        refresh_token=str(data["refresh_token"]).strip(),
        instance_url=instance.rstrip("/") if isinstance(instance, str) and instance else None,
    )


class Bearer(httpx.Auth):
    """Sends the current access token; read at each attempt, so a refresh takes effect on
    the retry."""

    def __init__(self) -> None:
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class Session:
    """The access token and instance URL of one credential, refreshed on demand."""

    def __init__(
        self,
        connector: str,
        http: httpx.AsyncClient,
        credential: OAuthCredential,
        *,
        login_url: str,
        retry: RetryPolicy,
    ) -> None:
        self.connector = connector
        self.bearer = Bearer()
        self.instance_url: str | None = None
        self._http = http
        self._credential = credential
        self._login_url = login_url.rstrip("/")
        self._retry = retry
        self._lock = anyio.Lock()

    async def ready(self) -> str:
        """The instance URL, after a first refresh if none happened yet."""
        if self.bearer.token is None or self.instance_url is None:
            await self.refresh()
        assert self.instance_url is not None
        return self.instance_url

    async def refresh(self) -> None:
        """Trade the refresh token for a new access token, held in memory only."""
        stale = self.bearer.token
        async with self._lock:
            if self.bearer.token != stale and self.bearer.token is not None:
                return  # another request refreshed while this one waited
            response = await send(
                self._http,
                "POST",
                self._login_url + TOKEN_PATH,
                connector=self.connector,
                policy=self._retry,
                classify=classify_token,
                idempotent=True,  # a refresh creates nothing: safe to send again
                auth=None,
                data=self._credential.form(),
            )
            body = json_object(self.connector, response)
            token, instance = body.get("access_token"), body.get("instance_url")
            if not isinstance(instance, str) or not instance:
                instance = self._credential.instance_url
            if not isinstance(token, str) or not token or not instance:
                raise FatalConnectorError(
                    self.connector,
                    f"{self.connector} answered a token refresh without a token or instance",
                )
            self.instance_url = self._trusted(instance.rstrip("/"))
            self.bearer.token = token

    def _trusted(self, instance: str) -> str:
        # The access token goes to this URL: never in clear text unless the login URL was
        # plain http too (a loopback sandbox, as the config allows).
        url = httpx.URL(instance)
        secure = url.scheme == "https" or self._login_url.startswith("http://")
        if not secure or not url.host:
            raise FatalConnectorError(
                self.connector,
                f"{self.connector} answered an instance URL syncd will not send a token to",
            )
        return instance


def errors(response: httpx.Response) -> list[dict[str, object]]:
    """The error entries of an answer: Salesforce's list, or a lone object wrapped."""
    try:
        body: object = response.json()
    except ValueError:
        return []
    items = body if isinstance(body, list) else [body]
    return [{str(k): v for k, v in i.items()} for i in items if isinstance(i, dict)]


def code_of(value: object) -> str | None:
    """``value`` if it is a machine code (``INVALID_SESSION_ID``), else None: free text from
    Salesforce can quote a person's data and never goes into our messages."""
    return value if isinstance(value, str) and _CODE.match(value) else None


def describe(entry: dict[str, object], code_key: str = "errorCode") -> str:
    """An error entry as ``CODE (Field, Field)``: the code and field names, no message."""
    code = code_of(entry.get(code_key)) or "ERROR"
    names = entry.get("fields")
    shown = (
        [f for f in names if isinstance(f, str) and _FIELD.match(f)]
        if isinstance(names, list)
        else []
    )
    return code + (f" ({', '.join(shown)})" if shown else "")


def api_usage(response: httpx.Response) -> tuple[int, int] | None:
    """``Sforce-Limit-Info: api-usage=N/M`` as (used, limit), if present."""
    found = _USAGE.search(response.headers.get(LIMIT_INFO_HEADER, ""))
    return (int(found.group(1)), int(found.group(2))) if found else None


def classify(connector: str, response: httpx.Response) -> SyncdError:
    """Salesforce's answer as syncd's error: the first entry's ``errorCode`` is the code;
    403 ``REQUEST_LIMIT_EXCEEDED`` is throttling, retried like a 429."""
    entries = errors(response)
    code = code_of(entries[0].get("errorCode")) if entries else None
    status = response.status_code
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        usage = api_usage(response)
        detail = f" (api usage {usage[0]}/{usage[1]})" if usage else ""
        return RetryableError(
            connector,
            f"{connector} answered HTTP 403 REQUEST_LIMIT_EXCEEDED: the org's API limit is "
            f"used up for now{detail}",
            status=status,
            retry_after=retry_after_seconds(response),
        )
    return classify_response(connector, response, code=code)


def classify_token(connector: str, response: httpx.Response) -> SyncdError:
    """A refused refresh is an AuthError: the user must authorise syncd again."""
    if response.status_code in (400, 401, 403):
        entries = errors(response)
        code = code_of(entries[0].get("error")) if entries else None
        return AuthError(
            connector,
            f"{connector} refused to refresh the OAuth token ({code or response.status_code}); "
            f"authorise syncd again and store the new credential with `syncd auth set {connector}`",
        )
    return classify(connector, response)
