"""About / status: every mode and connection the app is using, and per-symbol feed freshness."""

from __future__ import annotations

import flet as ft

from client.state import AppState
from views.common import fmt_time, panel

MODE_NAMES = {"market": "Market data", "orders": "Orders", "live": "Live state", "insights": "Insights",
              "identity": "Identity"}


class StatusView:
    TOPICS = frozenset({"live", "feed", "quotes", "watchlist"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, *, backend_url: str = "") -> None:
        self._backend_url = backend_url
        self.rows = ft.Column(spacing=6)
        self.control = panel("Status", ft.Column([self.rows], scroll=ft.ScrollMode.AUTO, expand=True),
                             identifier="status", expand=True)
        self._shown: list[tuple[str, str]] = []

    def render(self, state: AppState) -> None:
        lines: list[tuple[str, str]] = [(MODE_NAMES.get(k, k), v) for k, v in state.modes.items()]
        lines.append(("Live connection", state.live_status))
        lines.append(("Backend", self._backend_url + (f" — {state.backend_error}" if state.backend_error else "")))
        for symbol in state.watchlist:
            quote = state.quotes.get(symbol)
            lines.append((symbol, f"{state.feed_status.get(symbol, 'live')} · last tick "
                                  f"{fmt_time(quote.timestamp_ms) if quote else '—'}"))
        if lines == self._shown:
            return  # nothing on this page moved: no patch
        self._shown = lines
        self.rows.controls = [
            ft.Row([ft.Text(k, width=140, weight=ft.FontWeight.W_600, size=13), ft.Text(v, size=13, expand=True)])
            for k, v in lines
        ]
