"""Market data: the `MarketFeed` protocol and its sources (ccxt exchanges, recorded replays).

This package is the only client-side code that imports ccxt.
"""

from services.market.types import (
    TIMEFRAME_MS,
    Candle,
    FeedUnavailable,
    MarketDataError,
    MarketFeed,
    Tick,
    UnknownSymbol,
)

__all__ = [
    "TIMEFRAME_MS",
    "Candle",
    "FeedUnavailable",
    "MarketDataError",
    "MarketFeed",
    "Tick",
    "UnknownSymbol",
]
