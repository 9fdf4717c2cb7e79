"""The account: equity (every balance marked at the live prices) with its curve, today's P&L, and the
balance per currency — free, held by open orders (used) and total — as the backend reports it."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import flet as ft
import flet.canvas as cv

from client.state import AppState
from client.theme import ACCENT, direction_colour
from views.common import fmt, panel

CURVE_H = 56


class AccountView:
    TOPICS = frozenset({"balance", "equity", "quote.held", "markets"})

    def __init__(self, quote: str = "USDT") -> None:
        self.quote = quote
        self.equity = ft.Text("—", size=20, weight=ft.FontWeight.BOLD)
        self.today = ft.Text("", size=12)
        self.curve = cv.Canvas(shapes=[], height=CURVE_H, expand=True, on_resize=self._on_resize)
        self._width = 300.0  # until the canvas says how wide it is
        self.rows = ft.Column(spacing=2)
        # Shown once there are two points to join: an empty curve box was a blank band across the card.
        self.curve_box = ft.Container(self.curve, height=CURVE_H, visible=False)
        body = ft.Column([
            ft.Row([ft.Text("Equity", size=12, color=ft.Colors.ON_SURFACE_VARIANT),
                    ft.Semantics(identifier="equity", container=True, content=self.equity),
                    ft.Text(quote, size=12)], spacing=6, vertical_alignment=ft.CrossAxisAlignment.END),
            self.today, self.curve_box, self.rows,
        ], spacing=4)
        self.control = panel("Account", body, identifier="account")
        self._curve_key: tuple[object, ...] | None = None
        self._points: list[tuple[int, float]] = []

    def render(self, state: AppState) -> None:
        value = state.equity(self.quote)
        self.equity.value = fmt(value, 2) if value is not None else "—"
        points = list(state.equity_curve)
        start = day_start(points)
        if value is not None and start is not None:
            change = value - start[1]
            since = datetime.fromtimestamp(start[0] / 1000, tz=UTC).astimezone().strftime("%H:%M")
            pct = change / start[1] * 100 if start[1] else 0.0
            self.today.value = f"Today {change:+,.2f} {self.quote} ({pct:+.2f}%) since {since}"
            self.today.color = direction_colour((change > 0) - (change < 0))
        else:
            self.today.value = "Today: waiting for the balance and prices"
            self.today.color = ft.Colors.ON_SURFACE_VARIANT
        self._points = points
        self.curve_box.visible = len(points) >= 2
        self._draw_curve(points)
        totals = state.balance.get("total") or {}
        currencies = sorted(totals, key=lambda c: (c != self.quote, c))
        self.rows.controls = [
            ft.Row([ft.Text(c, size=12, weight=ft.FontWeight.W_600, width=52),
                    ft.Column([ft.Text(fmt(float(totals.get(c) or 0), p), size=12, weight=ft.FontWeight.W_600,
                                       text_align=ft.TextAlign.RIGHT, no_wrap=True),
                               ft.Text(f"free {fmt(state.free(c), p)} · in orders {fmt(state.used(c), p)}", size=11,
                                       color=ft.Colors.ON_SURFACE_VARIANT, text_align=ft.TextAlign.RIGHT)],
                              spacing=0, expand=True, horizontal_alignment=ft.CrossAxisAlignment.END)])
            for c in currencies if totals.get(c) for p in (2 if c == self.quote else 6,)
        ] or [ft.Text("The balance shows once the backend answers.", size=12, color=ft.Colors.ON_SURFACE_VARIANT)]

    def _draw_curve(self, points: list[tuple[int, float]]) -> None:
        """The equity curve as one path over the panel's width (0..1 scaled by the canvas: 300 px wide)."""
        key = (len(points), points[-1] if points else None, self._width)
        if key == self._curve_key:
            return
        self._curve_key = key
        if len(points) < 2:
            self.curve.shapes = []
            return
        values = [v for _, v in points]
        lo, hi = min(values), max(values)
        span = hi - lo or max(1.0, abs(hi) * 1e-4)
        width = self._width
        path = cv.Path([], paint=ft.Paint(color=ACCENT, stroke_width=1.5, style=ft.PaintingStyle.STROKE))
        for i, v in enumerate(values):
            x, y = i / (len(values) - 1) * width, (hi - v) / span * (CURVE_H - 4) + 2
            path.elements.append((cv.Path.LineTo if i else cv.Path.MoveTo)(x, y))
        self.curve.shapes = [path]


    def _on_resize(self, e: object) -> None:
        width = float(getattr(e, "width", 0) or 0)
        if width > 0 and width != self._width:
            self._width, self._curve_key = width, None
            self._draw_curve(self._points)
            with contextlib.suppress(RuntimeError):  # not on a page (yet)
                self.curve.update()


def day_start(points: list[tuple[int, float]]) -> tuple[int, float] | None:
    """The first equity point of the current (local) day."""
    if not points:
        return None
    today = datetime.fromtimestamp(points[-1][0] / 1000, tz=UTC).astimezone().date()
    for ts, value in points:
        if datetime.fromtimestamp(ts / 1000, tz=UTC).astimezone().date() == today:
            return ts, value
    return points[-1]
