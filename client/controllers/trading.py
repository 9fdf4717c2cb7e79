"""`TradingController`: the order ticket and price alerts, sent to the backend through one retry-safe path
(a live order asks first), and cancels and deletes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import flet as ft

from client.context import SessionContext
from client.controllers.submit import RetrySafeSubmit
from services.api import ApiError, new_client_alert_id, new_client_order_id
from views.common import fmt, price_decimals


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
        error = ticket_error(ticket.amount, ticket.price if ticket.type == "limit" else None)
        if error:
            state.edit_ticket(error=error)
            return
        if state.live_trading:
            self._confirm_live_order()
            return
        self._send_order()

    def _send_order(self) -> None:
        state, api = self._ctx.state, self._ctx.services.api
        ticket, symbol = state.ticket, state.selected
        price = ticket.price if ticket.type == "limit" else None

        def send(key: str) -> Any:
            return api.place_order(symbol=symbol, side=ticket.side, type=ticket.type, amount=ticket.amount,
                                   price=price, client_order_id=key)

        def sent(order: dict[str, Any]) -> None:
            self._ctx.screen.close_sheet()  # on a phone: back to the dashboard, where the order shows
            state.notify(f"{order.get('side', '').title()} {order.get('amount')} {order.get('symbol')} "
                         f"{order.get('type')} order sent", "success")

        self._orders.submit(send, sent=sent,
                            refused=lambda exc: state.notify(f"Order rejected: {exc.message}", "error"))

    def _confirm_live_order(self) -> None:
        """Real money: say exactly what will be sent, and send it only on an explicit yes."""
        state, screen = self._ctx.state, self._ctx.screen
        ticket, symbol = state.ticket, state.selected
        price = f" at {ticket.price}" if ticket.type == "limit" else " at the market price"

        def answer(send: bool) -> None:
            screen.pop_dialog()
            if send:
                self._send_order()

        screen.show_dialog(ft.AlertDialog(
            modal=True,
            title=ft.Text("Place a live order?"),
            content=ft.Text(f"{ticket.side.upper()} {ticket.amount} {symbol}{price} on "
                            f"{state.modes.get('orders', 'the exchange')}. This uses real funds."),
            actions=[ft.TextButton("Cancel", on_click=lambda _e: answer(False)),
                     ft.FilledButton(f"{ticket.side.title()} {symbol}", on_click=lambda _e: answer(True))],
        ))

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


def ticket_error(amount: str, price: str | None) -> str | None:
    return number_error("Amount", amount) or (number_error("Limit price", price) if price is not None else None)


def number_error(name: str, text: str) -> str | None:
    """Why `text` is not a positive number, in words, or None when it is one."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return f"{name} must be a number"
    if not value.is_finite() or value <= 0:
        return f"{name} must be a positive number"
    return None
