"""Order rules of a market (ccxt structure, TICK_SIZE precision): what the exchange would refuse, said
the way a trader reads it (numbers with thousands separators at the market's precision). Pure functions;
raise `InvalidOrder`.

`check_order` needs only the market; `check_order_now` also the last price (a stop already crossed, an OCO
whose legs sit on the wrong sides, a bracket around a market entry). Both brokers call the second.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backend_stub.brokers.base import LIMIT_TYPES, STOP_TYPES, InvalidOrder, OrderRequest
from backend_stub.money import is_multiple, opt_dec

MAX_TRAILING_PERCENT = Decimal(50)
_NAMES = {
    "market": "market",
    "limit": "limit",
    "stop_market": "stop-market",
    "stop_limit": "stop-limit",
    "trailing_stop": "trailing-stop",
    "oco": "OCO",
}


def words(value: Decimal, step: Decimal | None = None) -> str:
    """A number for a trader: 487,519,300 · 97,603.30 (padded to `step`'s decimals) · 0.00001 (a trader's
    own digits are never rounded away)."""
    value = value.normalize()
    if value == value.to_integral_value():
        return f"{value.to_integral_value():,f}"
    if step is not None and step > 0:
        exponent = step.normalize().as_tuple().exponent
        have = value.as_tuple().exponent
        if isinstance(exponent, int) and isinstance(have, int) and have > exponent:
            value = value.quantize(Decimal(1).scaleb(exponent))
    return f"{value:,f}"


def check_order(request: OrderRequest, markets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check `request` against its market; returns the market. Notional of a market order is checked by
    the broker (`check_notional`) once it knows the price."""
    market = markets.get(request.symbol)
    if market is None:
        raise InvalidOrder(f"Unknown symbol {request.symbol}; see GET /v1/markets for what can be traded")
    if market.get("active") is False:
        raise InvalidOrder(f"{request.symbol} is not trading right now")
    base, quote = market.get("base", ""), market.get("quote", "")
    precision = market.get("precision") or {}
    price_step, amount_step = opt_dec(precision.get("price")), opt_dec(precision.get("amount"))
    kind = _NAMES.get(request.type, request.type)
    a_kind = _a(kind)
    _positive("Amount", request.amount, base)
    if request.type in LIMIT_TYPES:
        if request.price is None:
            raise InvalidOrder(f"{a_kind} order needs a price")
        _positive("Price", request.price, quote)
    elif request.price is not None:
        raise InvalidOrder(f"{a_kind} order takes no price; use a limit order to set one")
    if request.type in STOP_TYPES:
        if request.stop_price is None:
            raise InvalidOrder(f"{a_kind} order needs a stop price")
        _positive("Stop price", request.stop_price, quote)
    elif request.stop_price is not None:
        raise InvalidOrder(f"{a_kind} order takes no stop price; use a stop order to set one")
    _check_kind_options(request, kind)

    limits = market.get("limits") or {}
    if amount_step and not is_multiple(request.amount, amount_step):
        raise InvalidOrder(
            f"Amount {words(request.amount)} {base} is not a multiple of the step {words(amount_step)} {base}"
        )
    amount_limits = limits.get("amount") or {}
    _range("Amount", request.amount, base, amount_limits.get("min"), amount_limits.get("max"), amount_step)
    price_limits = limits.get("price") or {}
    for label, value in (
        ("Price", request.price),
        ("Stop price", request.stop_price),
        ("Take-profit price", request.take_profit_price),
        ("Stop-loss price", request.stop_loss_price),
    ):
        if value is None:
            continue
        _positive(label, value, quote)
        if price_step and not is_multiple(value, price_step):
            raise InvalidOrder(
                f"{label} {words(value)} {quote} is not a multiple of the tick {words(price_step)} {quote}"
            )
        _range(label, value, quote, price_limits.get("min"), price_limits.get("max"), price_step)
    if request.type == "oco":
        assert request.price is not None and request.stop_price is not None
        low, high = ("limit price", "stop price") if request.side == "buy" else ("stop price", "limit price")
        if (request.price >= request.stop_price) if request.side == "buy" else (request.price <= request.stop_price):
            raise InvalidOrder(
                f"An OCO {request.side} needs its {low} below its {high}: the limit leg "
                f"{'buys the dip' if request.side == 'buy' else 'takes the profit'}, the stop leg "
                f"{'buys the breakout' if request.side == 'buy' else 'cuts the loss'}"
            )
    reference = request.price if request.price is not None else request.stop_price
    if reference is not None:
        check_notional(request, market, reference)
        _check_bracket(request, reference, quote, price_step)
    return market


