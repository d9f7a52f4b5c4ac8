"""`syncd tray` on a real X server (Xvfb) with a real tray host (trayer), against a real
daemon: the icon's pixels on screen follow the daemon's state.

``SYNCD_SCREENSHOTS=DIR`` saves one picture of the tray per state there
(scripts/screenshots.py does that for docs/images/).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from rig.stack import syncd_argv
from sync.tray.icon import COLOURS
from sync.tray.model import IDLE_INTERVAL, TrayState
from tests.e2e.conftest import Env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The corner of the screen where trayer docks the icon, and the scale of saved pictures.
TRAY_AREA = (0, 0, 40, 36)
SCALE = 4
#: Where every local X server keeps its socket and its lock file (fixed by X, not ours).
X11_SOCKETS = Path("/tmp/.X11-unix")  # noqa: S108
X_LOCKS = Path("/tmp")  # noqa: S108
TRAYER = ("--edge", "top", "--align", "left", "--widthtype", "request", "--height", "32")


def _free_display() -> int:
    for number in range(90, 190):
        if (
            not (X11_SOCKETS / f"X{number}").exists()
            and not (X_LOCKS / f".X{number}-lock").exists()
        ):
            return number
    pytest.skip("no free X display number between :90 and :189")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def screen() -> Iterator[str]:
    """A fresh Xvfb with no tray host yet; the DISPLAY value."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None or shutil.which("trayer") is None:
        pytest.skip("Xvfb and trayer are needed (scripts/test.sh installs them)")
    name = f":{_free_display()}"
    server = subprocess.Popen(
        [xvfb, name, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        socket = X11_SOCKETS / f"X{name[1:]}"
        deadline = time.monotonic() + 10
        while not socket.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not socket.exists():
            pytest.skip(f"Xvfb could not be started on {name}")
        yield name
    finally:
        _stop(server)


def tray_host_owner(display: str) -> int:
    """The window owning the tray selection of screen 0 (0: no tray host)."""
    from Xlib.display import Display

    connection = Display(display)
    try:
        owner = connection.get_selection_owner(connection.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return int(getattr(owner, "id", owner))
    finally:
        connection.close()


@contextlib.contextmanager
def tray_host(display: str) -> Iterator[None]:
    """trayer docked at the top left of ``display``, once it owns the tray selection."""
    host = subprocess.Popen(
        [str(shutil.which("trayer")), *TRAYER, "--SetDockType", "true"],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while tray_host_owner(display) == 0:
            if host.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"trayer did not take the tray selection (exit {host.poll()})")
            time.sleep(0.05)
        yield
    finally:
        _stop(host)


@pytest.fixture
def display(screen: str) -> Iterator[str]:
    """A fresh Xvfb with trayer docked at its top left; the DISPLAY value."""
    with tray_host(screen):
        yield screen


def screenshot(display: str) -> Image.Image:
    """The root window of ``display``, read with python-xlib."""
    from Xlib import X
    from Xlib.display import Display

    connection = Display(display)
    try:
        root = connection.screen().root
        geometry = root.get_geometry()
        raw = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        size = (geometry.width, geometry.height)
        return Image.frombytes("RGB", size, raw.data, "raw", "BGRX")
    finally:
        connection.close()


def shown_state(image: Image.Image) -> TrayState | None:
    """The state whose colour covers most of the tray corner (at least a few pixels)."""
    corner = image.crop(TRAY_AREA)
    counts: dict[TrayState, int] = dict.fromkeys(COLOURS, 0)
    by_colour = {colour: state for state, colour in COLOURS.items()}
    for x in range(corner.width):
        for y in range(corner.height):
            state = by_colour.get(corner.getpixel((x, y)))  # type: ignore[arg-type]
            if state is not None:
                counts[state] += 1
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] >= 20 else None


def wait_for(
    display: str, state: TrayState, tray: subprocess.Popen[str], timeout: float = 20.0
) -> Image.Image:
    """Screenshots until the tray shows ``state``; the last one. A failure says what the
    tray corner held and what the tray printed."""
    deadline = time.monotonic() + timeout
    seen: TrayState | None = None
    while time.monotonic() < deadline and tray.poll() is None:
        image = screenshot(display)
        seen = shown_state(image)
        if seen == state:
            return image
        time.sleep(0.25)
    corner = screenshot(display).crop(TRAY_AREA)
    colours = sorted(corner.getcolors(maxcolors=corner.width * corner.height) or [], reverse=True)
    code, printed = end_tray(tray)
    pytest.fail(
        f"the tray showed {seen} instead of {state} within {timeout:.0f} s; the corner's "
        f"colours (count, rgb): {colours[:5]}; tray host owner {tray_host_owner(display):#x}; "
        f"the tray exited {code} after printing: {printed[-9000:]!r}"
    )


def keep(image: Image.Image, state: str) -> None:
    """Save the tray corner, enlarged, when SYNCD_SCREENSHOTS names a folder."""
    folder = os.environ.get("SYNCD_SCREENSHOTS")
    if not folder:
        return
    corner = image.crop(TRAY_AREA)
    corner = corner.resize((corner.width * SCALE, corner.height * SCALE), Image.Resampling.NEAREST)
    corner.save(Path(folder) / f"tray-{state}.png", optimize=True)


def start_tray(env: Env, display: str) -> subprocess.Popen[str]:
    """`syncd tray` on ``display`` with pystray's X backend."""
    return subprocess.Popen(
        syncd_argv("tray"),
        env={**env.environ, "DISPLAY": display, "PYSTRAY_BACKEND": "xorg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def end_tray(tray: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM the tray; its exit code and everything it printed."""
    if tray.poll() is None:
        tray.send_signal(signal.SIGTERM)
    if tray.stdout is None or tray.stdout.closed:  # ended already, by a failed wait_for
        return tray.wait(timeout=30), ""
    out, err = tray.communicate(timeout=30)
    return tray.returncode, out + err


class TestTrayOnScreen:
    """The real tray, drawn by a real X server, follows the real daemon."""

    def test_the_icon_follows_the_daemon(self, env: Env, display: str) -> None:
        """Idle is green, paused amber, resumed green again, a stopped daemon grey; the tray
        then quits on SIGTERM with exit 0 and no traceback."""
        daemon = env.start_daemon()
        tray = start_tray(env, display)
        try:
            keep(wait_for(display, "idle", tray), "idle")
            assert env.syncd("pause").returncode == 0
            keep(wait_for(display, "paused", tray), "paused")
            assert env.syncd("resume").returncode == 0
            wait_for(display, "idle", tray)
            assert env.stop_daemon(daemon) == 0
            keep(wait_for(display, "not_running", tray), "not-running")
        finally:
            code, printed = end_tray(tray)
        assert code == 0, printed
        assert "Traceback" not in printed

    def test_a_tray_host_that_comes_later_still_gets_the_icon(self, env: Env, screen: str) -> None:
        """At login the panel may start after `syncd tray`: the icon docks once a tray host
        appears, though the daemon's state never changed, and nothing is printed meanwhile."""
        env.start_daemon()
        tray = start_tray(env, screen)
        try:
            # A few polls with no tray host: the tray waits, quietly (there is no event to
            # await for "nothing happened").
            time.sleep(IDLE_INTERVAL * 2 + 1)
            assert tray.poll() is None
            assert shown_state(screenshot(screen)) is None
            with tray_host(screen):
                wait_for(screen, "idle", tray)
        finally:
            code, printed = end_tray(tray)
        assert code == 0, printed
        assert "Traceback" not in printed, printed
        assert "dock" not in printed, printed
