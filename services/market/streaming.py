"""`StreamingFeed`: what both feeds offer beyond `MarketFeed` — freshness and latest-value streams.

`ReplayFeed` and `CcxtFeed` both satisfy it, so the client can show per-symbol freshness and stream tickers,
book tops and forming candles whatever the mode. `TradeHistory` is an optional capability a feed declares by
offering it (a replay, the synthetic market): the client checks `isinstance(feed, TradeHistory)`, never probes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from services.market.freshness import FeedStatus
from services.market.quotes import BookTop
from services.market.types import Candle, MarketFeed, Tick


@runtime_checkable
class StreamingFeed(MarketFeed, Protocol):
    def status(self, symbol: str) -> FeedStatus:
        """ "live", "stale" (no data for `stale_after_s`) or "reconnecting"."""
        ...

    def last_tick_ms(self, symbol: str) -> int | None: ...

    def tickers(self, symbols: list[str]) -> AsyncIterator[dict[str, Any]]:
        """ccxt tickers as they change."""
        ...

    def book_tops(self, symbols: list[str]) -> AsyncIterator[BookTop]: ...

    def candle_updates(self, symbol: str, timeframe: str = "1m") -> AsyncIterator[Candle]:
        """The forming bar on every change (and the bar just closed when a new one opens)."""
        ...


@runtime_checkable
class TradeHistory(Protocol):
    """A feed that can hand back every trade of a past range, so the signal engine warms up on trades
    rather than bar closes; `history_span_ms` is how much distinct history it holds (a recording's
    length; 0: unbounded, e.g. a market computed from the time)."""

    @property
    def history_span_ms(self) -> int: ...

    def trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[Tick]:
        """Trades with `since_ms <= timestamp_ms < until_ms` (wall clock), oldest first."""
        ...