def check_order_now(request: OrderRequest, market: dict[str, Any], last: Decimal) -> None:
    """Rules that need the last price: a stop must not trigger at once, an OCO's limit leg must not trade
    at once nor its stop leg trigger, and a bracket on a market or trailing entry brackets the last price."""
    quote = market.get("quote", "")
    price_step = opt_dec((market.get("precision") or {}).get("price"))
    side = request.side
    if request.type in ("stop_market", "stop_limit", "oco"):
        stop = request.stop_price
        assert stop is not None
        if (last >= stop) if side == "buy" else (last <= stop):
            where = "above" if side == "buy" else "below"
            raise InvalidOrder(
                f"A {side} stop must be {where} the last price {words(last, price_step)} {quote}; "
                f"stop price {words(stop, price_step)} {quote} would trigger at once"
            )
    if request.type == "oco":
        assert request.price is not None
        if (request.price >= last) if side == "buy" else (request.price <= last):
            where = "below" if side == "buy" else "above"
            raise InvalidOrder(
                f"An OCO {side}'s limit price must be {where} the last price {words(last, price_step)} {quote}, "
                f"or it would trade at once; use a limit order for that"
            )
    if request.type in ("market", "trailing_stop"):
        _check_bracket(request, last, quote, price_step)


def check_notional(request: OrderRequest, market: dict[str, Any], price: Decimal) -> None:
    """Order value (amount × price) within the market's cost limits."""
    cost_limits = (market.get("limits") or {}).get("cost") or {}
    quote = market.get("quote", "")
    step = opt_dec((market.get("precision") or {}).get("price"))
    value = (request.amount * price).normalize()
    low, high = opt_dec(cost_limits.get("min")), opt_dec(cost_limits.get("max"))
    if low is not None and value < low:
        raise InvalidOrder(
            f"Order value {words(value, step)} {quote} is below the minimum {words(low, step)} {quote}"
        )
    if high is not None and value > high:
        raise InvalidOrder(
            f"Order value {words(value, step)} {quote} is above the maximum {words(high, step)} {quote}"
        )


def _check_kind_options(request: OrderRequest, kind: str) -> None:
    """Which of trailing percent, time in force, post-only and a bracket each type takes."""
    if request.type == "trailing_stop":
        percent = request.trailing_percent
        if percent is None:
            raise InvalidOrder("A trailing-stop order needs a trailing percent (how far behind the best price)")
        if not 0 < percent <= MAX_TRAILING_PERCENT:
            raise InvalidOrder(f"Trailing percent must be more than 0 and at most {MAX_TRAILING_PERCENT} %")
    elif request.trailing_percent is not None:
        raise InvalidOrder(f"{_a(kind)} order takes no trailing percent; use a trailing-stop order")
    if request.time_in_force != "GTC" and request.type not in ("market", "limit"):
        raise InvalidOrder(
            f"Time in force {request.time_in_force} applies to market and limit orders; "
            f"a {kind} order waits for its price (GTC)"
        )
    if request.post_only:
        if request.type != "limit":
            raise InvalidOrder(f"Post-only applies to limit orders, not to a {kind} order")
        if request.time_in_force != "GTC":
            raise InvalidOrder(
                f"A post-only order rests in the book, so it cannot be {request.time_in_force}; use GTC"
            )
    if request.has_bracket and request.type == "oco":
        raise InvalidOrder("An OCO order is already an exit; it takes no take-profit or stop-loss price")


def _check_bracket(request: OrderRequest, reference: Decimal, quote: str, step: Decimal | None) -> None:
    """A buy's take-profit above its entry and stop-loss below it (a sell's the other way round)."""
    if request.type == "oco":
        return
    tp, sl, ref = request.take_profit_price, request.stop_loss_price, words(reference, step)
    up = request.side == "buy"
    if tp is not None and ((tp <= reference) if up else (tp >= reference)):
        where = "above" if up else "below"
        raise InvalidOrder(
            f"The take-profit price {words(tp, step)} {quote} must be {where} the entry at {ref} {quote}"
        )
    if sl is not None and ((sl >= reference) if up else (sl <= reference)):
        where = "below" if up else "above"
        raise InvalidOrder(
            f"The stop-loss price {words(sl, step)} {quote} must be {where} the entry at {ref} {quote}"
        )


def _a(kind: str) -> str:
    return f"An {kind}" if kind == "OCO" else f"A {kind}"


def _positive(label: str, value: Decimal, unit: str) -> None:
    if not value.is_finite():
        raise InvalidOrder(f"{label} must be a finite number")
    if value <= 0:
        raise InvalidOrder(f"{label} must be greater than 0 {unit}".rstrip())


def _range(
    label: str, value: Decimal, unit: str, low_raw: Any, high_raw: Any, step: Decimal | None = None
) -> None:
    low, high = opt_dec(low_raw), opt_dec(high_raw)
    if low is not None and value < low:
        raise InvalidOrder(f"{label} {words(value, step)} {unit} is below the minimum {words(low, step)} {unit}")
    if high is not None and value > high:
        raise InvalidOrder(f"{label} {words(value, step)} {unit} is above the maximum {words(high, step)} {unit}")
