"""A throwaway syncd: every sandbox on loopback, a real daemon, private dirs and keyring.

`syncd demo` and the benchmarks stand on it. The daemon runs in this process with an
in-memory token store (the throwaway keyring); callers drive it through the real CLI in
subprocesses, with `env` pointing every XDG dir into `root`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import Process

from connectors import registry
from rig.daemon_child import READY
from rig.runner import RunningSandbox, config_text, start_sandboxes
from sync import log
from sync.config import load
from sync.daemon import DaemonHandle, run_daemon
from sync.retry import RetryPolicy
from sync.secrets import MemoryTokenStore

DIRS = ("config", "state", "cache", "log", "run", "tmp")
_XDG = {
    "XDG_CONFIG_HOME": "config",
    "XDG_STATE_HOME": "state",
    "XDG_CACHE_HOME": "cache",
    "XDG_DATA_HOME": "data",
    "XDG_RUNTIME_DIR": "run",
    "TMPDIR": "tmp",
}


def syncd_argv(*args: str) -> list[str]:
    """The command line that runs the real CLI (`syncd ARGS`) from this interpreter."""
    return [sys.executable, "-m", "sync.cli", *args]


def run_syncd(
    environ: Mapping[str, str], *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (`syncd ARGS`) in ``environ`` to its end; output kept as text.

    Without ``stdin`` the command's standard input is empty (never the test runner's, which
    a command that reads piped refs would otherwise wait on)."""
    return subprocess.run(  # noqa: S603 - our own CLI, from this interpreter
        syncd_argv(*args),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=dict(environ),
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True, slots=True)
class ThrowawayDirs:
    """Private (0700) config, state, cache, log, runtime and temp dirs under one root."""

    root: Path
    paths: dict[str, Path]

    @classmethod
    def make(cls, root: Path, names: Collection[str] = DIRS) -> ThrowawayDirs:
        """Create the dirs ``names`` under ``root`` (kept if they exist)."""
        paths = {name: root / name for name in names}
        for path in paths.values():
            path.mkdir(mode=0o700, exist_ok=True)
        return cls(root, paths)

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    def environ(self, **extra: str) -> dict[str, str]:
        """This process's environment with every XDG dir (and TMPDIR) pointing in here."""
        env = dict(os.environ)
        env |= {var: str(self.paths[n]) for var, n in _XDG.items() if n in self.paths}
        return env | extra


@dataclass(frozen=True, slots=True)
class Stack:
    """What a running throwaway stack offers its owner."""

    root: Path
    env: dict[str, str]
    config_path: Path
    running: dict[str, RunningSandbox]
    #: The daemon's handle when it runs in this process; None when it has a process of its own.
    daemon: DaemonHandle | None

    @property
    def source(self) -> RunningSandbox:
        return self.running["source"]

    @property
    def crms(self) -> dict[str, RunningSandbox]:
        return {name: sb for name, sb in self.running.items() if sb.kind == "crm"}

    def record_counts(self) -> dict[str, int]:
        """How many person records each CRM sandbox holds, by instance name."""
        return {name: int(sb.as_crm.contact_count()) for name, sb in self.crms.items()}

    async def cli(self, *args: str) -> tuple[str, int, float]:
        """Run `syncd ARGS --config <stack's>` in a subprocess: (output, exit code, seconds)."""
        started = time.perf_counter()
        command, *rest = args
        done = await anyio.run_process(
            syncd_argv(command, "--config", str(self.config_path), *rest),
            stdin=subprocess.DEVNULL,  # never the caller's terminal: nothing waits on it
            check=False,
            env=self.env,
        )
        output = (done.stdout + done.stderr).decode()
        return output, done.returncode, time.perf_counter() - started


@asynccontextmanager
async def throwaway_stack(
    root: Path,
    *,
    crms: Collection[str] | Mapping[str, str] | None = None,
    daemon: Mapping[str, object] | None = None,
    retry: RetryPolicy | None = None,
    separate: bool = False,
) -> AsyncIterator[Stack]:
    """Run sandboxes and a daemon under ``root`` until the block ends.

    ``crms`` names the CRM instances: CRM types (one instance each, named after the type)
    or {instance name: type} for several of one type; one of every type by default.
    With ``separate`` the daemon runs in a process of its own (``rig.daemon_child``), as a
    user runs it: the sandboxes, which stand in for services on other machines, then do not
    share its CPU (the benchmarks); ``retry`` applies only in process.
    """
    dirs = ThrowawayDirs.make(root)
    env = dirs.environ()
    config_path = dirs["config"] / "config.toml"
    async with anyio.create_task_group() as tg:
        instances = {"source": registry.types("source")[0]}
        if crms is None:
            instances |= {t: t for t in registry.types("crm")}
        elif isinstance(crms, Mapping):
            instances |= crms
        else:
            instances |= {t: t for t in crms}
        running = await start_sandboxes(tg, instances)
        config_path.write_text(
            config_text(
                running,
                daemon={
                    "socket": str(dirs["run"] / "syncd.sock"),
                    "log_file": str(dirs["log"] / "syncd.log"),
                    "journal_dir": str(dirs["state"] / "journal"),
                    **(daemon or {}),
                },
            )
        )
        credentials = {name: sb.credential for name, sb in running.items()}
        if separate:
            async with child_daemon(config_path, credentials, env):
                yield Stack(root, env, config_path, running, None)
            tg.cancel_scope.cancel()
            return
        config = load(config_path)
        log.configure(config.daemon.log_level, config.daemon.log_path())
        handle = await tg.start(
            partial(run_daemon, config, MemoryTokenStore(credentials), retry=retry)
        )
        try:
            yield Stack(root, env, config_path, running, handle)
        finally:
            handle.stop()
            tg.cancel_scope.cancel()  # the sandboxes' servers belong to this group too


@asynccontextmanager
async def child_daemon(
    config_path: Path, credentials: Mapping[str, str], env: Mapping[str, str]
) -> AsyncIterator[Process]:
    """A daemon in its own process, serving once this is entered; SIGTERM at the end."""
    given = json.dumps({"config": str(config_path), "credentials": dict(credentials)})
    child = await anyio.open_process(
        [sys.executable, "-m", "rig.daemon_child"],
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,  # the child's own complaints reach the caller's terminal
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        await child.stdin.send(given.encode())
        await child.stdin.aclose()
        said = b""
        async for chunk in child.stdout:
            said += chunk
            if said.endswith(READY):
                break
        else:
            raise RuntimeError(f"the daemon's process ended before it served: {said[-300:]!r}")
        yield child
    finally:
        child.terminate()
        with anyio.CancelScope(shield=True):
            await child.wait()
