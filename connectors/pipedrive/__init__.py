"""Pipedrive: persons and organizations on API v2, upserted on the source's member id.

Standard library only: the registry imports this module to read :data:`INFO`.
"""

from __future__ import annotations

from connectors.registry import ConnectorInfo, Option

INFO = ConnectorInfo(
    kind="crm",
    client="connectors.pipedrive.client:PipedriveCRM",
    sandbox="connectors.pipedrive.sandbox.app:PipedriveSandbox",
    default_base_url="https://yourcompany.pipedrive.com",
    credential=(
        "your personal API token (Personal preferences > API), or OAuth JSON "
        "{client_id, client_secret, refresh_token}"
    ),
    options={
        "oauth_url": Option(
            str,
            "https://oauth.pipedrive.com",
            "where an OAuth refresh token is traded for an access token",
        ),
        "member_id_field": Option(
            str,
            "syncd member id",
            "the name of the person custom field that holds the source's member id "
            "(created as a text field if missing)",
        ),
        "profile_url_field": Option(
            str,
            "LinkedIn profile URL",
            "the name of the person custom field that holds the profile URL "
            "(created as a text field if missing)",
        ),
    },
)

__all__ = ["INFO"]
