"""The in-flight log: which selections this run started and has not finished, so that the
next start can tell which ones a crash interrupted (the journal's docstring says how it is
used to stop a crash loop)."""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from cryptography.fernet import Fernet

from sync.journal_files import errno_name, forget_file

log = structlog.get_logger("syncd.journal")

INFLIGHT = ".inflight"
#: An in-flight log past this size is closed and a new one begun.
ROTATE_BYTES = 256 * 1024


class InflightLog:
    """The selections this run started and has not finished (see the module docstring)."""

    def __init__(self, directory: Path, run: str, fernet: Fernet) -> None:
        self._directory = directory
        self._run = run
        self._fernet = fernet
        self._fd: int | None = None
        self._name = ""
        self._size = 0
        self._serial = 0
        self._open: dict[str, set[str]] = {}  # log file name -> started, not finished
        self._where: dict[str, str] = {}  # selection id -> log file name
        self._warned = False

    def started(self, selection_id: str) -> None:
        """``selection_id`` is being worked on: one encrypted line, no fsync."""
        line = self._fernet.encrypt(selection_id.encode()) + b"\n"
        try:
            if self._fd is None or self._size >= ROTATE_BYTES:
                self._rotate()
            assert self._fd is not None
            os.write(self._fd, line)
        except OSError as error:
            if not self._warned:  # once per run: a full disk would say it per selection
                self._warned = True
                log.warning("journal.inflight_unwritable", code=errno_name(error))
            return
        self._size += len(line)
        self._open[self._name].add(selection_id)
        self._where[selection_id] = self._name

    def finished(self, selection_id: str) -> None:
        """``selection_id`` reached an outcome; a log with nothing left open is deleted."""
        name = self._where.pop(selection_id, None)
        if name is None:
            return
        still = self._open[name]
        still.discard(selection_id)
        if not still and name != self._name:
            del self._open[name]
            forget_file(self._directory / name)

    def _rotate(self) -> None:
        old, old_fd = self._name, self._fd
        self._serial += 1
        name = f"run-{self._run}-{self._serial:04d}{INFLIGHT}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW
        self._fd = os.open(self._directory / name, flags, 0o600)
        self._name, self._size = name, 0
        self._open[name] = set()
        if old_fd is not None:
            os.close(old_fd)
            if not self._open[old]:
                del self._open[old]
                forget_file(self._directory / old)

    def close(self) -> None:
        """The run ends cleanly: nothing it had in flight was interrupted by a crash."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for name in self._open:
            forget_file(self._directory / name)
        self._open.clear()
        self._where.clear()


def run_of(name: str) -> str:
    """The run id in an in-flight log's file name (``run-<id>-<n>.inflight``)."""
    parts = name.split("-")
    return parts[1] if len(parts) == 3 and parts[0] == "run" else name
