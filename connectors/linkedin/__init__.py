"""The "LinkedIn-like" source: a read-only client, its field mapping and its sandbox.

Standard library only: the registry imports this to learn about the connector, and the
thin CLI commands must not pay for httpx.
"""

from __future__ import annotations

from connectors.registry import ConnectorInfo

INFO = ConnectorInfo(
    kind="source",
    client="connectors.linkedin.client:LinkedInSource",
    sandbox="connectors.linkedin.sandbox.app:LinkedInSandbox",
    default_base_url="https://www.linkedin.example/api",
    credential="the session token of your own signed-in session",
    options={},
)

__all__ = ["INFO"]
