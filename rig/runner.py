"""Every connector's sandbox served on loopback, and `syncd sandbox`."""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import cast

import anyio
from anyio.abc import TaskGroup

from connectors import registry
from connectors.linkedin.sandbox import LinkedInSandbox
from rig.faultnet import FaultProxy
from rig.loopback import bind_loopback, url_of
from rig.sandbox import CRMSandbox, Sandbox
from sync.asgi import serve


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """One sandbox served on a loopback port, standing in for one configured instance."""

    instance: str  # "source", or the CRM instance name ("hubspot", "hubspot-eu", ...)
    type: str
    url: str  # what configs point at: the fault proxy in front of the sandbox's server
    sandbox: Sandbox
    token: str
    #: The sandbox's server itself, bypassing the proxy: its ``/_sandbox/`` control
    #: endpoints stay reachable while the proxy simulates an outage.
    control_url: str = ""

    @property
    def kind(self) -> str:
        """ "source" or "crm"."""
        return registry.info(self.type).kind

    @property
    def credential(self) -> str:
        """What `syncd auth set` stores so a client authenticates with :attr:`token`
        (the token itself, or e.g. an OAuth JSON whose refresh token it is)."""
        return self.sandbox.credential(self.token)

    def config_table(self) -> dict[str, object]:
        """The config keys that point an instance of this type at the sandbox."""
        return self.sandbox.config_table(self.url)

    @property
    def as_crm(self) -> CRMSandbox:
        """The sandbox as a CRM's (TypeError for the source's)."""
        if self.kind != "crm":
            raise TypeError(f"{self.instance} is not a CRM sandbox")
        return cast("CRMSandbox", self.sandbox)

    @property
    def as_source(self) -> LinkedInSandbox:
        """The sandbox as the source's (TypeError for a CRM's)."""
        if not isinstance(self.sandbox, LinkedInSandbox):
            raise TypeError(f"{self.instance} is not the source sandbox")
        return self.sandbox


def default_instances() -> dict[str, str]:
    """One instance per registered connector type: {instance name: type}."""
    return {("source" if registry.info(t).kind == "source" else t): t for t in registry.PACKAGES}


async def start_sandboxes(
    tg: TaskGroup, instances: Mapping[str, str] | None = None
) -> dict[str, RunningSandbox]:
    """Start one sandbox per instance ({name: type}; one per type by default) inside ``tg``,
    each with a fresh random token; keyed by instance name."""
    running: dict[str, RunningSandbox] = {}
    for name, type_name in (instances or default_instances()).items():
        factory = registry.load(registry.info(type_name).sandbox)
        token = f"sbx-{name}-{secrets.token_urlsafe(12)}"
        sandbox: Sandbox = factory(tokens=[token])
        sock = bind_loopback()
        await tg.start(partial(serve, sandbox.app, sock, graceful_seconds=1))
        proxy = FaultProxy(sock.getsockname()[1])
        port = await tg.start(proxy.serve)
        sandbox.core.network = proxy
        url = f"http://127.0.0.1:{port}"
        running[name] = RunningSandbox(name, type_name, url, sandbox, token, url_of(sock))
    return running


def toml_config(tables: Mapping[str, Mapping[str, object]], *, comment: str = "") -> str:
    """A syncd config (TOML) from {table name: {key: string, number or list}}."""
    parts = [f"# {comment}"] if comment else []
    for name, values in tables.items():
        lines = [f"[{name}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def config_text(
    running: Mapping[str, RunningSandbox], *, daemon: Mapping[str, object] | None = None
) -> str:
    """A syncd config (TOML) whose source and CRMs are the running sandboxes."""
    tables: dict[str, Mapping[str, object]] = {"daemon": daemon or {}}
    for name, sandbox in running.items():
        table = "source" if sandbox.kind == "source" else f"crm.{name}"
        tables[table] = sandbox.config_table()
    return toml_config(
        tables, comment="Written by `syncd sandbox`: every instance points at a local sandbox."
    )


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve every sandbox until Ctrl-C and write a config pointing at them."""

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            running = await start_sandboxes(tg)
            text = config_text(running)
            if args.config_out:
                out = await anyio.Path(args.config_out).expanduser()
                await out.parent.mkdir(parents=True, exist_ok=True)
                await out.write_text(text, encoding="utf-8")
                print(f"config written to {out}")
            else:
                print(text)
            for name, sandbox in running.items():
                print(
                    f"{sandbox.type} sandbox at {sandbox.url} (control, bypassing the "
                    f"simulated network: {sandbox.control_url}/_sandbox/); its test "
                    f"credential: {sandbox.credential}  (store it with `syncd auth set {name}`)"
                )
            print("ready: press Ctrl-C to stop", flush=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            tg.cancel_scope.cancel()

    anyio.run(main)
    print("sandboxes stopped", file=sys.stderr)
    return 0
