"""A daemon in a process of its own, as a user runs it: the throwaway stack's ``separate``
daemon and the idle benchmark's.

    python -m rig.daemon_child < {"config": PATH, "credentials": {NAME: VALUE}}

The credentials come on stdin (never argv) and live in a memory token store. The child
prints ``ready`` on stdout once its control socket serves, and stops on SIGTERM.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import anyio

from sync import log
from sync.config import Config, load
from sync.daemon import run_daemon
from sync.secrets import MemoryTokenStore

READY = b"ready\n"


async def _serve(config: Config, store: MemoryTokenStore) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(partial(run_daemon, config, store))
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()


def main() -> None:
    given = json.load(sys.stdin)
    config = load(Path(given["config"]))
    log.configure(config.daemon.log_level, config.daemon.log_path())
    anyio.run(_serve, config, MemoryTokenStore(dict(given["credentials"])))


if __name__ == "__main__":
    main()
