"""Order ticket: side; market, limit, stop, stop-limit, trailing stop or OCO; time in force and post-only;
take-profit / stop-loss attached to an entry; the amount in the base currency, as an order value, or as a
share of the free balance; the free and locked balance beside it; an estimate naming slippage and fee.

The rules (which fields a type needs, the estimate, the order body) are `client.ticket`'s; this view shows
them and turns taps into `edit_ticket` / `submit_order` intents."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import flet as ft

from client.state import AppState
from client.theme import DOWN, UP
from client.ticket import (
    ORDER_TYPES,
    PAPER_TERMS,
    PERCENTS,
    TIME_IN_FORCE,
    can_bracket,
    decimal_or_none,
    estimate,
    percent_amount,
    price_label,
    reference_price,
    stop_label,
    uses_price,
    uses_stop,
    uses_tif,
    uses_trailing,
)
from views.common import Intents, amount_decimals, fmt, panel, price_decimals, text_field

BUY_STYLE = ft.ButtonStyle(bgcolor=UP, color=ft.Colors.WHITE)
SELL_STYLE = ft.ButtonStyle(bgcolor=DOWN, color=ft.Colors.WHITE)
COMPACT = ft.ButtonStyle(padding=ft.Padding.symmetric(horizontal=8), visual_density=ft.VisualDensity.COMPACT)
TERMS = PAPER_TERMS


def _number_field(label: str, on_change: Any, **kwargs: Any) -> ft.TextField:
    return text_field(label=label, dense=True, keyboard_type=ft.KeyboardType.NUMBER, text_align=ft.TextAlign.RIGHT,
                      on_change=on_change, **kwargs)


class OrderTicketView:
    TOPICS = frozenset({"ticket", "selected", "markets", "quote.selected", "balance"})  # repaints only for these

    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        self._state: AppState | None = None
        edit = intents.edit_ticket

        def typed(name: str) -> Any:
            return lambda e: edit(**{name: e.control.value}, error=None, client_order_id=None)

        self.side = ft.SegmentedButton(
            segments=[ft.Segment(value="buy", label="Buy"), ft.Segment(value="sell", label="Sell")],
            selected=["buy"], show_selected_icon=False, expand=True,
            on_change=lambda e: edit(side=e.control.selected[0], error=None),
        )
        self.types = {
            value: ft.Chip(label=ft.Text(label, size=12), selected=value == "market", show_checkmark=False,
                           data=value, on_select=self._pick_type)
            for value, label in ORDER_TYPES
        }
        self.free = ft.Text("—", size=12, weight=ft.FontWeight.W_600)
        self.free_currency = ft.Text("", size=12)
        self.locked = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        balance = ft.Row(
            [ft.Text("Available", size=12, color=ft.Colors.ON_SURFACE_VARIANT),
             ft.Semantics(identifier="balance", container=True, content=self.free), self.free_currency,
             ft.Container(expand=True), self.locked],
            spacing=4, vertical_alignment=ft.CrossAxisAlignment.CENTER,
        )
        self.amount = _number_field("Amount", typed("amount"), expand=True)
        self.amount_mode = ft.SegmentedButton(
            segments=[ft.Segment(value="base", label="BTC"), ft.Segment(value="quote", label="USDT")],
            selected=["base"], show_selected_icon=False, style=COMPACT,
            on_change=lambda e: edit(amount_mode=e.control.selected[0], amount="", error=None, client_order_id=None),
        )
        self.percents = [ft.TextButton(f"{p}%", data=p, style=COMPACT, on_click=self._percent) for p in PERCENTS]
        self.price = _number_field("Limit price", typed("price"))
        self.stop = _number_field("Stop (trigger) price", typed("stop_price"))
        self.trailing = _number_field("Trailing distance (%)", typed("trailing_percent"))
        self.tif = ft.SegmentedButton(
            segments=[ft.Segment(value=t, label=t, tooltip={"GTC": "Good till cancelled",
                                                             "IOC": "Immediate or cancel: what trades at once",
                                                             "FOK": "Fill or kill: all at once or nothing"}[t])
                      for t in TIME_IN_FORCE],
            selected=["GTC"], show_selected_icon=False, style=COMPACT,
            on_change=lambda e: edit(tif=e.control.selected[0], error=None),
        )
        self.post_only = ft.Checkbox(label="Post-only (maker)", value=False,
                                     on_change=lambda e: edit(post_only=bool(e.control.value), error=None))
        self.tif_row = ft.Row([self.tif, self.post_only], wrap=True, spacing=8, run_spacing=4)
        self.bracket = ft.Checkbox(label="Take-profit / stop-loss", value=False,
                                   on_change=lambda e: edit(bracket=bool(e.control.value), error=None))
        self.take_profit = _number_field("Take-profit", typed("take_profit"), expand=True)
        self.stop_loss = _number_field("Stop-loss", typed("stop_loss"), expand=True)
        self.bracket_row = ft.Row([self.take_profit, self.stop_loss], spacing=8)
        self.estimate = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.confirm_above = _number_field("Ask before orders above", typed("confirm_above"))
        self.error = ft.Text("", size=12, color=ft.Colors.ERROR)
        self.progress = ft.ProgressRing(width=16, height=16, stroke_width=2, visible=False)
        # The last order sent, kept in the ticket: its notice is a snack bar that any later notice replaces.
        self.last_sent_text = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.last_sent = ft.Semantics(identifier="ticket-sent", container=True, content=self.last_sent_text,
                                      visible=False)
        self.submit = ft.FilledButton("Buy", on_click=lambda _e: intents.submit_order(), expand=True)
        self.body = ft.Column(
            [
                ft.Row([self.side]),
                ft.Row(list(self.types.values()), wrap=True, spacing=4, run_spacing=4),
                balance,
                ft.Row([self.amount, self.amount_mode], spacing=6, vertical_alignment=ft.CrossAxisAlignment.CENTER),
                ft.Row(list[ft.Control](self.percents), spacing=0, alignment=ft.MainAxisAlignment.SPACE_BETWEEN),
                self.price, self.stop, self.trailing, self.tif_row,
                self.bracket, self.bracket_row,
                self.estimate, self.error,
                ft.Row([self.submit, self.progress], vertical_alignment=ft.CrossAxisAlignment.CENTER),
                self.last_sent,
                self.confirm_above,
            ],
            spacing=8,
        )
        self.control = panel("Order ticket", self.body, identifier="order-ticket")
        # What was last written into each input from state. An input is written only when the state
        # value moved since: Flet delivers a field's new value and its change event as two messages,
        # and a repaint between them must not put the stale value back under the trader's fingers.
        self._written: dict[str, object] = {}

    def render(self, state: AppState) -> None:
        self._state = state
        ticket, symbol = state.ticket, state.selected
        market = state.markets.get(symbol, {})
        base, quote = market.get("base") or symbol.split("/")[0], market.get("quote") or symbol.split("/")[-1]
        last = state.quotes[symbol].last if symbol in state.quotes else None
        places = price_decimals(market, last)
        self._write(self.side, "selected", [ticket.side])
        for value, chip in self.types.items():
            self._write(chip, "selected", value == ticket.type)
        spend, spend_places = (quote, 2) if ticket.side == "buy" else (base, amount_decimals(market))
        self.free.value = fmt(state.free(spend), spend_places) if state.balance else "—"
        self.free_currency.value = spend
        used = state.used(spend)
        self.locked.value = f"In orders {fmt(used, spend_places)}" if state.balance else ""
        self.amount_mode.segments[0].label, self.amount_mode.segments[1].label = base, quote
        self._write(self.amount_mode, "selected", [ticket.amount_mode])
        self.amount.label = f"Amount ({base})" if ticket.amount_mode == "base" else f"Order value ({quote})"
        minimum = (market.get("limits", {}).get("amount") or {}).get("min")
        self.amount.hint_text = f"min {minimum:g}" if minimum and ticket.amount_mode == "base" else None
        self._write(self.amount, "value", ticket.amount)
        self.price.visible = uses_price(ticket.type)
        self.price.label = f"{price_label(ticket.type)} ({quote})"
        self._write(self.price, "value", ticket.price)
        self.stop.visible = uses_stop(ticket.type)
        self.stop.label = f"{stop_label(ticket.type)} ({quote})"
        self._write(self.stop, "value", ticket.stop_price)
        self.trailing.visible = uses_trailing(ticket.type)
        self._write(self.trailing, "value", ticket.trailing_percent)
        self.tif_row.visible = uses_tif(ticket.type)
        self._write(self.tif, "selected", [ticket.tif])
        self.post_only.visible = ticket.type == "limit"
        self._write(self.post_only, "value", ticket.post_only)
        self.bracket.visible = can_bracket(ticket.type)
        self._write(self.bracket, "value", ticket.bracket)
        self.bracket_row.visible = ticket.bracket and can_bracket(ticket.type)
        self.take_profit.label, self.stop_loss.label = f"Take-profit ({quote})", f"Stop-loss ({quote})"
        self._write(self.take_profit, "value", ticket.take_profit)
        self._write(self.stop_loss, "value", ticket.stop_loss)
        self.confirm_above.label = f"Ask before orders above ({quote})"
        self._write(self.confirm_above, "value", ticket.confirm_above)
        self.estimate.value = describe_estimate(state, places)
        self.error.value = ticket.error or ""
        self.error.visible = bool(ticket.error)
        verb = "Buy" if ticket.side == "buy" else "Sell"
        self.submit.content = f"{verb} {symbol}"
        self._write(self.submit, "style", BUY_STYLE if ticket.side == "buy" else SELL_STYLE)
        self.submit.disabled = ticket.submitting
        self.progress.visible = ticket.submitting
        self.last_sent_text.value = f"Sent {ticket.last_sent}" if ticket.last_sent else ""
        self.last_sent.visible = bool(ticket.last_sent)

    def render_quote(self, state: AppState) -> list[ft.Control]:
        """Only the selected symbol's price moved (Shell calls this then): the estimate is all of the ticket
        that reads it, so only it is sent, not the whole form diffed at every repaint."""
        self._state = state
        symbol = state.selected
        last = state.quotes[symbol].last if symbol in state.quotes else None
        self.estimate.value = describe_estimate(state, price_decimals(state.markets.get(symbol, {}), last))
        return [self.estimate]

    def _pick_type(self, e: Any) -> None:
        """A tap on a type chip picks it; a tap on the type already picked keeps it picked (a chip toggles
        itself off in the browser, and the state, unchanged, would never put it back)."""
        chip = e.control
        if not chip.selected:
            chip.selected = True
            self._written.pop(f"{id(chip)}.selected", None)
        self._intents.edit_ticket(type=chip.data, error=None, client_order_id=None)

    def _percent(self, e: Any) -> None:
        """25/50/75/100% of the free balance into the amount field, at the price the order would trade."""
        state = self._state
        if state is None:
            return
        ticket, symbol = state.ticket, state.selected
        market = state.markets.get(symbol, {})
        base, quote = market.get("base") or symbol.split("/")[0], market.get("quote") or symbol.split("/")[-1]
        last = Decimal(str(state.quotes[symbol].last)) if symbol in state.quotes else None
        if not state.balance:
            self._intents.edit_ticket(error="The balance is not known yet: enter an amount")
            return
        price = reference_price(ticket, last, market, TERMS) or last
        amount = percent_amount(int(e.control.data), ticket, free_quote=Decimal(str(state.free(quote))),
                                free_base=Decimal(str(state.free(base))), price=price, market=market, terms=TERMS)
        self._intents.edit_ticket(amount=amount, error=None, client_order_id=None)

    def _write(self, control: ft.Control, prop: str, value: object) -> None:
        key = f"{id(control)}.{prop}"
        if self._written.get(key) != value:
            self._written[key] = value
            setattr(control, prop, value)


def describe_estimate(state: AppState, places: int) -> str:
    """What the order will cost (or bring), in the words a fill will be shown in afterwards."""
    ticket, symbol = state.ticket, state.selected
    market = state.markets.get(symbol, {})
    base, quote = market.get("base") or symbol.split("/")[0], market.get("quote") or symbol.split("/")[-1]
    last = Decimal(str(state.quotes[symbol].last)) if symbol in state.quotes else None
    if not ticket.amount.strip():
        return f"Paper account · fee {TERMS.taker_fee * 100:.2f}% · market orders pay " \
               f"{TERMS.slippage * 100:.2f}% slippage"
    if decimal_or_none(ticket.amount) is None:
        return "Enter a number"
    est = estimate(ticket, last, market, TERMS)
    if est is None:
        return "Enter the prices to see what it costs"
    amount_places = amount_decimals(market)
    at = {"market": "fills at about", "limit": "at", "stop_market": "if triggered, fills at about",
          "stop_limit": "if triggered, at", "trailing_stop": "from about", "oco": "take-profit at"}[ticket.type]
    lines = [f"≈ {fmt(float(est.total if ticket.side == 'buy' else est.value - est.fee), 2)} {quote} "
             f"{'to pay' if ticket.side == 'buy' else 'to receive'}, fee included",
             f"{fmt(float(est.amount), amount_places)} {base} {at} {fmt(float(est.price), places)}"]
    if est.slippage is not None and last is not None and ticket.type == "market":
        lines[-1] += f" (last {fmt(float(last), places)} {'+' if ticket.side == 'buy' else '−'} " \
                     f"{est.slippage * 100:.2f}% slippage)"
    if ticket.type == "limit" and est.price != decimal_or_none(ticket.price):
        lines[-1] += " (the limit is through the market: it trades at once)"
    if ticket.type == "trailing_stop":
        lines[-1] += f", triggers {ticket.trailing_percent or '?'}% off the best price"
    lines.append(f"Fee ≈ {fmt(float(est.fee), 2)} {quote} ({est.fee_rate * 100:.2f}%)")
    return "\n".join(lines)
