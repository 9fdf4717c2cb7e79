"""ccxt market structures for spot symbols in "TICK_SIZE" precision mode (binance's): precision is a step size.

Shared by the simulator (which has no exchange to ask) and the loopback exchange (which serves them back as
Binance `exchangeInfo` filters, so ccxt parses the same numbers).
"""

from __future__ import annotations

import math
from typing import Any


def decimals(step: float) -> int:
    """Digits after the point of a step size: 0.001 → 3, 1 → 0."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def round_to_step(value: float, step: float) -> float:
    """`value` rounded to the nearest multiple of `step`, free of binary noise (0.1 + 0.2 → 0.3)."""
    return round(round(value / step) * step, decimals(step))


def spot_market(
    symbol: str,
    *,
    price_tick: float,
    amount_step: float,
    min_amount: float,
    max_amount: float,
    min_cost: float = 5.0,
    taker: float = 0.001,
    maker: float = 0.001,
) -> dict[str, Any]:
    base, quote = symbol.split("/")
    market_id = base + quote
    return {
        "id": market_id,
        "lowercaseId": market_id.lower(),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "settle": None,
        "baseId": base,
        "quoteId": quote,
        "settleId": None,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "index": None,
        "active": True,
        "contract": False,
        "linear": None,
        "inverse": None,
        "subType": None,
        "taker": taker,
        "maker": maker,
        "contractSize": None,
        "expiry": None,
        "expiryDatetime": None,
        "strike": None,
        "optionType": None,
        "precision": {"amount": amount_step, "price": price_tick, "cost": None, "base": None, "quote": None},
        "limits": {
            "leverage": {"min": None, "max": None},
            "amount": {"min": min_amount, "max": max_amount},
            "price": {"min": price_tick, "max": 1_000_000.0},
            "cost": {"min": min_cost, "max": 9_000_000.0},
            "market": {"min": 0.0, "max": max_amount},
        },
        "marginModes": {"cross": None, "isolated": None},
        "created": None,
        "info": {},
    }
