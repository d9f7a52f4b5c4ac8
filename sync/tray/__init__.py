"""`syncd tray`: an icon that shows the daemon's state (the extra ``syncd[tray]``).

The GUI libraries load only here, inside the command, so a missing extra or a session
without a display is one sentence, not a traceback.
"""

from __future__ import annotations

import argparse

from sync.errors import UsageError

EXTRA_MISSING = "the tray needs the tray extra: pip install 'syncd[tray]'"


def cmd_tray(args: argparse.Namespace) -> int:
    """`syncd tray`: the icon, until Quit, SIGTERM or Ctrl-C."""
    from sync.config import socket_path

    try:
        import PIL.Image  # noqa: F401 — checked before pystray, which needs it too
        import pystray  # noqa: F401 — picks its backend (and opens the display) on import
    except ImportError as error:
        if error.name in ("pystray", "PIL", "PIL.Image"):
            raise UsageError(EXTRA_MISSING) from None
        raise UsageError(  # pystray is there but none of its backends loads here
            f"the tray found no way to show an icon on this desktop ({error}); set "
            "PYSTRAY_BACKEND (appindicator, gtk or xorg) to one whose libraries are installed"
        ) from None
    except Exception as error:  # pystray's X backend raises Xlib's own errors without a display
        raise UsageError(
            "the tray needs a graphical session and found none "
            f"({type(error).__name__}); is DISPLAY or WAYLAND_DISPLAY set?"
        ) from None
    from sync.tray.app import run_tray

    return run_tray(socket_path(args.config), args.config)
