"""Signals as the local engine fires them, newest first."""

from __future__ import annotations

import flet as ft

from client.state import AppState
from client.theme import direction_colour, direction_icon
from views.common import fmt_time, panel


class SignalsView:
    TOPICS = frozenset({"signals"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, *, limit: int = 8, identifier: str = "signals") -> None:
        self._limit = limit
        self.empty = ft.Text("No signal yet: the engine is watching every tick.",
                             color=ft.Colors.ON_SURFACE_VARIANT, size=13)
        self.list = ft.Column(spacing=4, scroll=ft.ScrollMode.AUTO, expand=True)
        self.control = panel("Signals", ft.Column([self.empty, self.list], expand=True),
                             identifier=identifier, expand=True)
        self._shown: list[object] = []
        self._built: dict[int, tuple[object, ft.Control]] = {}  # id(signal) → (signal, its row)

    def render(self, state: AppState) -> None:
        signals = list(state.signals)[: self._limit]
        self.empty.visible = not signals
        if signals == self._shown:
            return
        self._shown = signals
        # A row is built once per signal and kept while the signal is listed: a new signal is then one row
        # inserted (and the oldest dropped). Rebuilding all rows on every signal sent the whole log (100 rows
        # removed and added, tens of kB) on every repaint while a rule fired on every trade, and a keystroke's
        # answer (the alert preview) queued seconds behind those patches. (Keyed by id: the signal is held.)
        built = {id(s): self._built.get(id(s)) or (s, _row(s)) for s in signals}  # a repeated signal: one row
        self._built = built
        self.list.controls = [row for _, row in built.values()]


def _row(signal: object) -> ft.Control:
    direction = 1 if getattr(signal, "direction", "") == "buy" else -1
    strength = float(getattr(signal, "strength", 0.0))
    side = getattr(signal, "direction", "").upper()
    symbol = getattr(signal, "symbol", "")
    rule = getattr(signal, "rule_name", "")
    top = ft.Row(
        [
            direction_icon(direction),
            ft.Text(side, color=direction_colour(direction), size=12, weight=ft.FontWeight.BOLD),
            ft.Text(symbol, size=12, weight=ft.FontWeight.W_600, expand=True),
            ft.Text(f"{strength:.0%}", size=12),
            ft.Text(fmt_time(getattr(signal, "timestamp_ms", None)), size=12, color=ft.Colors.ON_SURFACE_VARIANT),
        ],
        spacing=4,
    )
    return ft.Semantics(
        label=f"{side} signal on {symbol}: {rule}, strength {strength:.0%}",
        content=ft.Column([top, ft.Text(rule, size=12, color=ft.Colors.ON_SURFACE_VARIANT)], spacing=0),
    )
