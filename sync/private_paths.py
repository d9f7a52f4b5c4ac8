"""Owner-only places on disk: the socket's directory, the journal, the log.

A directory syncd keeps things in is created 0700 and refused when it is a symbolic link,
belongs to another user, lets group or others in, or sits below a directory another user
can rename entries in. A file is opened without following a symbolic link, created 0600,
and its owner is checked on the open descriptor, so nothing can be swapped in between the
check and the use. Standard library only: the thin client checks the socket with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from sync.errors import SyncdError


class UnsafePath(SyncdError):
    """A place syncd would keep private is not: one sentence naming it and what to do."""

    exit_code = 2  # a setting or the machine needs fixing, as for a config error

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{path} {problem}; {remedy}")


class PathUnavailable(UnsafePath, OSError):
    """The OS refused to create, open or examine the place (full or read-only disk,
    permissions); still an ``OSError`` with its ``errno``, for callers that handle those."""

    def __init__(self, path: Path, problem: str, remedy: str, cause: OSError) -> None:
        super().__init__(path, problem, remedy)
        self.errno = cause.errno
        self.strerror = cause.strerror

    def __str__(self) -> str:
        return str(self.args[0])  # the sentence, not OSError's "[Errno N] ..."


def _replaceable_by_others(info: os.stat_result, uid: int) -> bool:
    """Whether another user could rename or replace the entries of this directory."""
    open_to_all = bool(info.st_mode & 0o002) and not info.st_mode & stat.S_ISVTX
    return info.st_uid not in (0, uid) or open_to_all


def check_private_dir(path: Path, info: os.stat_result, setting: str) -> None:
    """Refuse ``path`` (its ``lstat``) unless it is a real directory, ours, owner-only."""
    uid = os.getuid()
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(
            path, "is a symbolic link", f"replace it with a directory or choose another {setting}"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(path, "is not a directory", f"choose another {setting}")
    if info.st_uid != uid:
        raise UnsafePath(
            path,
            f"belongs to another user (uid {info.st_uid})",
            f"remove it or choose another {setting}",
        )
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafePath(
            path, f"is open to other users (mode {mode:04o})", f"run `chmod 700 {path}` on it"
        )


def private_dir(path: Path, *, setting: str) -> None:
    """Create ``path`` 0700 (and any missing parent), or refuse an unsafe one.

    ``setting`` names the config key that chose the place, for the sentence.
    """
    uid = os.getuid()
    try:
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir(mode=0o700, exist_ok=True)
            # Whoever can rename entries in an ancestor can swap our directory for theirs.
            if _replaceable_by_others(parent.stat(), uid):
                raise UnsafePath(
                    parent, "lets another user replace what is inside", f"choose another {setting}"
                )
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PathUnavailable(
            path,
            f"cannot be created ({reason})",
            f"check its parent or choose another {setting}",
            error,
        ) from None
    check_private_dir(path, info, setting)


def open_private_file(path: Path, *, setting: str, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """A descriptor on ``path``, created 0600 in a private directory; never via a link.

    Refuses a symbolic link, anything but a regular file, and a file another user owns;
    a file of ours that others could read is made 0600.
    """
    private_dir(path.parent, setting=setting)
    # O_NONBLOCK: a FIFO planted at the path fails at once instead of hanging the open.
    all_flags = flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, all_flags, 0o600)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):  # EMLINK: O_NOFOLLOW on the BSDs
            raise UnsafePath(
                path, "is a symbolic link", f"remove the link or choose another {setting}"
            ) from None
        reason = error.strerror or type(error).__name__
        raise PathUnavailable(
            path, f"cannot be opened ({reason})", f"check it or choose another {setting}", error
        ) from None
    try:
        _check_open_file(path, fd, setting)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_open_file(path: Path, fd: int, setting: str) -> None:
    """Refuse what ``fd`` (opened at ``path``) is unless it is our regular file; make it 0600."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(path, "is not a regular file", f"choose another {setting}")
    if info.st_uid != os.getuid():
        raise UnsafePath(
            path,
            f"belongs to another user (uid {info.st_uid})",
            f"remove it or choose another {setting}",
        )
    if stat.S_IMODE(info.st_mode) != 0o600:
        os.fchmod(fd, 0o600)
    os.set_blocking(fd, True)


def check_socket(path: Path) -> None:
    """Refuse a control socket whose directory or file is not ours and private.

    Uses ``lstat`` only (no link is followed). A missing socket or directory passes: the
    caller's connect then reports that the daemon is not running.
    """
    setting = "[daemon] socket"
    directory = _lstat(path.parent, setting)
    if directory is None:
        return
    check_private_dir(path.parent, directory, setting)
    info = _lstat(path, setting)
    if info is None:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(path, "is a symbolic link", "remove it and restart `syncd run`")
    if not stat.S_ISSOCK(info.st_mode):
        raise UnsafePath(path, "is not a socket", f"remove it or choose another {setting}")
    if info.st_uid != os.getuid():
        raise UnsafePath(
            path,
            f"belongs to another user (uid {info.st_uid})",
            "run syncd commands as the user who started the daemon",
        )
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafePath(
            path,
            f"can be written by other users (mode {mode:04o})",
            f"run `chmod 600 {path}` or restart `syncd run`",
        )


def _lstat(path: Path, setting: str) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PathUnavailable(
            path, f"cannot be examined ({reason})", f"check it or choose another {setting}", error
        ) from None
