"""Per-exchange ccxt settings, one small module per exchange that needs any (Freqtrade's layout).

`ccxt_options(exchange_id)` is merged into the ccxt constructor's `options`; `watch_trades_params` go with
every `watch_trades` call. Exchanges without a module need nothing special.
"""

from __future__ import annotations

from typing import Any

from services.market.quirks import binance

_OPTIONS: dict[str, dict[str, Any]] = {"binance": binance.OPTIONS}


_WATCH_TRADES_PARAMS: dict[str, dict[str, Any]] = {"binance": binance.WATCH_TRADES_PARAMS}


def ccxt_options(exchange_id: str) -> dict[str, Any]:
    return dict(_OPTIONS.get(exchange_id, {}))


def watch_trades_params(exchange_id: str) -> dict[str, Any]:
    return dict(_WATCH_TRADES_PARAMS.get(exchange_id, {}))
