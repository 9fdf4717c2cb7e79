"""Market data: the `MarketFeed` protocol and its sources (the synthetic market, ccxt exchanges, recorded replays).

This package is the only client-side code that imports ccxt.
"""

from services.market.freshness import FeedStatus
from services.market.quotes import BookTop
from services.market.replay import ReplayFeed, default_recording
from services.market.sources import exchange_ids, open_feed
from services.market.streaming import FeedLink, PacedFeed, SteeredFeed, StreamingFeed, TradeHistory
from services.market.synthetic_feed import SyntheticFeed
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
    "FeedLink",
    "FeedUnavailable",
    "MarketDataError",
    "MarketFeed",
    "Tick",
    "UnknownSymbol",
    # added by the market-data owner: the embedded default feed and per-symbol freshness
    "BookTop",
    "FeedStatus",
    "ReplayFeed",
    "PacedFeed",
    "SteeredFeed",
    "StreamingFeed",
    "SyntheticFeed",
    "TradeHistory",
    "default_recording",
    "exchange_ids",
    "open_feed",
]
