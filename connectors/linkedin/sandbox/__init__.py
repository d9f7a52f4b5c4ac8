"""The linkedin sandbox: a local emulator of its API, part of the test rig (never imported by
the relay, the daemon or the client)."""

from connectors.linkedin.sandbox.app import LinkedInSandbox

__all__ = ["LinkedInSandbox"]
