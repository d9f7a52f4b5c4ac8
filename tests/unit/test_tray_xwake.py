"""sync/tray/xwake.py applies to pystray's X backend only: any other icon is left alone."""

from __future__ import annotations

from sync.tray.xwake import install


class _OtherBackendIcon:
    """An icon of a backend with no X loop (no window, queue or display of its own)."""

    def _update_icon(self) -> None:
        """Draws at once."""


def test_an_icon_without_an_x_loop_is_left_as_it_is() -> None:
    icon = _OtherBackendIcon()
    assert install(icon) is None
    assert "_update_icon" not in vars(icon)  # no dispatcher was put in front of it
