"""Draws Skeet's app icon and splash images into assets/ (what `flet build` turns into every platform's
icon and splash sizes). Re-run after changing the artwork: `.venv/bin/python assets/icons/make_icons.py`.

Pillow comes with flet[all] (flet-cli → flet-platform-assets); the tests read the PNG headers without it.

- `assets/icon.png`: 1024×1024, opaque (iOS rejects an alpha channel in its 1024 px marketing icon);
  the mark sits inside the centre 66 % so Android's adaptive-icon mask never cuts it.
- `assets/splash.png` / `assets/splash_dark.png`: 1024×1024 mark on a transparent background, drawn on
  the splash colours set in `[tool.flet.splash]` (light / dark).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ASSETS = Path(__file__).resolve().parent.parent
SIZE = 1024
SCALE = 2  # drawn at 2× and scaled down: smooth edges without an antialiasing library

BACKGROUND_TOP = (9, 38, 43)
BACKGROUND_BOTTOM = (4, 18, 24)
UP = (72, 214, 160)
DOWN = (240, 98, 98)
WICK_LIGHT = (235, 245, 242)


def _mark(draw: ImageDraw.ImageDraw, *, wick: tuple[int, int, int], s: int) -> None:
    """Three candles climbing left to right, the middle one a pull-back: Skeet's mark."""
    # (centre x, wick top, wick bottom, body top, body bottom, colour), in 1024 px units
    candles = [
        (362, 560, 780, 600, 730, UP),
        (512, 420, 690, 470, 620, DOWN),
        (662, 250, 560, 300, 500, UP),
    ]
    body_w, wick_w = 92, 18
    for cx, wt, wb, bt, bb, colour in candles:
        draw.rounded_rectangle([(cx - wick_w // 2) * s, wt * s, (cx + wick_w // 2) * s, wb * s],
                               radius=wick_w // 2 * s, fill=wick)
        draw.rounded_rectangle([(cx - body_w // 2) * s, bt * s, (cx + body_w // 2) * s, bb * s],
                               radius=16 * s, fill=colour)


def icon() -> Image.Image:
    big = SIZE * SCALE
    image = Image.new("RGB", (big, big))
    draw = ImageDraw.Draw(image)
    for y in range(big):  # vertical gradient
        t = y / (big - 1)
        draw.line([(0, y), (big, y)], fill=tuple(round(a + (b - a) * t)
                                                 for a, b in zip(BACKGROUND_TOP, BACKGROUND_BOTTOM, strict=True)))
    _mark(draw, wick=WICK_LIGHT, s=SCALE)
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def splash(wick: tuple[int, int, int]) -> Image.Image:
    big = SIZE * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    _mark(ImageDraw.Draw(image), wick=wick + (255,), s=SCALE)  # type: ignore[arg-type]
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    icon().save(ASSETS / "icon.png", optimize=True)
    splash((40, 52, 56)).save(ASSETS / "splash.png", optimize=True)  # on the light splash colour
    splash(WICK_LIGHT).save(ASSETS / "splash_dark.png", optimize=True)  # on the dark splash colour
    for name in ("icon.png", "splash.png", "splash_dark.png"):
        print(ASSETS / name, (ASSETS / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
