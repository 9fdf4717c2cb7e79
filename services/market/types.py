"""Market-data domain objects shared by every part (client, signal engine, backend brokers).

Names follow ccxt's unified structures: a trade has symbol, timestamp (ms), price, amount, side.
Prices are floats on the hot path (ticks, candles, indicators); money that is summed or compared
for equality (orders, fills, balances) is Decimal in the backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Tick:
    """One public trade (ccxt `trade`): the unit the signal engine and the paper broker consume."""

    symbol: str
    timestamp_ms: int
    price: float
    amount: float
    side: str | None = None  # taker side, "buy" | "sell", when the source knows it


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar (ccxt `ohlcv` row), `timestamp_ms` is the bar's open time."""

    timestamp_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


class MarketDataError(Exception):
    """Base of every error `services.market` raises; carries a message a trader can read."""


class UnknownSymbol(MarketDataError):
    pass


class FeedUnavailable(MarketDataError):
    """The source cannot be reached (exchange down, socket dropped past its retries, file missing)."""


@runtime_checkable
class MarketFeed(Protocol):
    """A source of market data: a live exchange through ccxt, or a replayed recording.

    Implementations are async context managers; `aclose` releases sockets, files and tasks.
    """

    @property
    def mode(self) -> str:
        """Short label for the mode badge, e.g. "Replay · simulated" or "Live · binance"."""
        ...

    async def markets(self) -> dict[str, dict[str, Any]]:
        """Tradable symbols → ccxt market structure (id, symbol, base, quote, precision, limits, ...)."""
        ...

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        """History of closed and current bars, oldest first."""
        ...

    async def ticker(self, symbol: str) -> dict[str, Any]:
        """ccxt ticker structure (symbol, timestamp, last, bid, ask, percentage, baseVolume, ...)."""
        ...

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Stream of trades for `symbols`, in time order per symbol, until cancelled."""
        ...

    async def aclose(self) -> None: ...
