"""The tray itself: a pystray icon, its menu, and the worker thread that keeps them current.

Only this module and ``icon.py`` touch the GUI libraries; ``sync.tray.cmd_tray`` imports it
once it knows they load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pystray

from sync.control.client import ControlClient
from sync.errors import SyncdError
from sync.tray.icon import draw
from sync.tray.model import Incidents, MenuEntry, View, fix_sentence, not_running
from sync.tray.poll import CALL_TIMEOUT, Poller, fetch
from sync.tray.xwake import install

TITLE = "syncd"
#: What pystray's X backend logs, with a traceback, each time no tray host is there yet.
NOT_DOCKED = "Failed to dock icon"
#: Seconds the icon's loop gets to end after a stop before its X connection is closed.
STOP_GRACE = 3.0


class Notifier:
    """Says one sentence to the user: the icon's own notification where the backend has
    one, else ``notify-send`` if installed; always on stderr too (for a terminal)."""

    def __init__(self, icon: Any) -> None:
        self._icon = icon
        self._notify_send = shutil.which("notify-send")

    def say(self, sentence: str) -> None:
        """Show ``sentence``; a notification that cannot be shown is not an error."""
        print(f"syncd tray: {sentence}", file=sys.stderr, flush=True)
        if getattr(self._icon, "HAS_NOTIFICATION", False):
            self._icon.notify(sentence, TITLE)
        elif self._notify_send is not None:
            # No notification daemon is no error: stderr said it.
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(  # noqa: S603 — a fixed program found on PATH, our own words
                    [self._notify_send, "--app-name", TITLE, TITLE, sentence],
                    capture_output=True,
                    timeout=5,
                    check=False,
                )


def log_location(config_path: str | None) -> Path | str:
    """The daemon's log file, or a sentence saying why there is none to open."""
    from sync.config import load

    try:
        path = load(config_path).daemon.log_path()
    except SyncdError as error:
        return f"cannot tell where the log is: {error}"
    return path if path is not None else "the daemon logs to its standard error (log_file = -)"


