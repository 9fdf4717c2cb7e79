"""`BurstFeed`: a real `MarketFeed` that emits trades of one symbol as fast as each consumer takes them,
once the test releases them: the load a slow client must not pass on to the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from services.market.markets import spot_market
from services.market.types import Candle, Tick, UnknownSymbol


class BurstFeed:
    def __init__(self, symbol: str) -> None:
        self._symbol = symbol
        self._released = 0
        self._more = asyncio.Event()
        self._counts: list[int] = []

    @property
    def mode(self) -> str:
        return "Test · burst"

    @property
    def emitted(self) -> int:
        """Trades every consumer has taken (the least of them)."""
        return min(self._counts, default=0)

    def release(self, count: int) -> None:
        self._released += count
        self._more.set()

    async def markets(self) -> dict[str, dict[str, Any]]:
        return {self._symbol: spot_market(self._symbol, price_tick=0.01, amount_step=0.0001, min_amount=0.0001,
                                          max_amount=100, min_cost=5)}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        if symbol != self._symbol:
            raise UnknownSymbol(symbol)
        return {"symbol": symbol, "timestamp": 0, "last": 1.0, "close": 1.0}

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        return []

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        self._counts.append(0)
        return self._stream(len(self._counts) - 1, self._symbol in symbols)

    async def _stream(self, slot: int, wanted: bool) -> AsyncIterator[Tick]:
        n = 0
        while True:
            while n >= self._released:
                self._more.clear()
                await self._more.wait()
            if wanted:
                yield Tick(self._symbol, 1_700_000_000_000 + n, float(n), 1.0)
            n += 1
            self._counts[slot] = n
            if n % 200 == 0:
                await asyncio.sleep(0)  # let the socket writers run between bursts

    async def aclose(self) -> None:
        return None
