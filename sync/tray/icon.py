"""The tray icon, drawn with Pillow: a disc coloured by state, a badge with the queue while
syncing. Pure: the same state and queue give the same pixels."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from sync.tray.model import TrayState

RGB = tuple[int, int, int]

#: One colour per state; the centre of the icon is always this colour.
COLOURS: dict[TrayState, RGB] = {
    "idle": (46, 160, 67),
    "syncing": (31, 111, 235),
    "paused": (219, 154, 4),
    "attention": (207, 34, 46),
    "not_running": (128, 128, 128),
}
BADGE: RGB = (255, 255, 255)
INK: RGB = (0, 0, 0)
SIZE = 64


def badge_text(queue: int) -> str:
    """The badge's digits: the queue, capped so they fit."""
    return "99+" if queue > 99 else str(queue)


def badge_box(size: int = SIZE) -> tuple[int, int, int, int]:
    """Where the badge sits: the lower right corner, clear of the centre."""
    return (size * 9 // 20, size * 9 // 20, size - 1, size - 1)


def draw(state: TrayState, queue: int = 0, size: int = SIZE) -> Image.Image:
    """The icon for ``state``; while syncing with a queue, a badge shows how many wait."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    margin = max(1, size // 32)
    pen.ellipse((margin, margin, size - 1 - margin, size - 1 - margin), fill=COLOURS[state])
    # Shape cues for who cannot tell the colours apart; they keep clear of the centre.
    if state == "paused":
        for left in (0.28, 0.58):
            x = round(size * left)
            pen.rectangle((x, size * 3 // 10, x + size * 3 // 20, size * 7 // 10), fill=BADGE)
    elif state == "attention":  # an exclamation mark whose gap sits on the centre
        half = size // 14
        mid = size // 2
        pen.rectangle((mid - half, size // 5, mid + half, size * 2 // 5), fill=BADGE)
        pen.ellipse((mid - half, size * 3 // 5, mid + half, size * 3 // 5 + 2 * half), fill=BADGE)
    elif state == "not_running":
        inset = size // 5
        pen.ellipse((inset, inset, size - 1 - inset, size - 1 - inset), outline=BADGE, width=2)
    if state == "syncing" and queue > 0:
        _badge(pen, badge_text(queue), badge_box(size))
    return image


def _badge(pen: ImageDraw.ImageDraw, text: str, box: tuple[int, int, int, int]) -> None:
    pen.ellipse(box, fill=BADGE, outline=INK, width=1)
    left, top, right, bottom = box
    height = (bottom - top) * (0.6 if len(text) == 1 else 0.45)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        font = ImageFont.load_default(size=height)
    except TypeError:  # Pillow 10.0: only the fixed bitmap font
        font = ImageFont.load_default()
    centre = ((left + right) / 2, (top + bottom) / 2)
    pen.text(centre, text, fill=INK, font=font, anchor="mm")
