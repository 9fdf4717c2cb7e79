"""`StreamingFeed`: what both feeds offer beyond `MarketFeed` — freshness and latest-value streams.

`ReplayFeed` and `CcxtFeed` both satisfy it, so the client can show per-symbol freshness and stream tickers,
book tops and forming candles whatever the mode. `TradeHistory` is an optional capability a feed declares by
offering it (a replay, the synthetic market): the client checks `isinstance(feed, TradeHistory)`, never probes.
`SteeredFeed` is another (`GatewayFeed`): one link to a server that the app steers on a phone. `PacedFeed`
is a third (replay, synthetic): streams that hand over trades on their own pace and can be hurried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


class ClockedMarket(Protocol):
    """A market computed from the clock the same way in every process (`ReplayFeed`, `SyntheticFeed`): what
    the loopback exchange serves, and what a paper broker can ask about any moment without streaming."""

    @property
    def mode(self) -> str: ...

    def market_table(self) -> dict[str, dict[str, Any]]:
        """Symbol → ccxt market structure, at once (no I/O)."""
        ...

    def price_at(self, symbol: str, timestamp_ms: int) -> float: ...

    def trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[Tick]: ...

    def numbered_trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, Tick]]: ...

    def candles_at(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]: ...

    def ticker_now(self, symbol: str) -> dict[str, Any]: ...
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


@dataclass(frozen=True, slots=True)
class FeedLink:
    """How a feed's link to its server is now: up or not, and how old the newest data of some symbols is."""

    connected: bool
    age_s: float | None  # None: no data for those symbols yet


@runtime_checkable
class SteeredFeed(Protocol):
    """A feed over one link to a server, which the app steers: only the symbols on screen stream every trade
    (the others their candle about once a second), and the link is dropped and resumed at once when the app
    comes back to the foreground or the network changes, rather than after a ping times out."""

    def set_visible(self, symbols: list[str] | None) -> None:
        """Only `symbols` at full rate; None: every symbol."""
        ...

    def reconnect(self) -> None: ...

    def link(self, symbols: list[str]) -> FeedLink: ...


@runtime_checkable
class PacedFeed(Protocol):
    """A feed whose tick streams hand over due trades on their own pace, every `FEED_BATCH_S` or so, and
    sooner when asked: the app asks just before a repaint, so the screen shows what is due at that moment
    while the feed wakes the process seldom (`services.market.pacing.HandOvers`)."""

    def hurry(self) -> asyncio.Future[Any] | None:
        """Hand over what is due now; the future is done once the streams' consumers have had it (None:
        nothing to wait for)."""
        ...
