"""Scenario 4: the daemon alone in its own process: idle RSS and wake-ups, then peak RSS
while a burst of selections drains.

Wake-ups are the context switches of every thread of the daemon's process (``/proc/<pid>/
task/*/status``: voluntary + involuntary), over the idle window: each is the process
leaving the CPU, which an idle process only does when something woke it.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from connectors.linkedin.sandbox.samples import generated_people
from rig.runner import config_text, start_sandboxes
from rig.stack import ThrowawayDirs, child_daemon, syncd_argv

MIB = 1024 * 1024


@dataclass(slots=True)
class IdleFigures:
    idle_seconds: float
    idle_rss_mb: float
    wakeups_per_s: float
    drain_selections: int
    drained: int
    drain_seconds: float
    peak_rss_mb: float


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def switches(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


async def _cli(env: dict[str, str], config: Path, *args: str) -> tuple[int, str]:
    command, *rest = args
    done = await anyio.run_process(
        syncd_argv(command, "--config", str(config), *rest),
        stdin=subprocess.DEVNULL, check=False, env=env,
    )  # fmt: skip
    return done.returncode, done.stdout.decode()


async def measure(root: Path, idle_seconds: float, drain: int, patience: float) -> IdleFigures:
    """Idle for ``idle_seconds``, then accept ``drain`` selections and drain them (at most
    ``patience`` seconds)."""
    dirs = ThrowawayDirs.make(root)
    env = dirs.environ()
    config = dirs["config"] / "config.toml"
    async with anyio.create_task_group() as tg:
        running = await start_sandboxes(tg)
        source = running["source"].as_source
        source.set_rate_limit(1_000_000, 1.0)
        config.write_text(config_text(running, daemon={
            "socket": str(dirs["run"] / "syncd.sock"),
            "log_file": str(dirs["log"] / "syncd.log"),
            "journal_dir": str(dirs["state"] / "journal"),
        }))  # fmt: skip
        credentials = {n: sb.credential for n, sb in running.items()}
        async with child_daemon(config, credentials, env) as daemon:
            await anyio.sleep(1.0)  # let start-up work settle before the idle window
            pid = daemon.pid
            before, started = switches(pid), time.perf_counter()
            await anyio.sleep(idle_seconds)
            idle_time = time.perf_counter() - started
            wakeups = (switches(pid) - before) / idle_time
            idle_rss = _status_kib(pid, "VmRSS") / 1024

            source.add_people(generated_people(drain))
            refs = root / "refs.txt"
            refs.write_text("".join(f"person-{n}\n" for n in range(1000, 1000 + drain)))
            await _cli(env, config, "pause")
            await _cli(env, config, "add-contact", "--from-file", str(refs), "--no-wait")
            started = time.perf_counter()
            await _cli(env, config, "resume")
            left = drain
            with anyio.move_on_after(patience):
                while left:
                    await anyio.sleep(1.0)
                    left = int(
                        json.loads((await _cli(env, config, "status", "--json"))[1])["queue"]
                    )
            drain_time = time.perf_counter() - started
            peak = _status_kib(pid, "VmHWM") / 1024
        tg.cancel_scope.cancel()
    return IdleFigures(idle_time, idle_rss, wakeups, drain, drain - left, drain_time, peak)
