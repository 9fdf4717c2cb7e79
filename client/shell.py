"""The responsive shell: NavigationRail and a multi-panel dashboard on wide screens, one column
with a bottom NavigationBar on phones. The same view instances move between layouts, so rotating
or resizing never loses what the trader typed."""

from __future__ import annotations

import flet as ft

from client.state import SECTIONS, AppState
from client.theme import Breakpoint
from views.chart import ChartView
from views.common import Intents
from views.mode_badge import ModeBadgeView
from views.order_ticket import OrderTicketView
from views.orders import OrdersView
from views.signals import SignalsView
from views.status import StatusView
from views.watchlist import WatchlistView

NAV = {
    "dashboard": ("Markets", ft.Icons.CANDLESTICK_CHART_OUTLINED, ft.Icons.CANDLESTICK_CHART),
    "orders": ("Orders", ft.Icons.RECEIPT_LONG_OUTLINED, ft.Icons.RECEIPT_LONG),
    "signals": ("Signals", ft.Icons.BOLT_OUTLINED, ft.Icons.BOLT),
    "status": ("Status", ft.Icons.INFO_OUTLINE, ft.Icons.INFO),
}


class Shell:
    def __init__(self, intents: Intents, *, backend_url: str = "") -> None:
        self._intents = intents
        self.badge = ModeBadgeView()
        self.watchlist = WatchlistView(intents)
        self.chart = ChartView()
        self.ticket = OrderTicketView(intents)
        self.orders = OrdersView(intents)
        self.history = OrdersView(intents, limit=200, title="Order history", identifier="order-history")
        self.signals = SignalsView()
        self.signal_log = SignalsView(limit=100, identifier="signal-log")
        self.status = StatusView(backend_url=backend_url)
        self.root = ft.Container(expand=True)
        self._layout: tuple[Breakpoint, str] | None = None

    def render(self, state: AppState) -> None:
        layout = (state.breakpoint, state.section)
        if layout != self._layout:
            self._layout = layout
            self.root.content = self._build(state)
        self.badge.render(state)
        for view in self._visible(state):
            view.render(state)

    def _visible(self, state: AppState) -> list:
        if state.section == "orders":
            return [self.history]
        if state.section == "signals":
            return [self.signal_log]
        if state.section == "status":
            return [self.status]
        return [self.watchlist, self.chart, self.ticket, self.orders, self.signals]

    def _content(self, state: AppState) -> ft.Control:
        bp = state.breakpoint
        if state.section != "dashboard":
            return self._visible(state)[0].control
        if bp == "phone":
            return ft.Column(
                [
                    ft.Container(self.watchlist.control, height=300),
                    ft.Container(self.chart.control, height=300),
                    self.ticket.control,
                    ft.Container(self.orders.control, height=360),
                    ft.Container(self.signals.control, height=260),
                ],
                scroll=ft.ScrollMode.AUTO, expand=True, spacing=10,
            )
        if bp == "tablet":
            return ft.Row(
                [
                    ft.Column([self.watchlist.control, self.ticket.control], width=300, spacing=10),
                    ft.Column([self.chart.control, ft.Container(self.orders.control, height=300)],
                              expand=True, spacing=10),
                ],
                expand=True, spacing=10, vertical_alignment=ft.CrossAxisAlignment.STRETCH,
            )
        return ft.Column(
            [
                ft.Row(
                    [
                        ft.Container(self.watchlist.control, width=280),
                        self.chart.control,
                        ft.Column([self.ticket.control, self.signals.control], width=320, spacing=10),
                    ],
                    expand=3, spacing=10, vertical_alignment=ft.CrossAxisAlignment.STRETCH,
                ),
                ft.Container(self.orders.control, expand=2),
            ],
            expand=True, spacing=10,
        )

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
