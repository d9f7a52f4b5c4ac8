"""The salesforce sandbox: a local emulator of its API, part of the test rig (never imported by
the relay, the daemon or the client)."""

from connectors.salesforce.sandbox.app import SalesforceSandbox

__all__ = ["SalesforceSandbox"]
