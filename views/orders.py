"""The user's orders, as the live-state listener reports them (never from an HTTP response)."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import DOWN, UP, direction_icon
from views.common import Intents, fmt, fmt_time, panel, price_decimals, reachable

STATUS_LABEL = {"open": "Open", "closed": "Filled", "canceled": "Canceled", "rejected": "Rejected",
                "expired": "Expired"}


def status_label(order: dict[str, Any]) -> str:
    status = order.get("status") or "open"
    if status == "open" and (order.get("filled") or 0) > 0:
        return "Partially filled"
    return STATUS_LABEL.get(status, status.title())


class OrdersView:
    TOPICS = frozenset({"orders", "markets"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents, *, limit: int = 12, title: str = "Orders",
                 identifier: str = "orders") -> None:
        self._intents = intents
        self._limit = limit
        self.empty = ft.Text("No orders yet. Place one from the order ticket.",
                             color=ft.Colors.ON_SURFACE_VARIANT, size=13)
        self.list = ft.Column(spacing=4, scroll=ft.ScrollMode.AUTO, expand=True)
        self.count = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.control = panel(title, ft.Column([self.empty, self.list], expand=True), identifier=identifier,
                             expand=True, actions=[self.count])
        self._rendered: list[tuple[Any, ...]] = []
        self._compact = False

    def render(self, state: AppState) -> None:
        orders = state.sorted_orders()[: self._limit]
        compact = state.breakpoint == "phone"
        open_count = len(state.open_orders())
        self.count.value = f"{open_count} open · {len(state.orders)} total" if state.orders else ""
        self.empty.visible = not orders
        fingerprint = [_fingerprint(o) for o in orders]
        if fingerprint == self._rendered and compact == self._compact:
            return  # nothing visible changed: send no patch
        self._rendered, self._compact = fingerprint, compact
        self.list.controls = [self._row(o, state, compact) for o in orders]

    def _row(self, order: dict[str, Any], state: AppState, compact: bool) -> ft.Control:
        symbol = order.get("symbol", "")
        places = price_decimals(state.markets.get(symbol), order.get("average") or order.get("price"))
        side = order.get("side", "")
        colour = UP if side == "buy" else DOWN
        price = order.get("average") or order.get("price")
        label = status_label(order)
        cells: list[ft.Control] = [
            ft.Row([direction_icon(1 if side == "buy" else -1),
                    ft.Text(side.upper(), color=colour, weight=ft.FontWeight.BOLD, size=12)],
                   spacing=0, width=56, tight=True),
            ft.Text(symbol, size=13, width=92),
            ft.Text(f"{order.get('filled') or 0:g}/{order.get('amount') or 0:g}", size=12, width=90,
                    text_align=ft.TextAlign.RIGHT),
            ft.Text(fmt(price, places) if price else "market", size=12, width=90, text_align=ft.TextAlign.RIGHT),
            ft.Text(label, size=12, width=100, weight=ft.FontWeight.W_600),
        ]
        if not compact:
            cells.insert(0, ft.Text(fmt_time(order.get("timestamp")), size=12, width=64,
                                    color=ft.Colors.ON_SURFACE_VARIANT))
            cells.insert(3, ft.Text(order.get("type", ""), size=12, width=70))
        order_id = str(order.get("id", ""))
        cancel = reachable(ft.IconButton(ft.Icons.CLOSE, icon_size=16, tooltip="Cancel",
                                         on_click=lambda _e, oid=order_id: self._intents.cancel_order(oid)),
                           f"Cancel order {order_id}")
        cancel.visible = order.get("status") == "open"
        return ft.Semantics(
            identifier=f"order-{order.get('clientOrderId') or order_id}", container=True,
            label=f"{side} {order.get('amount')} {symbol} {order.get('type')} order, {label}",
            content=ft.Row([ft.Row(cells, wrap=compact, expand=True, spacing=6), cancel],
                           vertical_alignment=ft.CrossAxisAlignment.CENTER),
        )


def _fingerprint(order: dict[str, Any]) -> tuple[Any, ...]:
    return (order.get("id"), order.get("status"), order.get("filled"), order.get("average"), order.get("price"))
