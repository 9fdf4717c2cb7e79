"""The order ticket's rules, pure: which fields each order type needs, the order body the Order API takes,
the estimate (price with slippage, fee, total) and when to ask before sending. No I/O; the trading
controller sends what `order_body` builds, and the ticket view shows what `estimate` says.

One price story: the estimate uses the paper broker's own rule for a market order's price (the last trade
worsened by the slippage, rounded away from the trader on the tick grid) and its fee rate, so the fill
shown afterwards is the price estimated when the market has not moved in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

ORDER_TYPES: tuple[tuple[str, str], ...] = (
    ("market", "Market"), ("limit", "Limit"), ("stop_market", "Stop"), ("stop_limit", "Stop limit"),
    ("trailing_stop", "Trailing"), ("oco", "OCO"),
)
TYPE_LABEL = dict(ORDER_TYPES)
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
PERCENTS = (25, 50, 75, 100)
FAR_FROM_MARKET = Decimal("0.05")  # a price more than 5% from the last trade asks first


@dataclass(frozen=True, slots=True)
class Terms:
    """What the paper broker charges (backend_stub.settings: SKEET taker/maker fee and slippage defaults)."""

    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")
    slippage: Decimal = Decimal("0.0005")


PAPER_TERMS = Terms()  # the backend does not publish its terms yet: its defaults, the same figures


def uses_price(order_type: str) -> bool:
    return order_type in ("limit", "stop_limit", "oco")


def uses_stop(order_type: str) -> bool:
    return order_type in ("stop_market", "stop_limit", "oco")


def uses_trailing(order_type: str) -> bool:
    return order_type == "trailing_stop"


def uses_tif(order_type: str) -> bool:
    return order_type in ("limit", "stop_limit")


def can_bracket(order_type: str) -> bool:
    """Take-profit / stop-loss attach to an entry; an OCO or a trailing stop is already an exit."""
    return order_type in ("market", "limit", "stop_market", "stop_limit")


def price_label(order_type: str) -> str:
    return "Take-profit (limit) price" if order_type == "oco" else "Limit price"


def stop_label(order_type: str) -> str:
    return "Stop-loss (trigger) price" if order_type == "oco" else "Stop (trigger) price"


def decimal_or_none(text: str | None) -> Decimal | None:
    try:
        value = Decimal((text or "").replace(",", "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def step_of(market: dict[str, Any] | None, what: str, default: str) -> Decimal:
    """A market's step (tick size or amount step) as a Decimal; ccxt gives a step such as 0.01 or places."""
    raw = ((market or {}).get("precision") or {}).get(what)
    if raw is None:
        return Decimal(default)
    step = Decimal(str(raw))
    if step >= 1 and step == step.to_integral_value() and step < 20 and step != 1:
        return Decimal(1).scaleb(-int(step))  # a count of decimal places
    return step


