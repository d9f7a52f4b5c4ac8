"""The tray's one worker thread: it polls ``GET /v1/status`` and runs what the menu asks
(pause, resume, open the log), so the GUI's loop never waits on the daemon.

pystray runs its own loop in the main thread, so this is a plain thread, owned by the tray:
started once the icon shows, stopped and joined when the icon goes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from sync.control.client import ControlClient
from sync.errors import DaemonNotRunning, SyncdError
from sync.tray.model import TrayState, View, not_running, poll_interval, view_of

#: Seconds one status call may take before the tray shows the daemon as unreachable.
CALL_TIMEOUT = 3.0

Work = Callable[[], None]


def fetch(client: ControlClient) -> View:
    """The view of the daemon's status now; "not running" when nothing answers."""
    try:
        status = client.status()
    except DaemonNotRunning:
        return not_running()
    except SyncdError as error:  # an unsafe socket, a daemon too slow to answer, garbage
        return not_running(f"syncd cannot be reached: {error}")
    if not isinstance(status, dict):
        return not_running("syncd answered something that is not a status; check its log")
    return view_of(status)


class Poller:
    """Polls, hands each view to ``show``, and runs requested work between polls.

    ``quit()`` ends the loop from any thread (a menu click, a signal handler) and calls
    ``on_quit`` from this thread, so the GUI is told to stop by the one thread that updates
    it. ``stop()`` is the owner's: it ends the loop and joins the thread.
    """

    def __init__(
        self,
        fetch: Callable[[], View],
        show: Callable[[View], None],
        on_quit: Callable[[], None],
        *,
        interval: Callable[[TrayState], float] = poll_interval,
    ) -> None:
        self._fetch = fetch
        self._show = show
        self._on_quit = on_quit
        self._interval = interval
        self._requests: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncd-tray-poll", daemon=True)
        #: What ended the loop, if it was not asked to end (a bug: the tray then exits 1).
        self.error: Exception | None = None

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def request(self, work: Work) -> None:
        """Run ``work`` in the poller's thread, then poll again at once."""
        self._requests.put(work)

    def quit(self) -> None:
        """End the loop; ``on_quit`` runs in the poller's thread."""
        self._requests.put(None)

    def stop(self, timeout: float = 10.0) -> bool:
        """End the loop without calling ``on_quit`` and join the thread; False if it hung."""
        self._stopping.set()
        self._requests.put(None)
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # kept for the owner, who reports it
            self.error = error
        finally:
            if not self._stopping.is_set():
                self._on_quit()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            view = self._fetch()
            if self._stopping.is_set():
                return
            self._show(view)
            try:
                work = self._requests.get(timeout=self._interval(view.state))
            except queue.Empty:
                continue
            if work is None:
                return
            work()
