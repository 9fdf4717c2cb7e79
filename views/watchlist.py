"""Watchlist: last price and change per symbol, with colour plus arrow and sign; tap selects."""

from __future__ import annotations

import math

import flet as ft

from client.state import AppState
from client.theme import ACCENT, direction_colour, direction_icon
from views.common import Intents, fmt, panel, price_decimals


class WatchlistRow:
    def __init__(self, symbol: str, intents: Intents) -> None:
        self.symbol = symbol
        self.name = ft.Text(symbol, weight=ft.FontWeight.W_600, size=14)
        self.freshness = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.price = ft.Text("—", size=14, text_align=ft.TextAlign.RIGHT, font_family="monospace")
        self.change = ft.Text("", size=12, text_align=ft.TextAlign.RIGHT)
        self.arrow = ft.Container(width=14, height=14)
        self.box = ft.Container(
            content=ft.Row(
                [
                    ft.Column([self.name, self.freshness], spacing=0, expand=True),
                    ft.Column([self.price, ft.Row([self.arrow, self.change], spacing=0, tight=True)], spacing=0,
                              horizontal_alignment=ft.CrossAxisAlignment.END),
                ],
            ),
            padding=ft.Padding.symmetric(vertical=6, horizontal=10),
            border_radius=ft.BorderRadius.all(8),
            on_click=lambda _e: intents.select_symbol(symbol),
            ink=True,
        )
        self.control = ft.Semantics(identifier=f"quote-{symbol}", button=True, content=self.box)
        self._sign: int | None = None

    def render(self, state: AppState) -> None:
        quote = state.quotes.get(self.symbol)
        market = state.markets.get(self.symbol)
        status = state.feed_status.get(self.symbol, "live")
        if quote:
            places = price_decimals(market, quote.last)
            pct = quote.change_pct
            sign = 1 if pct > 0 else -1 if pct < 0 else 0
            self.price.value = fmt(quote.last, places)
            self.price.color = direction_colour(quote.direction)
            self.change.value = f"{pct:+.2f}%"
            if sign != self._sign:  # a new icon only when the direction flips
                self._sign = sign
                self.arrow.content = direction_icon(sign)
            self.change.color = direction_colour(sign)
            label = f"{self.symbol} {self.price.value}, {pct:+.2f} percent"
        else:
            self.price.value, self.change.value, label = "—", "", f"{self.symbol}, no price yet"
        self.freshness.value = "" if status == "live" else status
        self.freshness.color = ft.Colors.ORANGE_400 if status != "live" else None
        selected = state.selected == self.symbol
        self.box.bgcolor = ft.Colors.with_opacity(0.14, ACCENT) if selected else None
        self.control.selected = selected
        self.control.label = label + (f", {status}" if status != "live" else "")


class WatchlistView:
    TOPICS = frozenset({"quotes", "feed", "markets", "selected", "watchlist"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        self.rows: dict[str, WatchlistRow] = {}
        # Scrolls say which rows are in view: on a phone only those (and the selected symbol) stream every trade.
        self.list = ft.Column(spacing=2, scroll=ft.ScrollMode.AUTO, expand=True, on_scroll=self._scrolled,
                              scroll_interval=250)
        self.control = panel("Watchlist", self.list, identifier="watchlist", expand=True)

    def render(self, state: AppState) -> None:
        if list(self.rows) != state.watchlist:
            self.rows = {s: self.rows.get(s) or WatchlistRow(s, self._intents) for s in state.watchlist}
            self.list.controls = [row.control for row in self.rows.values()]
        for row in self.rows.values():
            row.render(state)

    def _scrolled(self, e: ft.OnScrollEvent) -> None:
        if self.rows:
            self._intents.show_rows(rows_in_view(list(self.rows), e.pixels, e.viewport_dimension,
                                                 e.max_scroll_extent))


def rows_in_view(symbols: list[str], offset_px: float, viewport_px: float, max_scroll_px: float) -> list[str]:
    """The rows a list of equal-height rows shows when scrolled `offset_px` down: its content is
    `viewport_px + max_scroll_px` tall, so each row is that over the number of rows."""
    pitch = (viewport_px + max_scroll_px) / len(symbols)
    if pitch <= 0:
        return symbols
    first = max(0, int(offset_px // pitch))
    last = min(len(symbols), math.ceil((offset_px + viewport_px) / pitch))
    return symbols[first:max(last, first + 1)]
