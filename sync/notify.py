"""The daemon's side of the service manager's notify protocol (systemd's ``sd_notify``).

When ``$NOTIFY_SOCKET`` is set (``Type=notify`` units), the daemon says ``READY=1`` once
its control socket serves, a ``STATUS=`` line whenever its state changes, ``WATCHDOG=1``
every half of ``$WATCHDOG_USEC``, and ``STOPPING=1`` when a stop begins. Without
``$NOTIFY_SOCKET`` nothing here runs. A status line says the state, the queue's length and
which connector needs attention, by instance name: never a person's data.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Mapping

import anyio
import structlog
from anyio.abc import TaskStatus

log = structlog.get_logger("syncd.notify")

#: How often the daemon's state is compared with the last status line sent.
STATUS_SECONDS = 1.0

StatusSource = Callable[[], Mapping[str, object]]


def status_line(status: Mapping[str, object]) -> str:
    """One short line for the service manager from the control API's status object."""
    state = status.get("state")
    queue = status.get("queue")
    pending = f"{queue} pending" if isinstance(queue, int) and queue else ""
    if state == "paused":
        return "paused" + (f", {pending}" if pending else "")
    if state == "attention":
        needs = [f"{name} {health}" for name, health in _unhealthy(status)]
        journal = status.get("journal")
        if isinstance(journal, Mapping) and journal.get("note"):
            needs.append("journal")
        line = "attention: " + (", ".join(needs) or "see syncd status")
        return line + (f"; {pending}" if pending else "")
    if state == "syncing":
        return pending or "syncing"
    return str(state) if isinstance(state, str) else "running"


def _unhealthy(status: Mapping[str, object]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    rows: dict[str, object] = {"source": status.get("source")}
    crms = status.get("crms")
    if isinstance(crms, Mapping):
        rows |= {str(name): row for name, row in crms.items()}
    for name, row in rows.items():
        health = row.get("health") if isinstance(row, Mapping) else None
        if isinstance(health, str) and health != "ok":
            found.append((name, health))
    return found


def _address(raw: str) -> str | bytes | None:
    """The socket address of ``$NOTIFY_SOCKET``: a path, or an abstract name after ``@``."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock and other families: not a service manager a desktop runs


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, if the watchdog is meant for this process."""
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


class Notifier:
    """Sends notify messages to one service manager socket; see the module's docstring."""

    def __init__(self, address: str | bytes, watchdog_s: float | None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        self._failing = False
        self._last_status: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """A notifier when ``$NOTIFY_SOCKET`` names a socket; None otherwise."""
        env = os.environ if environ is None else environ
        address = _address(env.get("NOTIFY_SOCKET", ""))
        if address is None:
            return None
        return cls(address, _watchdog_interval(env))

    def send(self, message: str) -> bool:
        """Send one datagram without blocking; a refusal is logged once, never raised."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a manager that does not read must not stall the loop
                sock.sendto(message.encode(), self.address)
        except OSError as error:
            if not self._failing:
                code = errno.errorcode.get(error.errno or 0, type(error).__name__)
                log.warning("notify.failed", code=code)
            self._failing = True
            return False
        self._failing = False
        return True

    def status(self, line: str) -> None:
        """Send ``STATUS=line`` if it differs from the last one sent."""
        if line != self._last_status and self.send(f"STATUS={line}"):
            self._last_status = line

    def stopping(self) -> None:
        """Say that a stop has begun (the daemon drains for a while before it exits)."""
        self.send("STOPPING=1\nSTATUS=stopping")
        self._last_status = "stopping"

    async def run(
        self,
        status: StatusSource,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Say READY=1 with the first status, then keep the status and the watchdog going.

        Start it with ``tg.start`` only once the control socket serves: READY=1 is what a
        ``Type=notify`` unit's dependants, and ``systemctl start``, wait for.
        """
        line = status_line(status())
        self.send(f"READY=1\nSTATUS={line}")
        self._last_status = line
        task_status.started()
        async with anyio.create_task_group() as tg:
            if self.watchdog_s is not None:
                tg.start_soon(self._watchdog, self.watchdog_s)
            while True:
                await anyio.sleep(STATUS_SECONDS)
                if self._last_status != "stopping":
                    self.status(status_line(status()))

    async def _watchdog(self, interval: float) -> None:
        # From the event loop itself: if the loop is stuck, the pings stop and the service
        # manager restarts the daemon, which is the point of the watchdog.
        while True:
            self.send("WATCHDOG=1")
            await anyio.sleep(interval)
