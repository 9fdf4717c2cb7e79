"""Per-exchange ccxt settings, one small module per exchange that needs any (Freqtrade's layout).

`ccxt_options(exchange_id)` is merged into the ccxt constructor's `options`; exchanges without a module
need nothing special.
"""

from __future__ import annotations

from typing import Any

from services.market.quirks import binance

_OPTIONS: dict[str, dict[str, Any]] = {"binance": binance.OPTIONS}


def ccxt_options(exchange_id: str) -> dict[str, Any]:
    return dict(_OPTIONS.get(exchange_id, {}))
