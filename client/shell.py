"""The responsive shell: NavigationRail and a multi-panel dashboard on wide screens, one column
with a bottom NavigationBar on phones. The same view instances move between layouts, so rotating
or resizing never loses what the trader typed."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import SECTIONS, AppState
from client.theme import Breakpoint
from views.account import AccountView
from views.alerts import AlertsView
from views.analytics import AnalyticsView
from views.chart import ChartView
from views.common import Intents, set_flowing
from views.insights import InsightsView
from views.market_depth import OrderBookView, TradesView
from views.mode_badge import ModeBadgeView
from views.order_ticket import OrderTicketView
from views.orders import OrdersView
from views.positions import PositionsView
from views.rules import RulesView
from views.settings import SettingsView
from views.signals import SignalsView
from views.status import StatusView
from views.strategies import StrategiesView
from views.watchlist import WatchlistView

NAV = {
    "dashboard": ("Markets", ft.Icons.CANDLESTICK_CHART_OUTLINED, ft.Icons.CANDLESTICK_CHART),
    "portfolio": ("Portfolio", ft.Icons.ACCOUNT_BALANCE_WALLET_OUTLINED, ft.Icons.ACCOUNT_BALANCE_WALLET),
    "signals": ("Signals", ft.Icons.BOLT_OUTLINED, ft.Icons.BOLT),
    "insights": ("Insights", ft.Icons.AUTO_AWESOME_OUTLINED, ft.Icons.AUTO_AWESOME),
    "settings": ("Settings", ft.Icons.SETTINGS_OUTLINED, ft.Icons.SETTINGS),
}


class Shell:
    def __init__(self, intents: Intents, *, backend_url: str = "", exchange: str = "binance",
                 extra_portfolio: list[Any] | None = None) -> None:
        self._intents = intents
        self.badge = ModeBadgeView()
        self.watchlist = WatchlistView(intents)
        self.chart = ChartView(intents)
        self.positions = PositionsView()
        self.insights = InsightsView(intents)
        self.rules = RulesView(intents)
        self.strategies = StrategiesView(intents)
        self.settings = SettingsView(intents, exchange=exchange, backend_url=backend_url)
        self.analytics = AnalyticsView(on_export=intents.export_report)
        self.extra_portfolio = [self.analytics, *(extra_portfolio or [])]
        self.ticket = OrderTicketView(intents)
        self.alerts = AlertsView(intents)
        self.orders = OrdersView(intents)
        self.history = OrdersView(intents, limit=200, title="Order history", identifier="order-history",
                                  one_line_on=("desktop",))
        self.signals = SignalsView()
        self.signal_log = SignalsView(limit=100, identifier="signal-log")
        self.status = StatusView(backend_url=backend_url)
        self.account = AccountView()
        self.book = OrderBookView()
        self.trades = TradesView()
        self.root = ft.Container(expand=True)
        self._layout: tuple[Breakpoint, str, bool] | None = None
        self.isolated: list[ft.Control] = []  # after a whole-page render: controls its patch does not reach

    def render(self, state: AppState, dirty: set[str] | None = None) -> list[ft.Control] | None:
        """Repaint from state. Returns the controls to send (only the panels whose topics are in
        `dirty`), or None when the whole page must be sent (first paint, layout change): then `isolated`
        holds what the page's patch skips and must be sent after it. A view's `render` returns None (send
        its panel) or the controls to send, in order (the watchlist: its changed rows on screen)."""
        dirty = {"all"} if dirty is None else dirty
        layout = (state.breakpoint, state.section, state.chart_full and state.breakpoint == "phone")
        full = "all" in dirty or layout != self._layout
        if layout != self._layout:
            self._layout = layout
            self.watchlist.scrolled_to(0.0)  # a new layout's scrolling column starts at its top
            self.root.content = self._build(state)
        changed: list[ft.Control] = []
        extra: list[ft.Control] = []  # what views asked to send beside their panel (isolated rows and their texts)
        for view in [self.badge, *self._visible(state)]:
            topics = dirty & getattr(view, "TOPICS", {"all"})
            if full or topics:
                # A view with `render_quote` repaints only what reads the selected symbol's price when that
                # is all that changed (the ticket: its estimate, not the form).
                quick = None if full or topics != {"quote.selected"} else getattr(view, "render_quote", None)
                sent = view.render(state) if quick is None else quick(state)
                changed.extend([view.control] if sent is None else sent)
                extra.extend(sent or [])
        self.isolated = extra if full else []
        return None if full else changed

    def _visible(self, state: AppState) -> list[Any]:
        sections: dict[str, list[Any]] = {
            "portfolio": [self.positions, self.history, *self.extra_portfolio],
            "signals": [self.signal_log, self.alerts, self.rules, self.strategies],
            "insights": [self.insights],
            "settings": [self.settings, self.status],
            "dashboard": [self.watchlist, self.chart, self.ticket, self.orders, self.signals, self.positions,
                          self.account, self.book, self.trades],
        }
        return sections[state.section]

    def _pair(self, state: AppState, first: Any, second: Any, second_height: int = 420) -> ft.Control:
        """Two panels: side by side on wide screens, stacked (scrolling) on a phone."""
        if state.breakpoint == "phone":
            return ft.Column([ft.Container(first.control, height=420),
                              ft.Container(second.control, height=second_height)],
                             scroll=ft.ScrollMode.AUTO, expand=True, spacing=10)
        return ft.Row([first.control, second.control], expand=True, spacing=10,
                      vertical_alignment=ft.CrossAxisAlignment.STRETCH)

    def _signals(self, state: AppState) -> ft.Control:
        """The signal log, price alerts and the rule editor: stacked on a phone, two columns wider."""
        phone = state.breakpoint == "phone"
        # A phone scrolls the section as one page: each panel flows at its content's height, so no list
        # inside it takes the swipe meant for the page (and the Strategies panel is reached by scrolling).
        for view in (self.signal_log, self.alerts, self.rules, self.strategies):
            set_flowing(view.control, phone)
        if phone:
            # The forms first, the log last: a signal arriving grows the log at its top, and a form below it
            # would move under the trader's thumb (and lose the field being typed in).
            return ft.Column([self.alerts.control, self.rules.control, self.strategies.control,
                              self.signal_log.control],
                             scroll=ft.ScrollMode.AUTO, expand=True, spacing=10)
        top = ft.Row([ft.Column([self.signal_log.control, ft.Container(self.alerts.control, expand=True)],
                                expand=True, spacing=10),
                      self.rules.control],
                     height=720, spacing=10, vertical_alignment=ft.CrossAxisAlignment.STRETCH)
        return ft.Column([top, ft.Container(self.strategies.control, height=820)], scroll=ft.ScrollMode.AUTO,
                         expand=True, spacing=10)

    def _content(self, state: AppState) -> ft.Control:
        bp = state.breakpoint
        if state.section != "dashboard":
            for view in (self.watchlist, self.orders, self.positions, self.signals):
                set_flowing(view.control, False)
        self.positions.size_to_rows(state.section == "portfolio")
        if state.section == "portfolio":
            column: list[ft.Control] = [self.positions.portfolio_box, ft.Container(self.history.control, expand=True)]
            column += [ft.Container(v.control, height=420) for v in self.extra_portfolio]
            return ft.Column(column, expand=True, spacing=10, scroll=ft.ScrollMode.AUTO if self.extra_portfolio else None)
        if state.section == "signals":
            return self._signals(state)
        if state.section == "insights":
            return self.insights.control
        if state.section == "settings":
            return self._pair(state, self.settings, self.status, 480)
        if bp == "phone" and state.chart_full:
            return self.chart.control  # the chart alone; its header's button leaves full screen
        return self._dashboard(state)

    def _dashboard(self, state: AppState) -> ft.Control:
        """Markets. Each layout has one scrolling area per column at most: a panel inside a scrolling column
        flows at its content's height (`set_flowing`), so no list scrolls inside another."""
        bp = state.breakpoint
        flowing = {"phone": [self.watchlist, self.orders, self.positions, self.signals],
                   "tablet": [self.watchlist, self.positions],
                   "desktop": [self.watchlist, self.signals]}[bp]
        for view in (self.watchlist, self.orders, self.positions, self.signals):
            set_flowing(view.control, view in flowing)
        if bp == "phone":
            trade = ft.FilledButton("Trade " + state.selected, icon=ft.Icons.SWAP_VERT,
                                    on_click=lambda _e: self._intents.open_ticket())
            return ft.Column(
                [
                    self.watchlist.control,
                    ft.Container(self.chart.control, height=460),
                    ft.Row([trade], alignment=ft.MainAxisAlignment.CENTER),
                    self.orders.control, self.positions.control, self.account.control,
                    ft.Row([ft.Container(self.book.control, expand=True),
                            ft.Container(self.trades.control, expand=True)],
                           spacing=8, vertical_alignment=ft.CrossAxisAlignment.START),
                    self.signals.control,
                ],
                scroll=ft.ScrollMode.AUTO, expand=True, spacing=10, **self._watchlist_scroll(),
            )
        if bp == "tablet":
            side = ft.Column([self.watchlist.control, self.ticket.control, self.account.control,
                              self.positions.control, self.book.control, self.trades.control],
                             width=300, spacing=10, scroll=ft.ScrollMode.AUTO, **self._watchlist_scroll())
            return ft.Row(
                [side, ft.Column([self.chart.control, ft.Container(self.orders.control, height=320)],
                                 expand=True, spacing=10)],
                expand=True, spacing=10, vertical_alignment=ft.CrossAxisAlignment.STRETCH,
            )
        left = ft.Column([self.watchlist.control, self.book.control, self.trades.control],
                         width=270, spacing=10, scroll=ft.ScrollMode.AUTO, **self._watchlist_scroll())
        centre = ft.Column([ft.Container(self.chart.control, expand=3),
                            ft.Row([self.orders.control, ft.Container(self.positions.control, width=400)],
                                   expand=2, spacing=10, vertical_alignment=ft.CrossAxisAlignment.STRETCH)],
                           expand=True, spacing=10)
        right = ft.Column([self.ticket.control, self.account.control, self.signals.control],
                          width=330, spacing=10, scroll=ft.ScrollMode.AUTO)
        return ft.Row([left, centre, right], expand=True, spacing=10,
                      vertical_alignment=ft.CrossAxisAlignment.STRETCH)

    def _watchlist_scroll(self) -> dict[str, Any]:
        """For the scrolling column the watchlist tops (every dashboard layout): its scrolls say which rows
        are on screen, and only those are repainted."""
        return {"on_scroll": lambda e: self.watchlist.scrolled_to(e.pixels, e.viewport_dimension),
                "scroll_interval": 100}

    def _build(self, state: AppState) -> ft.Control:
        name = ft.Text("Skeet", size=20, weight=ft.FontWeight.BOLD)
        title: ft.Control = (
            ft.Column([name, self.badge.control], spacing=6) if state.breakpoint == "phone"
            else ft.Row([name, ft.Container(self.badge.control, expand=True)], spacing=16,
                        vertical_alignment=ft.CrossAxisAlignment.CENTER)
        )
        body = ft.Column([title, ft.Container(self._content(state), expand=True)], expand=True, spacing=10)
        index = SECTIONS.index(state.section)
        if state.breakpoint == "phone":
            nav = ft.NavigationBar(
                destinations=[ft.NavigationBarDestination(icon=NAV[s][1], selected_icon=NAV[s][2], label=NAV[s][0])
                              for s in SECTIONS],
                selected_index=index,
                on_change=lambda e: self._intents.navigate(SECTIONS[int(e.control.selected_index)]),
            )
            return ft.Column([ft.Container(body, padding=ft.Padding.all(10), expand=True), nav],
                             expand=True, spacing=0)
        rail = ft.NavigationRail(
            destinations=[ft.NavigationRailDestination(icon=NAV[s][1], selected_icon=NAV[s][2], label=NAV[s][0])
                          for s in SECTIONS],
            selected_index=index, label_type=ft.NavigationRailLabelType.ALL,
            on_change=lambda e: self._intents.navigate(SECTIONS[int(e.control.selected_index)]),
        )
        return ft.Row([rail, ft.VerticalDivider(width=1),
                       ft.Container(body, padding=ft.Padding.all(12), expand=True)], expand=True, spacing=0)
