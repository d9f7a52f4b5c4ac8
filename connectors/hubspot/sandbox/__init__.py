"""The hubspot sandbox: a local emulator of its API, part of the test rig (never imported by
the relay, the daemon or the client)."""

from connectors.hubspot.sandbox.app import HubSpotSandbox

__all__ = ["HubSpotSandbox"]