def open_log(config_path: str | None, say: Callable[[str], None]) -> None:
    """Open the daemon's log with the desktop's opener, or say where it is."""
    where = log_location(config_path)
    if isinstance(where, str):
        say(where)
        return
    opener = shutil.which("open" if sys.platform == "darwin" else "xdg-open")
    if opener is None or not where.exists():
        say(f"the daemon's log is {where}")
        return
    try:
        done = subprocess.run(  # noqa: S603 — the desktop's opener on our own log file
            [opener, str(where)], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        say(f"could not open the log; it is {where}")
        return
    if done.returncode != 0:
        say(f"could not open the log; it is {where}")


class QuietUndocked(logging.Filter):
    """Drops pystray's "cannot dock" records: no tray host yet is expected (a panel that
    starts after the tray at login), and the tray retries on every poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(NOT_DOCKED)


def undocked(icon: Any) -> bool:
    """True when pystray's X backend found no tray host to dock into (other backends
    have no such state)."""
    return getattr(icon, "_systray_manager", True) is None


class Tray:
    """The icon, its menu, and the poller that owns every blocking call."""

    def __init__(self, socket: Path, config_path: str | None) -> None:
        self._client = ControlClient(socket, timeout=CALL_TIMEOUT)
        self._config_path = config_path
        self._view = not_running("syncd: looking for the daemon")
        self._drawn: tuple[str, int] | None = None
        self._incidents = Incidents()
        self.icon: Any = pystray.Icon(
            "syncd", draw("not_running"), self._view.tooltip, menu=pystray.Menu(self._items)
        )
        #: pystray's X backend: icon changes from our threads reach its loop over a
        #: connection of their own (sync/tray/xwake.py); None with other backends.
        self._waker = install(self.icon)
        self._gui_log: logging.Logger = getattr(self.icon, "_log", logging.getLogger("pystray"))
        self._gui_log.addFilter(QuietUndocked())
        self._notifier = Notifier(self.icon)
        self._ended = threading.Event()
        self.poller = Poller(lambda: fetch(self._client), self._show, self._stop_icon)

    def run(self) -> int:
        """Show the icon until Quit, SIGTERM or SIGINT; the exit code."""
        with Signals(self.poller.quit, self._ended):
            try:
                self.icon.run(setup=self._setup)
            finally:
                self._ended.set()
                joined = self.poller.stop()
                if self._waker is not None:
                    self._waker.close()
        if not joined:
            print("syncd: the tray's poller did not stop in time", file=sys.stderr)
            return 1
        if self.poller.error is not None:
            error = type(self.poller.error).__name__
            print(f"syncd: the tray stopped on an unexpected {error} (a bug)", file=sys.stderr)
            return 1
        return 0

    def _stop_icon(self) -> None:
        """Runs in the poller's thread: end pystray's loop, for sure."""
        self.icon.stop()
        # pystray's X loop shares one connection with this thread, and now and then it
        # misses its own window's destruction and waits on; closing the connection ends it.
        display = getattr(self.icon, "_display", None)
        if not self._ended.wait(STOP_GRACE) and display is not None:
            self._gui_log.disabled = True  # it would log the closed connection
            display.close()

    def _setup(self, icon: Any) -> None:
        icon.visible = True
        self.poller.start()

    def _show(self, view: View) -> None:
        """Runs in the poller's thread: redraw only what changed, notify new incidents."""
        self._view = view
        drawn = (view.state, view.queue if view.state == "syncing" else 0)
        if drawn != self._drawn or undocked(self.icon):
            # A new picture also makes pystray look for a tray host again.
            self.icon.icon = draw(view.state, drawn[1])
            self._drawn = drawn
        if self.icon.title != view.tooltip:
            self.icon.title = view.tooltip
        self.icon.update_menu()
        for sentence in self._incidents.new(view):
            self._notifier.say(sentence)

    def _items(self) -> Iterator[Any]:
        for entry in self._view.menu():
            yield pystray.MenuItem(
                entry.text,
                self._handler(entry),
                enabled=entry.enabled,
                default=entry.action == "status",
            )

    def _handler(self, entry: MenuEntry) -> Callable[[], None]:
        """What a click on ``entry`` does; the work itself runs in the poller's thread."""
        say = self._notifier.say
        action = entry.action
        if action == "quit":
            return self.poller.quit
        if action in ("pause", "resume"):
            return lambda: self.poller.request(lambda: self._control(f"/v1/{action}"))
        if action == "open_log":
            return lambda: self.poller.request(lambda: open_log(self._config_path, say))
        if action == "fix":
            return lambda: self.poller.request(lambda: say(fix_sentence(entry.target)))
        if action == "status":
            return lambda: self.poller.request(lambda: say(self._summary()))
        return lambda: None

    def _control(self, path: str) -> None:
        try:
            self._client.call("POST", path)
        except SyncdError as error:
            self._notifier.say(str(error))

    def _summary(self) -> str:
        return "\n".join((self._view.tooltip, *self._view.health_lines))


class Signals:
    """SIGTERM and SIGINT, received by a thread of their own that calls ``on_signal``.

    The signals are blocked in every other thread (the ones started inside the block
    inherit the mask): a Python handler run in the main thread would interrupt the X
    client's socket calls in pystray's loop, and we saw that leave the loop deaf to the
    stop request now and then.
    """

    WATCHED = frozenset({signal.SIGTERM, signal.SIGINT})

    def __init__(self, on_signal: Callable[[], None], ended: threading.Event) -> None:
        self._on_signal = on_signal
        self._ended = ended
        self._closing = False
        self._thread = threading.Thread(target=self._watch, name="syncd-tray-signals")
        self._previous: Iterable[int] = ()

    def __enter__(self) -> Signals:
        self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, self.WATCHED)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing = True
        if self._thread.ident is not None and self._thread.is_alive():
            signal.pthread_kill(self._thread.ident, signal.SIGTERM)  # wakes its sigwait
        self._thread.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)

    def _watch(self) -> None:
        while True:
            signal.sigwait(self.WATCHED)
            if self._closing:
                return
            self._on_signal()
            # The tray holds nothing to save; if the GUI's loop is wedged, leave anyway.
            if not self._ended.wait(STOP_GRACE * 2):
                print("syncd: the tray's icon did not close in time; leaving", file=sys.stderr)
                os._exit(0)


def run_tray(socket: Path, config_path: str | None) -> int:
    """`syncd tray` once the GUI libraries have loaded."""
    return Tray(socket, config_path).run()
