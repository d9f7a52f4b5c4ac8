"""The pipedrive sandbox: a local emulator of its API, part of the test rig (never imported by
the relay, the daemon or the client)."""

from connectors.pipedrive.sandbox.app import PipedriveSandbox

__all__ = ["PipedriveSandbox"]
