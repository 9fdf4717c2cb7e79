"""Settings: theme, watchlist, exchange API keys (kept in the OS keyring, shown masked), backend."""

from __future__ import annotations

import flet as ft

from client.state import AppState
from views.common import Intents, panel, text_field


class SettingsView:
    TOPICS = frozenset({"settings", "watchlist", "markets"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents, *, exchange: str = "binance", backend_url: str = "") -> None:
        self._intents = intents
        self._exchange = exchange
        self.theme = ft.SegmentedButton(
            segments=[ft.Segment(value=v, label=v.title()) for v in ("system", "light", "dark")],
            selected=["system"], show_selected_icon=False,
            on_change=lambda e: intents.set_theme(e.control.selected[0]),
        )
        self.chips = ft.Row(wrap=True, spacing=6, run_spacing=6)
        self.search = text_field(label="Add a symbol", hint_text="e.g. DOGE or DOGE/USDT", dense=True,
                                   width=260, on_change=lambda e: intents.search_symbol(e.control.value or ""),
                                   on_submit=lambda _e: self._add_first())
        self.matches = ft.Row(wrap=True, spacing=4)
        self.market = ft.Dropdown(label="Market data", width=300, dense=True, value="synthetic", options=[],
                                  tooltip="Where prices come from")
        self.apply_market = ft.OutlinedButton("Use this source", icon=ft.Icons.SYNC,
                                              on_click=lambda _e: self._pick_market())
        self.market_note = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.alerts = ft.Switch(label="Pop up an alert when a rule fires", value=False,
                                on_change=lambda e: intents.set_alerts(bool(e.control.value)))
        self.key = text_field(label=f"{exchange} API key", password=True, can_reveal_password=True, dense=True,
                                width=300)
        self.secret = text_field(label=f"{exchange} API secret", password=True, can_reveal_password=True,
                                   dense=True, width=300)
        self.saved = ft.Text("", size=12)
        self.store = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.save_key = ft.OutlinedButton("Save keys", icon=ft.Icons.LOCK, on_click=lambda _e: self._save_keys())
        self.forget_key = ft.TextButton("Remove saved keys",
                                        on_click=lambda _e: intents.delete_api_key(self._exchange))
        body = ft.Column(
            [
                ft.Text("Theme", weight=ft.FontWeight.W_600), self.theme,
                ft.Divider(),
                ft.Text("Alerts", weight=ft.FontWeight.W_600), self.alerts,
                ft.Divider(),
                ft.Text("Market data", weight=ft.FontWeight.W_600),
                ft.Row([self.market, self.apply_market], wrap=True), self.market_note,
                ft.Divider(),
                ft.Text("Watchlist", weight=ft.FontWeight.W_600), self.chips, self.search, self.matches,
                ft.Divider(),
                ft.Text("Exchange API keys", weight=ft.FontWeight.W_600), self.store, self.saved,
                ft.Row([self.key, self.secret], wrap=True), ft.Row([self.save_key, self.forget_key], wrap=True),
                ft.Divider(),
                ft.Text(f"Backend: {backend_url or 'local'}", size=12, color=ft.Colors.ON_SURFACE_VARIANT),
            ],
            spacing=8, scroll=ft.ScrollMode.AUTO, expand=True,
        )
        self.control = panel("Settings", body, identifier="settings", expand=True)
        self._shown: tuple[object, ...] | None = None
        self._state: AppState | None = None
        self._theme_written: str | None = None
        self._alerts_written: bool | None = None
        self._market_written: str | None = None
        self._exchanges_shown = -1
        self._chips: dict[str, ft.Chip] = {}
        self._adds: dict[str, ft.TextButton] = {}

    def _add_first(self) -> None:
        state = self._state
        if state is None:
            return
        matches = state.symbol_matches(1)
        self._intents.add_symbol(matches[0] if matches else (self.search.value or "").strip().upper())

    def _pick_market(self) -> None:
        choice = self.market.value or "synthetic"
        self._intents.set_market(choice if choice in ("synthetic", "replay") else f"ccxt:{choice}")

    def _save_keys(self) -> None:
        self._intents.save_api_key(self._exchange, (self.key.value or "").strip(), (self.secret.value or "").strip())
        self.key.value = self.secret.value = ""  # never keep a secret on screen after saving

    def render(self, state: AppState) -> None:
        self._state = state
        if self._alerts_written != state.alerts_enabled:  # written only on change, like the theme
            self._alerts_written = state.alerts_enabled
            self.alerts.value = state.alerts_enabled
        if self._theme_written != state.theme:  # written only on change: see OrderTicketView._write
            self._theme_written = state.theme
            self.theme.selected = [state.theme]
        masked = state.saved_keys.get(self._exchange)
        self.saved.value = f"Saved: {masked}" if masked else "No keys saved."
        self.forget_key.visible = bool(masked)
        can_store = state.secure_store != "none"
        self.store.value = ("Keys are kept in the OS keyring, never in files or logs." if can_store else
                            "This device has no secure key store (OS keyring): keys cannot be saved here.")
        self.key.disabled = self.secret.disabled = self.save_key.disabled = not can_store
        if self._exchanges_shown != len(state.exchanges):  # ~100 options: built once
            self._exchanges_shown = len(state.exchanges)
            self.market.options = [ft.DropdownOption(key="synthetic", text="Simulated market (offline)"),
                                   ft.DropdownOption(key="replay", text="Replay (recorded, offline)"),
                                   *(ft.DropdownOption(key=x, text=x) for x in state.exchanges)]
        source = state.market_source
        if self._market_written != source:  # written only on change: see OrderTicketView._write
            self._market_written = source
            self.market.value = (source.removeprefix("ccxt:") if source.startswith(("ccxt:", "replay")) else
                                 "synthetic" if source.startswith("synthetic") else None)
        self.market_note.value = (f"Now: {state.modes.get('market', '')}" if state.exchanges else
                                  "Live exchanges need ccxt, which this device cannot install: replay only.")
        self.apply_market.disabled = not state.exchanges
        shown = (tuple(state.watchlist), state.symbol_query, tuple(state.symbol_matches()))
        if shown == self._shown:
            return
        self._shown = shown
        if not state.symbol_query and self.search.value:
            self.search.value = ""
        # Each symbol keeps its chip and its add button while shown: rebuilt ones got new control ids, and a
        # tap on one still on screen (the next chip's remove, a match as the query grows) was dropped.
        self._chips = {s: self._chips.get(s) or self._watched_chip(s) for s in state.watchlist}
        self._adds = {s: self._adds.get(s) or self._match_button(s) for s in state.symbol_matches()}
        self.chips.controls = list(self._chips.values())
        self.matches.controls = list(self._adds.values())

    def _watched_chip(self, symbol: str) -> ft.Chip:
        return ft.Chip(label=ft.Text(symbol), on_delete=lambda _e: self._intents.remove_symbol(symbol),
                       delete_icon_tooltip=f"Remove {symbol}")

    def _match_button(self, symbol: str) -> ft.TextButton:
        return ft.TextButton(symbol, icon=ft.Icons.ADD, on_click=lambda _e: self._intents.add_symbol(symbol))
