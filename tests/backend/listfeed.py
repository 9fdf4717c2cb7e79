"""`ListFeed`: a real `MarketFeed` over trades the test pushes, one at a time.

`await feed.trade(...)` returns once every consumer has asked for the trade after it, i.e. once the paper
broker has finished matching it: tests need no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from services.market.markets import spot_market
from services.market.types import Candle, Tick, UnknownSymbol


def sample_markets() -> dict[str, dict[str, Any]]:
    """BTC/USDT: price tick 0.01, amount step 0.0001 (min 0.0001, max 100), min notional 5 USDT."""
    return {
        "BTC/USDT": spot_market(
            "BTC/USDT", price_tick=0.01, amount_step=0.0001, min_amount=0.0001, max_amount=100, min_cost=5
        ),
        "ETH/USDT": spot_market(
            "ETH/USDT", price_tick=0.01, amount_step=0.001, min_amount=0.001, max_amount=1000, min_cost=5
        ),
    }


class ListFeed:
    """Markets from `sample_markets()`; prices move only when the test says so."""

    def __init__(self, prices: dict[str, float], *, markets: dict[str, dict[str, Any]] | None = None) -> None:
        self._markets = markets or sample_markets()
        self._last = dict(prices)
        self._now_ms = 1_700_000_000_000
        self._consumers: list[asyncio.Queue[Tick]] = []
        self.consumer_ready = asyncio.Event()
        self._consumer_added = asyncio.Event()
        self._following: dict[int, set[str]] = {}  # consumer → the symbols it asked for

    @property
    def mode(self) -> str:
        return "Test · list"

    async def markets(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._markets.items()}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        if symbol not in self._last:
            raise UnknownSymbol(symbol)
        last = self._last[symbol]
        return {"symbol": symbol, "timestamp": self._now_ms, "last": last, "close": last}

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        return []

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        queue: asyncio.Queue[Tick] = asyncio.Queue()
        self._consumers.append(queue)
        self._following[id(queue)] = set(symbols)
        self.consumer_ready.set()
        self._consumer_added.set()
        return self._drain(queue, set(symbols))

    async def _drain(self, queue: asyncio.Queue[Tick], symbols: set[str]) -> AsyncIterator[Tick]:
        try:
            while True:
                tick = await queue.get()
                try:
                    if tick.symbol in symbols:
                        yield tick
                finally:
                    queue.task_done()  # runs when the consumer asks for the next trade
        finally:
            self._consumers.remove(queue)
            self._following.pop(id(queue), None)
            self._consumer_added.set()  # (the event says "consumers changed")

    async def until_consumers(self, count: int) -> None:
        """Wait until `count` consumers listen (the paper broker and the alert watcher each are one)."""
        async with asyncio.timeout(5):
            while len(self._consumers) < count:
                self._consumer_added.clear()
                await self._consumer_added.wait()

    async def until_followed(self, symbol: str, count: int = 2) -> None:
        """Wait until exactly `count` consumers follow `symbol` (the paper broker follows every symbol;
        the alert watcher, the ones with active alerts, subscribing again when that set changes)."""
        async with asyncio.timeout(5):
            while sum(symbol in s for s in self._following.values()) != count:
                self._consumer_added.clear()
                await self._consumer_added.wait()

    def set_price(self, symbol: str, price: float) -> None:
        """Move the last price without a trade (what a market order fills at)."""
        self._last[symbol] = price

    async def trade(self, symbol: str, price: float, amount: float = 1000.0, *, at_ms: int | None = None) -> None:
        """Publish one trade (1 ms after the last, or at `at_ms`) and wait until every consumer has
        processed it."""
        await asyncio.wait_for(self.consumer_ready.wait(), 5)
        self._now_ms = self._now_ms + 1 if at_ms is None else at_ms
        self._last[symbol] = price
        tick = Tick(symbol=symbol, timestamp_ms=self._now_ms, price=price, amount=amount)
        for queue in list(self._consumers):
            queue.put_nowait(tick)
        await asyncio.wait_for(asyncio.gather(*(q.join() for q in list(self._consumers))), 5)

    async def aclose(self) -> None:
        return None
