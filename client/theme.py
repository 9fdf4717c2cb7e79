"""Colours, breakpoints and the second cue (arrow and sign) that goes with every green/red."""

from __future__ import annotations

from typing import Literal

import flet as ft

Breakpoint = Literal["phone", "tablet", "desktop"]

PHONE_MAX_PX = 600
TABLET_MAX_PX = 1024

UP = ft.Colors.GREEN_400
DOWN = ft.Colors.RED_400
FLAT = ft.Colors.ON_SURFACE_VARIANT
ACCENT = ft.Colors.TEAL_300
INDICATOR = ft.Colors.AMBER_400


def breakpoint_for(width: float | None) -> Breakpoint:
    if width is None or width <= 0:
        return "desktop"
    if width < PHONE_MAX_PX:
        return "phone"
    if width < TABLET_MAX_PX:
        return "tablet"
    return "desktop"


def direction_colour(direction: int) -> str:
    return UP if direction > 0 else DOWN if direction < 0 else FLAT


def direction_icon(direction: int, size: int = 14) -> ft.Icon:
    """The arrow that goes with the colour (web fonts offline have no ▲▼ glyphs: use icons)."""
    return point(ft.Icon(ft.Icons.REMOVE, size=size), direction)


def point(icon: ft.Icon, direction: int) -> ft.Icon:
    """`icon` turned into the arrow for `direction`, in place: a repaint sends its two new values, not a new
    control (which a patch must add, and the client build)."""
    icon.icon = ft.Icons.ARROW_DROP_UP if direction > 0 else ft.Icons.ARROW_DROP_DOWN if direction < 0 else ft.Icons.REMOVE
    icon.color = direction_colour(direction)
    return icon


def themes() -> tuple[ft.Theme, ft.Theme]:
    """(light, dark) themes from one seed colour."""
    return ft.Theme(color_scheme_seed=ft.Colors.TEAL), ft.Theme(color_scheme_seed=ft.Colors.TEAL)
