"""A daemon in a process of its own, for RSS and wake-up counts that are the daemon's alone.

    python -m bench.daemon_child < {"config": PATH, "credentials": {NAME: VALUE}}

The credentials come on stdin (never argv) and live in a memory token store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

from sync import log
from sync.config import load
from sync.daemon import run_daemon
from sync.secrets import MemoryTokenStore


def main() -> None:
    given = json.load(sys.stdin)
    config = load(Path(given["config"]))
    log.configure(config.daemon.log_level, config.daemon.log_path())
    anyio.run(run_daemon, config, MemoryTokenStore(dict(given["credentials"])))


if __name__ == "__main__":
    main()
