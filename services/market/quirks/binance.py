"""Binance: market data needs spot markets only.

Without these options `load_markets()` also asks the margin (sapi), USDⓈ-M (fapi) and COIN-M (dapi) APIs and
the currencies endpoint (which needs keys): four slow requests where one (`/api/v3/exchangeInfo`) is enough.
"""

from typing import Any

OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}
