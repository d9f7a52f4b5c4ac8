"""pystray's X backend, made safe to drive from the tray's other threads.

pystray (0.19) runs each icon change (picture, title, show, stop) in its X loop's thread: a
call from another thread sends that loop a ClientMessage and waits for it to run the change.
It sends the message over the loop's own X connection, from the calling thread, while the
loop waits on that connection for a reply of its own; python-xlib now and then loses that
reply, and both threads wait for ever (a tray that never shows its icon, or freezes; seen
under load, see tests/e2e/test_tray_e2e.py). :func:`install` sends those messages over a
connection of their own instead, so the loop's connection is only ever used by the loop.

Only pystray's X backend has these parts; with any other backend (or another pystray whose
parts differ) :func:`install` changes nothing and says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: The icon methods pystray hands to its X loop's thread, each under the atom
#: ``_PYSTRAY_<NAME>`` it interns for them.
DISPATCHED = ("_show", "_hide", "_update_icon", "_update_title", "_stop")
#: What the icon must have for :func:`install` to apply.
NEEDED = ("_window", "_queue", "_display", "_message_handlers")


class Waker:
    """A private X connection that sends the X loop its "run this" messages."""

    def __init__(self, window_id: int) -> None:
        from Xlib import display

        self._display: Any = display.Display()
        self._window: Any = self._display.create_resource_object("window", window_id)
        self._atoms: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, atom_name: str) -> None:
        """Queue the ClientMessage ``atom_name`` for the icon's window, at once."""
        from Xlib import X
        from Xlib.protocol import event

        with self._lock:
            atom = self._atoms.get(atom_name)
            if atom is None:
                atom = self._atoms[atom_name] = self._display.intern_atom(atom_name)
            message = event.ClientMessage(
                window=self._window.id,
                client_type=atom,
                data=(32, (X.CurrentTime, 0, 0, 0, 0)),
            )
            self._display.send_event(self._window, message, event_mask=X.NoEventMask)
            self._display.flush()

    def close(self) -> None:
        with self._lock:
            self._display.close()


def _dispatcher(icon: Any, original: Callable[[], None], atom_name: str, waker: Waker) -> Any:
    def dispatch() -> None:
        loop = getattr(icon, "_thread", None)  # set by pystray once its loop runs
        if loop is not None and loop.ident == threading.get_ident():
            original()
            return
        # Before the loop runs, the message waits in the X server's queue for it.
        waker.send(atom_name)
        result = icon._queue.get()
        if result is not True:
            _, error, traceback = result
            raise error.with_traceback(traceback)

    return dispatch


def install(icon: Any) -> Waker | None:
    """Route ``icon``'s cross-thread changes through a private X connection; the
    connection (close it once the icon's loop ended), or None where this does not apply."""
    if not all(hasattr(icon, name) for name in NEEDED):
        return None
    cls = type(icon)
    if not all(callable(getattr(cls, name, None)) for name in DISPATCHED):
        return None
    waker = Waker(icon._window.id)
    for name in DISPATCHED:
        original = getattr(cls, name).__get__(icon, cls)
        setattr(icon, name, _dispatcher(icon, original, f"_PYSTRAY_{name.upper()}", waker))
    return waker
