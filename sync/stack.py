"""A throwaway syncd: every sandbox on loopback, a real daemon, private dirs and keyring.

`syncd demo` and the benchmarks stand on it. The daemon runs in this process with an
in-memory token store (the throwaway keyring); callers drive it through the real CLI in
subprocesses, with `env` pointing every XDG dir into `root`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from connectors import registry
from sync import log
from sync.config import load
from sync.daemon import DaemonHandle, run_daemon
from sync.sandboxes import RunningSandbox, config_text, start_sandboxes
from sync.secrets import MemoryTokenStore

DIRS = ("config", "state", "cache", "log", "run", "tmp")


def instance_name(type_name: str) -> str:
    """The instance name the stack gives a connector type in its config."""
    return "source" if registry.info(type_name).kind == "source" else type_name


@dataclass(frozen=True, slots=True)
class Stack:
    """What a running throwaway stack offers its owner."""

    root: Path
    env: dict[str, str]
    config_path: Path
    running: dict[str, RunningSandbox]
    daemon: DaemonHandle

    @property
    def source(self) -> RunningSandbox:
        return next(sb for sb in self.running.values() if registry.info(sb.type).kind == "source")

    @property
    def crms(self) -> dict[str, RunningSandbox]:
        return {name: sb for name, sb in self.running.items() if registry.info(name).kind == "crm"}

    async def cli(self, *args: str) -> tuple[str, int, float]:
        """Run `syncd ARGS --config <stack's>` in a subprocess: (output, exit code, seconds)."""
        started = time.perf_counter()
        command, *rest = args
        done = await anyio.run_process(
            [sys.executable, "-m", "sync.cli", command, "--config", str(self.config_path), *rest],
            check=False,
            env=self.env,
        )
        output = (done.stdout + done.stderr).decode()
        return output, done.returncode, time.perf_counter() - started


@asynccontextmanager
async def throwaway_stack(
    root: Path,
    *,
    crms: Collection[str] | None = None,
    daemon: Mapping[str, object] | None = None,
) -> AsyncIterator[Stack]:
    """Run sandboxes and a daemon under ``root`` until the block ends.

    ``crms`` limits which CRM types the config names (every registered one by default);
    every sandbox is served either way.
    """
    dirs = {name: root / name for name in DIRS}
    for path in dirs.values():
        path.mkdir(mode=0o700, exist_ok=True)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_STATE_HOME": str(dirs["state"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "XDG_RUNTIME_DIR": str(dirs["run"]),
        "TMPDIR": str(dirs["tmp"]),
    }
    config_path = dirs["config"] / "config.toml"
    async with anyio.create_task_group() as tg:
        running = await start_sandboxes(tg)
        chosen = {
            name: sb
            for name, sb in running.items()
            if crms is None or registry.info(name).kind == "source" or name in crms
        }
        config_path.write_text(
            config_text(
                chosen,
                daemon={
                    "socket": str(dirs["run"] / "syncd.sock"),
                    "log_file": str(dirs["log"] / "syncd.log"),
                    **(daemon or {}),
                },
            )
        )
        config = load(config_path)
        log.configure(config.daemon.log_level, config.daemon.log_path())
        store = MemoryTokenStore({instance_name(t): sb.credential for t, sb in chosen.items()})
        handle = await tg.start(run_daemon, config, store)
        try:
            yield Stack(root, env, config_path, running, handle)
        finally:
            handle.stop()
            tg.cancel_scope.cancel()  # the sandboxes' servers belong to this group too
