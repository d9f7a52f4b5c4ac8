"""HubSpot CRM v3: contacts upserted on the source's member id.

Standard library only: the registry imports this module to read :data:`INFO`.
"""

from __future__ import annotations

from connectors.registry import ConnectorInfo

INFO = ConnectorInfo(
    kind="crm",
    client="connectors.hubspot.client:HubSpotCRM",
    sandbox="connectors.hubspot.sandbox.app:HubSpotSandbox",
    default_base_url="https://api.hubapi.com",
    credential=(
        "a private-app access token, or OAuth JSON {client_id, client_secret, refresh_token}"
    ),
    options={},
)
