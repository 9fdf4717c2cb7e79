"""Binance: spot markets only, and the aggregate-trade stream so streamed and fetched trades share ids.

- Without the market options `load_markets()` also asks the margin (sapi), USDⓈ-M (fapi) and COIN-M (dapi)
  APIs and the currencies endpoint (which needs keys): four slow requests where `/api/v3/exchangeInfo` is enough.
- ccxt fetches Binance trades from `aggTrades` (aggregate ids) but streams `@trade` (trade ids) by default; a
  gap fill could then not tell a streamed trade from a fetched one. Streaming `@aggTrade` makes both the same.
"""

from typing import Any

OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}
WATCH_TRADES_PARAMS: dict[str, Any] = {"name": "aggTrade"}
