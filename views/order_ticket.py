"""Order ticket: side, type, amount (and limit price); shows the estimated cost at the last price."""

from __future__ import annotations

import flet as ft

from client.state import AppState
from client.theme import DOWN, UP
from views.common import Intents, amount_decimals, fmt, panel, price_decimals, text_field

BUY_STYLE = ft.ButtonStyle(bgcolor=UP, color=ft.Colors.WHITE)
SELL_STYLE = ft.ButtonStyle(bgcolor=DOWN, color=ft.Colors.WHITE)


class OrderTicketView:
    TOPICS = frozenset({"ticket", "selected", "markets", "quotes"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        self.side = ft.SegmentedButton(
            segments=[ft.Segment(value="buy", label="Buy"), ft.Segment(value="sell", label="Sell")],
            selected=["buy"], show_selected_icon=False,
            on_change=lambda e: intents.edit_ticket(side=e.control.selected[0], error=None),
        )
        self.type = ft.SegmentedButton(
            segments=[ft.Segment(value="market", label="Market"), ft.Segment(value="limit", label="Limit")],
            selected=["market"], show_selected_icon=False,
            on_change=lambda e: intents.edit_ticket(type=e.control.selected[0], error=None),
        )
        self.amount = text_field(
            label="Amount", dense=True, keyboard_type=ft.KeyboardType.NUMBER, text_align=ft.TextAlign.RIGHT,
            on_change=lambda e: intents.edit_ticket(amount=e.control.value, error=None, client_order_id=None),
        )
        self.price = text_field(
            label="Limit price", dense=True, keyboard_type=ft.KeyboardType.NUMBER,
            text_align=ft.TextAlign.RIGHT,
            on_change=lambda e: intents.edit_ticket(price=e.control.value, error=None, client_order_id=None),
        )
        self.estimate = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.error = ft.Text("", size=12, color=ft.Colors.ERROR)
        self.progress = ft.ProgressRing(width=16, height=16, stroke_width=2, visible=False)
        self.submit = ft.FilledButton("Buy", on_click=lambda _e: intents.submit_order(), expand=True)
        body = ft.Column(
            [
                ft.Row([self.side], wrap=True),
                ft.Row([self.type], wrap=True),
                self.amount,
                self.price,
                self.estimate,
                self.error,
                ft.Row([self.submit, self.progress], vertical_alignment=ft.CrossAxisAlignment.CENTER),
            ],
            spacing=10,
        )
        self.control = panel("Order ticket", body, identifier="order-ticket")
        # What was last written into each input from state. An input is written only when the state
        # value moved since: Flet delivers a field's new value and its change event as two messages,
        # and a repaint between them must not put the stale value back under the trader's fingers.
        self._written: dict[str, object] = {}

    def render(self, state: AppState) -> None:
        ticket, symbol = state.ticket, state.selected
        market = state.markets.get(symbol, {})
        base, quote = market.get("base") or symbol.split("/")[0], market.get("quote") or symbol.split("/")[-1]
        last = state.quotes[symbol].last if symbol in state.quotes else None
        self._write(self.side, "selected", [ticket.side])
        self._write(self.type, "selected", [ticket.type])
        self.amount.label = f"Amount ({base})"
        minimum = (market.get("limits", {}).get("amount") or {}).get("min")
        self.amount.hint_text = f"min {minimum:g}" if minimum else None
        self._write(self.amount, "value", ticket.amount)
        self.price.visible = ticket.type == "limit"
        self.price.label = f"Limit price ({quote})"
        self._write(self.price, "value", ticket.price)
        self.estimate.value = self._estimate(ticket.amount, ticket.price if ticket.type == "limit" else None,
                                             last, market, quote)
        self.error.value = ticket.error or ""
        self.error.visible = bool(ticket.error)
        self.submit.content = f"{'Buy' if ticket.side == 'buy' else 'Sell'} {symbol}"
        self._write(self.submit, "style", BUY_STYLE if ticket.side == "buy" else SELL_STYLE)
        self.submit.disabled = ticket.submitting
        self.progress.visible = ticket.submitting

    def _write(self, control: ft.Control, prop: str, value: object) -> None:
        key = f"{id(control)}.{prop}"
        if self._written.get(key) != value:
            self._written[key] = value
            setattr(control, prop, value)

    @staticmethod
    def _estimate(amount: str, limit: str | None, last: float | None, market: dict, quote: str) -> str:
        if not amount.strip():
            return "Paper account · market orders fill at the last price"
        try:
            qty = float(amount)
            price = float(limit) if limit else last
        except ValueError:
            return "Enter a number"
        if not price or qty <= 0:
            return "Paper account · market orders fill at the last price"
        places = price_decimals(market, price)
        return f"≈ {fmt(qty * price, 2)} {quote} at {fmt(price, places)} · {fmt(qty, amount_decimals(market))}"
