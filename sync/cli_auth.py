"""`syncd auth`: credentials in the OS keyring — set without echo, remove, check.

A credential's value is never printed, never taken from argv and never written to a file.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys

from sync.errors import AuthError, SyncdError, UsageError

NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _name(raw: str) -> str:
    if not NAME.fullmatch(raw):
        raise UsageError(
            "a credential name is 'source' or a CRM instance name from the config "
            "(lowercase letters, digits, - and _)"
        )
    return raw


def cmd_auth_set(args: argparse.Namespace) -> int:
    """Read a credential without echo (or from stdin) and store it in the keyring."""
    from sync.secrets import KeyringTokenStore

    name = _name(args.name)
    store = KeyringTokenStore()
    if args.stdin:
        value = sys.stdin.read().strip()
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to type the credential in; pipe it with --stdin")
        value = getpass.getpass(f"credential for {name} (input hidden): ").strip()
    if not value:
        raise UsageError("the credential is empty; nothing was stored")
    store.set(name, value)
    print(f"stored the credential for {name} in the keyring ({store.backend_name()})")
    return 0


def cmd_auth_remove(args: argparse.Namespace) -> int:
    """Delete a credential from the keyring."""
    from sync.secrets import KeyringTokenStore

    name = _name(args.name)
    if KeyringTokenStore().delete(name):
        print(f"removed the credential for {name}")
    else:
        print(f"there was no credential for {name}")
    return 0


def cmd_auth_status(args: argparse.Namespace) -> int:
    """For each configured instance: stored? accepted by the service? Never the value."""
    import anyio

    from sync.config import load
    from sync.instances import Instances
    from sync.secrets import KeyringTokenStore

    config = load(args.config)
    store = KeyringTokenStore()
    instances = Instances(config, store)
    names = ["source", *config.crms]

    async def check_all() -> dict[str, dict[str, object]]:
        report: dict[str, dict[str, object]] = {}
        try:
            for name in names:
                stored = await anyio.to_thread.run_sync(store.get, name) is not None
                entry: dict[str, object] = {"stored": stored, "accepted": None, "detail": ""}
                if stored:
                    try:
                        client = await (
                            instances.source() if name == "source" else instances.crm(name)
                        )
                        await client.check_auth()
                        entry["accepted"] = True
                    except AuthError as exc:
                        entry.update(accepted=False, detail=str(exc))
                    except SyncdError as exc:
                        entry["detail"] = f"could not check: {exc}"
                else:
                    entry["detail"] = f"run `syncd auth set {name}`"
                report[name] = entry
        finally:
            await instances.aclose()
        return report

    report = anyio.run(check_all)
    if args.json:
        print(json.dumps({"backend": store.backend_name(), "credentials": report}, indent=2))
    else:
        print(f"keyring: {store.backend_name()}")
        for name, entry in report.items():
            if not entry["stored"]:
                state = "missing"
            elif entry["accepted"]:
                state = "stored, accepted"
            elif entry["accepted"] is False:
                state = "stored, REJECTED"
            else:
                state = "stored, unchecked"
            detail = f" — {entry['detail']}" if entry["detail"] else ""
            print(f"  {name}: {state}{detail}")
    ok = all(e["stored"] and e["accepted"] for e in report.values())
    return 0 if ok else 4
