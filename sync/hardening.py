"""Process hardening for ``syncd run``: a native crash never writes memory to disk (P1, P2).

A core dump would hold the tokens and the people in flight. Two switches, both set once
at start: ``RLIMIT_CORE`` to zero (soft and hard, so no child can raise it again) and, on
Linux, ``prctl(PR_SET_DUMPABLE, 0)``, which also keeps other processes of the same user
from attaching a debugger or reading ``/proc/<pid>/mem``. Where either is missing the
switch is skipped: this never raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def no_core_dumps() -> None:
    """Turn core dumps off for this process and its children; skip what the OS lacks."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_DUMPABLE, 0)


def dumpable() -> int | None:
    """``prctl(PR_GET_DUMPABLE)`` on Linux (0: no core dump, no ptrace); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return _prctl(PR_GET_DUMPABLE, 0)


def _prctl(option: int, value: int) -> int | None:
    """Call ``prctl(option, value, 0, 0, 0)``; None when libc or prctl is missing or fails."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    result = int(prctl(option, value, 0, 0, 0))
    return None if result < 0 else result
