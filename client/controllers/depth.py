"""`DepthController`: the selected symbol's 24 h ticker, order book and recent trades, read from the market
feed about once a second into `AppState` for the order-book and trades panels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from client.context import SessionContext
from services.market import MarketDataError, MarketFeed

BOOK_LEVELS = 10
TRADES_KEPT = 30


@runtime_checkable
class MarketDepth(Protocol):
    """A feed that can show its book and tape (the synthetic market does; a replay has no book)."""

    def order_book(self, symbol: str, limit: int = 10) -> dict[str, Any]: ...

    def recent_trades(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]: ...


class DepthController:
    def __init__(self, ctx: SessionContext, feed: Callable[[], MarketFeed | None]) -> None:
        self._ctx = ctx
        self._feed = feed  # the market controller's current feed (it changes with the market source)

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            with contextlib.suppress(MarketDataError):
                await self.refresh()
            await asyncio.sleep(interval_s)

    async def refresh(self) -> None:
        state, feed = self._ctx.state, self._feed()
        symbol = state.selected
        if feed is None or symbol not in state.markets:  # not joined to the market yet
            return
        ticker = await feed.ticker(symbol)
        book = trades = None
        if isinstance(feed, MarketDepth):
            book = feed.order_book(symbol, limit=BOOK_LEVELS)
            trades = list(reversed(feed.recent_trades(symbol, limit=TRADES_KEPT)))  # newest first
        state.set_market_depth(symbol, book=book, trades=trades, ticker=ticker)
