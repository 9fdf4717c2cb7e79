"""Order rules of a market (ccxt structure, TICK_SIZE precision): what the exchange would refuse, said
the way a trader reads it. Pure functions; raise `InvalidOrder`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backend_stub.brokers.base import LIMIT_TYPES, STOP_TYPES, InvalidOrder, OrderRequest
from backend_stub.money import is_multiple, opt_dec, text


def check_order(request: OrderRequest, markets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check `request` against its market; returns the market. Notional of a market order is checked by
    the broker (`check_notional`) once it knows the price."""
    market = markets.get(request.symbol)
    if market is None:
        raise InvalidOrder(f"Unknown symbol {request.symbol}; see GET /v1/markets for what can be traded")
    if market.get("active") is False:
        raise InvalidOrder(f"{request.symbol} is not trading right now")
    base, quote = market.get("base", ""), market.get("quote", "")
    _positive("Amount", request.amount, base)
    if request.type in LIMIT_TYPES:
        if request.price is None:
            raise InvalidOrder(f"A {_kind(request.type)} order needs a price")
        _positive("Price", request.price, quote)
    elif request.price is not None:
        raise InvalidOrder(f"A {_kind(request.type)} order takes no price; use a limit order to set one")
    if request.type in STOP_TYPES:
        if request.stop_price is None:
            raise InvalidOrder(f"A {_kind(request.type)} order needs a stop price")
        _positive("Stop price", request.stop_price, quote)
    elif request.stop_price is not None:
        raise InvalidOrder(f"A {_kind(request.type)} order takes no stop price; use a stop order to set one")

    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_step = opt_dec(precision.get("amount"))
    if amount_step and not is_multiple(request.amount, amount_step):
        raise InvalidOrder(
            f"Amount {text(request.amount)} {base} is not a multiple of the step {text(amount_step)} {base}"
        )
    amount_limits = limits.get("amount") or {}
    _range("Amount", request.amount, base, amount_limits.get("min"), amount_limits.get("max"))
    price_step = opt_dec(precision.get("price"))
    price_limits = limits.get("price") or {}
    for label, value in (("Price", request.price), ("Stop price", request.stop_price)):
        if value is None:
            continue
        if price_step and not is_multiple(value, price_step):
            raise InvalidOrder(
                f"{label} {text(value)} {quote} is not a multiple of the tick {text(price_step)} {quote}"
            )
        _range(label, value, quote, price_limits.get("min"), price_limits.get("max"))
    reference = request.price if request.price is not None else request.stop_price
    if reference is not None:
        check_notional(request, market, reference)
    return market


def check_notional(request: OrderRequest, market: dict[str, Any], price: Decimal) -> None:
    """Order value (amount × price) within the market's cost limits."""
    cost_limits = (market.get("limits") or {}).get("cost") or {}
    quote = market.get("quote", "")
    value = (request.amount * price).normalize()
    low, high = opt_dec(cost_limits.get("min")), opt_dec(cost_limits.get("max"))
    if low is not None and value < low:
        raise InvalidOrder(f"Order value {text(value)} {quote} is below the minimum {text(low)} {quote}")
    if high is not None and value > high:
        raise InvalidOrder(f"Order value {text(value)} {quote} is above the maximum {text(high)} {quote}")


def _kind(order_type: str) -> str:
    return order_type.replace("_", "-")


def _positive(label: str, value: Decimal, unit: str) -> None:
    if not value.is_finite():
        raise InvalidOrder(f"{label} must be a finite number")
    if value <= 0:
        raise InvalidOrder(f"{label} must be greater than 0 {unit}".rstrip())


def _range(label: str, value: Decimal, unit: str, low_raw: Any, high_raw: Any) -> None:
    low, high = opt_dec(low_raw), opt_dec(high_raw)
    if low is not None and value < low:
        raise InvalidOrder(f"{label} {text(value)} {unit} is below the minimum {text(low)} {unit}")
    if high is not None and value > high:
        raise InvalidOrder(f"{label} {text(value)} {unit} is above the maximum {text(high)} {unit}")
