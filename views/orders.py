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
                 identifier: str = "orders", one_line_on: tuple[str, ...] = ()) -> None:
        self._intents = intents
        self._limit = limit
        # Breakpoints where the panel is wide enough (~640 px) for one line of fixed columns per order;
        # elsewhere two lines that fill the width. The dashboard's panel is ~310 px even on a desktop.
        self._one_line_on = one_line_on
        self.empty = ft.Text("No orders yet. Place one from the order ticket.",
                             color=ft.Colors.ON_SURFACE_VARIANT, size=13)
        self.list = ft.Column(spacing=4, scroll=ft.ScrollMode.AUTO, expand=True)
        self.count = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.control = panel(title, ft.Column([self.empty, self.list], expand=True), identifier=identifier,
                             expand=True, actions=[self.count])
        self._rendered: list[tuple[Any, ...]] = []
        self._compact = False
        # Each order's row as last built, by id with what it showed: a row whose order did not change is
        # sent again as the same control, so a tap on its Cancel button made while another order changed
        # reaches the app (a rebuilt row's new button has a new id, and Flet drops a tap on the old one).
        self._rows: dict[str, tuple[tuple[Any, ...], ft.Control]] = {}

    def render(self, state: AppState) -> None:
        orders = state.sorted_orders()[: self._limit]
        compact = state.breakpoint not in self._one_line_on
        open_count = len(state.open_orders())
        self.count.value = f"{open_count} open · {len(state.orders)} total" if state.orders else ""
        self.empty.visible = not orders
        fingerprint = [_fingerprint(o) for o in orders]
        if fingerprint == self._rendered and compact == self._compact:
            return  # nothing visible changed: send no patch
        if compact != self._compact:
            self._rows = {}
        self._rendered, self._compact = fingerprint, compact
        rows: dict[str, tuple[tuple[Any, ...], ft.Control]] = {}
        for order, print_ in zip(orders, fingerprint, strict=True):
            key = str(order.get("id") or order.get("clientOrderId") or f"#{len(rows)}")
            kept = self._rows.get(key)
            rows[key] = kept if kept is not None and kept[0] == print_ else (print_, self._row(order, state, compact))
        self._rows = rows
        self.list.controls = [row for _, row in rows.values()]

    def _row(self, order: dict[str, Any], state: AppState, compact: bool) -> ft.Control:
        """One order. Wide: one line of fixed columns. Narrow (`compact`): two lines that fill the width
        (side, symbol, type and status over time, filled/amount and price), so nothing is cut or wraps
        mid-row and the cancel button keeps its own place."""
        symbol = order.get("symbol", "")
        market = state.markets.get(symbol)
        places = price_decimals(market, order.get("average") or order.get("price") or order.get("stopPrice"))
        side = order.get("side", "")
        colour = UP if side == "buy" else DOWN
        label = status_label(order)
        kind = order_kind(order)
        side_cell = ft.Row([direction_icon(1 if side == "buy" else -1),
                            ft.Text(side.upper(), color=colour, weight=ft.FontWeight.BOLD, size=12)],
                           spacing=0, width=52, tight=True)
        filled = f"{fmt_amount(order.get('filled'))}/{fmt_amount(order.get('amount'))}"
        price = order_price(order, places)
        order_id = str(order.get("id", ""))
        cancel = reachable(ft.IconButton(ft.Icons.CLOSE, icon_size=16, tooltip="Cancel",
                                         on_click=lambda _e, oid=order_id: self._intents.cancel_order(oid)),
                           f"Cancel order {order_id}")
        cancel.visible = order.get("status") == "open"
        muted = ft.Colors.ON_SURFACE_VARIANT
        if compact:
            top = ft.Row([side_cell, ft.Text(symbol, size=13, weight=ft.FontWeight.W_600),
                          ft.Text(kind, size=12, color=muted, expand=True, no_wrap=True,
                                  overflow=ft.TextOverflow.ELLIPSIS),
                          ft.Text(label, size=12, weight=ft.FontWeight.W_600)], spacing=6)
            bottom = ft.Row([ft.Text(fmt_time(order.get("timestamp")), size=11, color=muted, width=52),
                             ft.Text(filled, size=12, no_wrap=True),
                             # The price takes what is left and wraps there (an OCO's two prices on a
                             # narrow panel): never the amount cut to "0/0.0".
                             ft.Text(price, size=12, text_align=ft.TextAlign.RIGHT, expand=True)], spacing=6,
                            vertical_alignment=ft.CrossAxisAlignment.START)
            body: ft.Control = ft.Column([top, bottom], spacing=2, expand=True)
        else:
            body = ft.Row([
                ft.Text(fmt_time(order.get("timestamp")), size=12, width=64, color=muted),
                side_cell, ft.Text(symbol, size=13, width=92),
                ft.Text(kind, size=12, width=96, no_wrap=True),
                ft.Text(filled, size=12, width=110, text_align=ft.TextAlign.RIGHT, no_wrap=True),
                ft.Text(price, size=12, expand=True, text_align=ft.TextAlign.RIGHT, no_wrap=True),
                ft.Text(label, size=12, width=104, weight=ft.FontWeight.W_600, text_align=ft.TextAlign.RIGHT),
            ], spacing=8, expand=True)
        return ft.Semantics(
            identifier=f"order-{order.get('clientOrderId') or order_id}", container=True,
            label=f"{side} {order.get('amount')} {symbol} {kind.split(' · ')[0].lower()} order, {label}",
            # The button's place is kept when it is hidden (a filled or canceled order): every row is as tall
            # as an open one, and a list of mixed orders does not jump between row heights.
            content=ft.Row([body, ft.Container(cancel, width=40, height=40, alignment=ft.Alignment.CENTER)],
                           vertical_alignment=ft.CrossAxisAlignment.CENTER, spacing=4),
        )


KIND = {"market": "Market", "limit": "Limit", "stop_market": "Stop", "stop_limit": "Stop limit",
        "trailing_stop": "Trailing stop", "oco": "OCO"}


def order_kind(order: dict[str, Any]) -> str:
    """The order's type in a trader's words, with what it holds to: "Limit · IOC", "Limit · post-only"."""
    kind = KIND.get(str(order.get("type")), str(order.get("type") or "").replace("_", " ").title())
    extras = [str(order["timeInForce"])] if order.get("timeInForce") not in (None, "GTC") else []
    if order.get("postOnly"):
        extras.append("post-only")
    if order.get("parentId"):
        extras.append("exit")
    return " · ".join([kind, *extras])


def order_price(order: dict[str, Any], places: int) -> str:
    """The fill price once it traded; else the limit and/or trigger it waits for."""
    if order.get("average"):
        return f"@ {fmt(order['average'], places)}"
    parts = []
    if order.get("price"):
        parts.append(fmt(order["price"], places))
    if order.get("stopPrice"):
        parts.append(f"trigger {fmt(order['stopPrice'], places)}")
    if order.get("trailingPercent"):
        parts.append(f"trail {order['trailingPercent']}%")
    return " · ".join(parts) or "market"


def fmt_amount(value: Any) -> str:
    """An amount as the trader typed it: no trailing zeros, thousands separated ("1,250.5", "0.005")."""
    if value is None:
        return "0"
    number = float(value)
    text = f"{number:,.8f}".rstrip("0").rstrip(".")
    return text or "0"


def _fingerprint(order: dict[str, Any]) -> tuple[Any, ...]:
    return (order.get("id"), order.get("status"), order.get("filled"), order.get("average"), order.get("price"))