def round_to(value: Decimal, step: Decimal, *, up: bool) -> Decimal:
    return (value / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * step


def market_fill_price(side: str, last: Decimal, market: dict[str, Any] | None, terms: Terms) -> Decimal:
    """What a market order pays on the paper broker: the last trade worse by the slippage, on the tick."""
    tick = step_of(market, "price", "0.01")
    if side == "buy":
        return round_to(last * (1 + terms.slippage), tick, up=True)
    return round_to(last * (1 - terms.slippage), tick, up=False)


def field_errors(ticket: Any) -> str | None:
    """The first field the trader must fix, in words, or None. `ticket` is a `client.state.Ticket`."""
    checks: list[tuple[str, str]] = [("Amount" if ticket.amount_mode == "base" else "Order value", ticket.amount)]
    if uses_price(ticket.type):
        checks.append((price_label(ticket.type), ticket.price))
    if uses_stop(ticket.type):
        checks.append((stop_label(ticket.type), ticket.stop_price))
    if uses_trailing(ticket.type):
        checks.append(("Trailing distance (%)", ticket.trailing_percent))
    if ticket.bracket and can_bracket(ticket.type):
        if ticket.take_profit.strip():
            checks.append(("Take-profit price", ticket.take_profit))
        if ticket.stop_loss.strip():
            checks.append(("Stop-loss price", ticket.stop_loss))
    for name, text in checks:
        value = decimal_or_none(text)
        if value is None:
            return f"{name}: enter a number" if text.strip() else f"{name}: enter a value"
        if value <= 0:
            return f"{name} must be above zero"
    if uses_trailing(ticket.type) and Decimal(ticket.trailing_percent) >= 100:
        return "Trailing distance must be under 100%"
    if ticket.bracket and can_bracket(ticket.type) and not (ticket.take_profit.strip() or ticket.stop_loss.strip()):
        return "Enter a take-profit or a stop-loss price (or switch the bracket off)"
    return None


def reference_price(ticket: Any, last: Decimal | None, market: dict[str, Any] | None, terms: Terms) -> Decimal | None:
    """The price the order is expected to trade at: the fill rule for market, else the price entered."""
    if ticket.type == "market":
        return market_fill_price(ticket.side, last, market, terms) if last else None
    if ticket.type == "limit":
        limit = decimal_or_none(ticket.price)
        if limit is not None and last is not None and crosses(ticket.side, limit, last):
            return last  # a limit through the market trades at once, at the last price (the book's rule)
        return limit
    if ticket.type in ("stop_limit", "oco"):
        return decimal_or_none(ticket.price)
    if ticket.type == "stop_market":
        stop = decimal_or_none(ticket.stop_price)
        return market_fill_price(ticket.side, stop, market, terms) if stop else None
    return market_fill_price(ticket.side, last, market, terms) if last else None  # trailing: from here


def crosses(side: str, limit: Decimal, last: Decimal) -> bool:
    return limit >= last if side == "buy" else limit <= last


def base_amount(ticket: Any, price: Decimal | None, market: dict[str, Any] | None) -> Decimal | None:
    """The amount in the base currency: as typed, or the order value divided by the price, on the step."""
    value = decimal_or_none(ticket.amount)
    if value is None or value <= 0:
        return None
    if ticket.amount_mode == "base":
        return value
    if not price:
        return None
    return round_to(value / price, step_of(market, "amount", "0.0001"), up=False)


@dataclass(frozen=True, slots=True)
class Estimate:
    amount: Decimal
    price: Decimal
    value: Decimal  # amount × price, in the quote currency
    fee: Decimal
    fee_rate: Decimal
    slippage: Decimal | None  # the slippage in `price`, when it is a market-style fill

    @property
    def total(self) -> Decimal:
        """What a buy costs or a sell brings, fee included."""
        return self.value + self.fee if self.fee >= 0 else self.value


def estimate(ticket: Any, last: Decimal | None, market: dict[str, Any] | None, terms: Terms) -> Estimate | None:
    price = reference_price(ticket, last, market, terms)
    amount = base_amount(ticket, price, market)
    if price is None or amount is None or price <= 0:
        return None
    entered = decimal_or_none(ticket.price)
    resting = ticket.type in ("limit", "oco") and last is not None and entered is not None and not crosses(
        ticket.side, entered, last)
    rate = terms.maker_fee if resting else terms.taker_fee
    value = amount * price
    market_style = ticket.type in ("market", "stop_market", "trailing_stop")
    return Estimate(amount, price, value, value * rate, rate, terms.slippage if market_style else None)


def percent_amount(percent: int, ticket: Any, *, free_quote: Decimal, free_base: Decimal, price: Decimal | None,
                   market: dict[str, Any] | None, terms: Terms) -> str:
    """The amount field's text for `percent` of the free balance: a buy spends that share of the free quote
    (fee included), a sell offers that share of the free base; in the ticket's amount mode, on the step."""
    step = step_of(market, "amount", "0.0001")
    share = Decimal(percent) / 100
    if ticket.side == "sell":
        base = round_to(free_base * share, step, up=False)
        if ticket.amount_mode == "base" or not price:
            return _plain(base)
        return _plain(round_to(base * price, step_of(market, "price", "0.01"), up=False))
    spend = free_quote * share / (1 + terms.taker_fee)
    if ticket.amount_mode == "quote":
        return _plain(round_to(spend, step_of(market, "price", "0.01"), up=False))
    if not price:
        return ""
    return _plain(round_to(spend / price, step, up=False))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def order_body(ticket: Any, amount: Decimal) -> dict[str, Any]:
    """The fields of `POST /v1/orders` beyond symbol/side/type/amount/clientOrderId for this ticket
    (the Order API contract: price, stopPrice, trailingPercent, timeInForce, postOnly, bracket prices)."""
    body: dict[str, Any] = {}
    if uses_price(ticket.type):
        body["price"] = ticket.price.strip()
    if uses_stop(ticket.type):
        body["stopPrice"] = ticket.stop_price.strip()
    if uses_trailing(ticket.type):
        body["trailingPercent"] = ticket.trailing_percent.strip()
    if uses_tif(ticket.type) and ticket.tif != "GTC":
        body["timeInForce"] = ticket.tif
    if ticket.type == "limit" and ticket.post_only:
        body["postOnly"] = True
    if ticket.bracket and can_bracket(ticket.type):
        if ticket.take_profit.strip():
            body["takeProfitPrice"] = ticket.take_profit.strip()
        if ticket.stop_loss.strip():
            body["stopLossPrice"] = ticket.stop_loss.strip()
    return body


def confirmation_reasons(ticket: Any, est: Estimate | None, last: Decimal | None, *, confirm_above: Decimal | None,
                         quote: str, places: int) -> list[str]:
    """Why this order should be confirmed before it goes: a price far from the market, a large order."""
    reasons: list[str] = []
    if last:
        for name, text in ((price_label(ticket.type), ticket.price if uses_price(ticket.type) else ""),
                           (stop_label(ticket.type), ticket.stop_price if uses_stop(ticket.type) else "")):
            value = decimal_or_none(text)
            if value and abs(value / last - 1) > FAR_FROM_MARKET:
                direction = "above" if value > last else "below"
                reasons.append(f"{name} {value:,.{places}f} is {abs(value / last - 1) * 100:,.1f}% {direction} "
                               f"the market ({last:,.{places}f})")
    if confirm_above and est is not None and est.value > confirm_above:
        reasons.append(f"The order is worth about {est.value:,.2f} {quote}, above your "
                       f"{confirm_above:,.2f} {quote} limit for orders without a second look")
    return reasons


def describe_order(ticket: Any, symbol: str, *, quote: str, places: int) -> str:
    """The order in a sentence, as a confirmation says it: "Buy 0.5 BTC/USDT at 96,000.00 (limit, GTC)"."""
    def price(text: str) -> str:
        value = decimal_or_none(text)
        return f"{value:,.{places}f}" if value is not None else text

    size = f"{ticket.amount} {symbol}" if ticket.amount_mode == "base" else f"{symbol} worth {ticket.amount} {quote}"
    head = f"{ticket.side.title()} {size}"
    trigger = f"once it trades at {price(ticket.stop_price)}"
    tif = f", {ticket.tif}" + (", post-only" if ticket.post_only and ticket.type == "limit" else "")
    tail = {
        "market": "at the market price",
        "limit": f"at {price(ticket.price)} (limit{tif})",
        "stop_market": f"at the market price {trigger} (stop)",
        "stop_limit": f"at {price(ticket.price)} {trigger} (stop limit{tif})",
        "trailing_stop": f"at the market price once it moves {ticket.trailing_percent}% against its best price "
                         "(trailing stop)",
        "oco": f"at {price(ticket.price)}, or at the market price {trigger} (OCO: one cancels the other)",
    }[ticket.type]
    text = f"{head} {tail}"
    if ticket.bracket and can_bracket(ticket.type):
        exits = [f"take-profit {price(ticket.take_profit)}" if ticket.take_profit.strip() else "",
                 f"stop-loss {price(ticket.stop_loss)}" if ticket.stop_loss.strip() else ""]
        text += ", then " + " and ".join(e for e in exits if e)
    return text
