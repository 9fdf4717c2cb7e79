"""`TradingController`: the order ticket and price alerts, sent to the backend through one retry-safe path
(a live order asks first), and cancels and deletes."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import flet as ft

from client.context import SessionContext
from client.controllers.submit import RetrySafeSubmit
from client.ticket import (
    PAPER_TERMS as TERMS,
)
from client.ticket import (
    TYPE_LABEL,
    base_amount,
    confirmation_reasons,
    decimal_or_none,
    describe_order,
    estimate,
    field_errors,
    order_body,
    reference_price,
)
from services.api import ApiError, new_client_alert_id, new_client_order_id
from views.common import fmt, fmt_time, price_decimals


class TradingController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx
        state = ctx.state
        self._orders = RetrySafeSubmit(
            ctx, key_field="client_order_id", edit=state.edit_ticket, new_key=new_client_order_id,
            current=lambda: (state.ticket.submitting, state.ticket.client_order_id),
            promise="the order will not be placed twice")
        self._alerts = RetrySafeSubmit(
            ctx, key_field="client_alert_id", edit=state.edit_alert_draft, new_key=new_client_alert_id,
            current=lambda: (state.alert_draft.submitting, state.alert_draft.client_alert_id),
            promise="the alert will not be set twice")

    # -- orders -------------------------------------------------------------------------------
    def submit_order(self) -> None:
        state = self._ctx.state
        ticket = state.ticket
        if ticket.submitting:
            return  # a double tap is one order
        error = field_errors(ticket)
        if error:
            state.edit_ticket(error=error)
            return
        reasons = self._confirmation_reasons()
        if state.live_trading or reasons:
            self._confirm(reasons)
            return
        self._send_order()

    def _market(self) -> tuple[dict[str, Any], Decimal | None, int]:
        state = self._ctx.state
        market = state.markets.get(state.selected, {})
        quote = state.quotes.get(state.selected)
        last = Decimal(str(quote.last)) if quote is not None else None
        return market, last, price_decimals(market, quote.last if quote else None)

    def _confirmation_reasons(self) -> list[str]:
        state = self._ctx.state
        market, last, places = self._market()
        est = estimate(state.ticket, last, market, TERMS)
        return confirmation_reasons(state.ticket, est, last, confirm_above=decimal_or_none(state.ticket.confirm_above),
                                    quote=market.get("quote") or state.selected.split("/")[-1], places=places)

    def _send_order(self) -> None:
        state, api = self._ctx.state, self._ctx.services.api
        ticket, symbol = state.ticket, state.selected
        market, last, _places = self._market()
        amount = base_amount(ticket, reference_price(ticket, last, market, TERMS), market)
        if amount is None or amount <= 0:
            state.edit_ticket(error="The order value is too small for one step of the amount")
            return
        fields = order_body(ticket, amount)
        price, stop = fields.pop("price", None), fields.pop("stopPrice", None)

        def send(key: str) -> Any:
            return api.place_order(symbol=symbol, side=ticket.side, type=ticket.type, amount=format(amount, "f"),
                                   price=price, stop_price=stop, client_order_id=key, fields=fields)

        def sent(order: dict[str, Any]) -> None:
            self._ctx.screen.close_sheet()  # on a phone: back to the dashboard, where the order shows
            message = order_sent_message(order, state.markets.get(symbol))
            state.notify(message, "success")
            # The notice is a snack bar: 4 s, and replaced at once by any later notice. The ticket keeps it.
            state.edit_ticket(last_sent=f"{fmt_time(order.get('timestamp') or int(time.time() * 1000))} · {message}")
            self._ctx.spawn(self.refresh_balance(), name="balance")

        self._orders.submit(send, sent=sent,
                            refused=lambda exc: state.notify(f"Order refused: {exc.message}", "error"))

    def _confirm(self, reasons: list[str]) -> None:
        """Say exactly what will be sent, and why it asks (real money, a price far off, a large order);
        send it only on an explicit yes."""
        state, screen = self._ctx.state, self._ctx.screen
        ticket, symbol = state.ticket, state.selected
        market, last, places = self._market()
        lines = [describe_order(ticket, symbol, quote=market.get("quote") or symbol.split("/")[-1], places=places)]
        if state.live_trading:
            lines.append(f"On {state.modes.get('orders', 'the exchange')}. This uses real funds.")
        lines += reasons

        def answer(send: bool) -> None:
            screen.pop_dialog()
            if send:
                self._send_order()

        screen.show_dialog(ft.AlertDialog(
            modal=True,
            title=ft.Text("Place a live order?" if state.live_trading else "Place this order?"),
            content=ft.Text("\n".join(lines)),
            actions=[ft.TextButton("Cancel", on_click=lambda _e: answer(False)),
                     ft.FilledButton(f"{ticket.side.title()} {symbol}", on_click=lambda _e: answer(True))],
        ))

    async def refresh_balance(self) -> None:
        """The free and locked balance, as the backend holds it (the live state carries no balance)."""
        try:
            balance = await self._ctx.services.api.balance()
        except ApiError:
            return  # the previous figures stay; the next order change or tick of the follower retries
        self._ctx.state.set_balance(balance)

    async def follow_balance(self, interval_s: float = 0.5, every_s: float = 15.0) -> None:
        """Re-read the balance after every order or position change, and every `every_s` regardless."""
        state = self._ctx.state
        seen, waited = -1, every_s
        while True:
            if state.account_revision != seen or waited >= every_s:
                seen, waited = state.account_revision, 0.0
                await self.refresh_balance()
            state.record_equity(int(time.time() * 1000))  # the equity curve: balance marked at the quotes
            await asyncio.sleep(interval_s)
            waited += interval_s

    async def cancel_order(self, order_id: str) -> None:
        state = self._ctx.state
        try:
            await self._ctx.services.api.cancel_order(order_id)
        except ApiError as exc:
            state.notify(f"Cancel failed: {exc.message}", "error")
        else:
            state.notify("Order canceled", "info")

    # -- price alerts -------------------------------------------------------------------------
    def add_alert(self, symbol: str, price: str, note: str) -> None:
        state, api = self._ctx.state, self._ctx.services.api
        if state.alert_draft.submitting:
            return  # a double tap is one alert
        error = number_error("The alert price", price) if symbol else "Pick a symbol to watch"
        if error:
            state.edit_alert_draft(error=error)
            return
        saved = state.alert_draft.saved

        def sent(alert: dict[str, Any]) -> None:
            state.edit_alert_draft(saved=saved + 1)
            verb = "rises to" if alert.get("condition") == "above" else "falls to"
            places = price_decimals(state.markets.get(symbol), alert.get("price"))
            state.notify(f"Alert set: {symbol} {verb} {fmt(alert.get('price'), places)}", "success")

        self._alerts.submit(
            lambda key: api.create_alert(symbol=symbol, price=price, note=note, client_alert_id=key), sent=sent)

    async def delete_alert(self, alert_id: str) -> None:
        try:
            await self._ctx.services.api.delete_alert(alert_id)
        except ApiError as exc:
            self._ctx.state.notify(f"Could not delete the alert: {exc.message}", "error")


def order_sent_message(order: dict[str, Any], market: dict[str, Any] | None) -> str:
    """"Buy 0.003 BTC/USDT market order sent", with the fill price when it filled at once."""
    kind = TYPE_LABEL.get(str(order.get("type")), str(order.get("type"))).lower()
    text = f"{str(order.get('side', '')).title()} {order.get('amount')} {order.get('symbol')} {kind} order sent"
    if order.get("average") and order.get("filled"):
        places = price_decimals(market, order.get("average"))
        text += f": filled at {fmt(order.get('average'), places)}"
    return text


def number_error(name: str, text: str) -> str | None:
    """Why `text` is not a positive number, in words, or None when it is one."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return f"{name} must be a number"
    if not value.is_finite() or value <= 0:
        return f"{name} must be a positive number"
    return None
