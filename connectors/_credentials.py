"""What a CRM credential from the keyring may be: a plain token, or an OAuth app's JSON
``{client_id, client_secret, refresh_token}``. Shared by the connectors that take both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sync.errors import AuthError

OAUTH_KEYS = ("client_id", "client_secret", "refresh_token")


@dataclass(slots=True)
class OAuthCredential:
    """An OAuth app's identity and the refresh token a user granted it (in memory only;
    a vendor that rotates refresh tokens replaces ``refresh_token`` here)."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)

    def form(self) -> dict[str, str]:
        """The refresh-token grant, form-encoded by the caller."""
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }


def token_or_oauth(connector: str, credential: str) -> str | OAuthCredential:
    """A token as is, or the OAuth JSON; AuthError (never quoting the value) if neither."""
    text = credential.strip()
    if not text:
        raise AuthError(connector, f"no credential for {connector}; `syncd auth set {connector}`")
    if not text.startswith("{"):
        return text
    try:
        data: object = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), str) and data.get(key) for key in OAUTH_KEYS
    ):
        raise AuthError(
            connector,
            f"the {connector} credential looks like JSON but is not "
            f"{{client_id, client_secret, refresh_token}}; store it again with "
            f"`syncd auth set {connector}`",
        )
    return OAuthCredential(*(str(data[key]) for key in OAUTH_KEYS))
