"""The journal's dealings with the disk: atomic, fsynced writes, removals, its private
directory, and how the OS's refusals are named in sentences and logs."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

import structlog

from sync.private_paths import private_dir

log = structlog.get_logger("syncd.journal")

REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def reason(error: OSError) -> str:
    """What the OS refused, in words ("the disk is full")."""
    if error.errno is None:
        return type(error).__name__
    return REASONS.get(error.errno) or os.strerror(error.errno)


def errno_name(error: OSError) -> str:
    """The refusal's code for the log (``ENOSPC``)."""
    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep half a segment
        raise
    fsync_dir(path.parent)


def unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def forget_file(path: Path) -> None:
    """Remove ``path`` if possible; a leftover only makes the next start count again."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("journal.remove_failed", file=path.name, code=errno_name(error))


def make_private_dir(path: Path) -> None:
    """``path`` as a private directory (0700, ours, no symlink): the socket's checks too."""
    private_dir(path, setting="[daemon] journal_dir")
