"""A synthetic market arranged around a strategy's first buy, for tests of paper strategies: it stands
still 30 s before the close of the candle that gives the buy, until the test starts it, then runs 10×
real time. So the signal comes within seconds of the switch-on, at a moment every process computes alike."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.backtest import make_candles, parse_strategy
from services.backtest.candles import Candles
from services.backtest.runner import signal_column
from services.market import SyntheticFeed

MINUTE = 60_000
_START_MS = 1_790_000_000_000 - 1_790_000_000_000 % MINUTE  # a minute boundary inside the synthetic market


@dataclass
class FirstSignal:
    """`first_ms`: the open time of the 1m BTC/USDT candle whose close signals the buy; `candles`: the hour
    around it, as the strategy saw it. `clock` is the market's; it moves once `start()` is called."""

    first_ms: int
    candles: Candles
    _started_at: float | None = field(default=None, init=False)

    def clock(self) -> float:
        begin = (self.first_ms + MINUTE - 30_000) / 1000
        return begin if self._started_at is None else begin + (time.monotonic() - self._started_at) * 10

    def start(self) -> None:
        self._started_at = time.monotonic()

    def feed(self) -> SyntheticFeed:
        return SyntheticFeed(clock=self.clock)

    def next_open(self) -> float:
        """The open of the candle after the signal's: where a signal fills."""
        return float(self.candles.open[int(np.searchsorted(self.candles.timestamp_ms, self.first_ms + MINUTE))])


def first_buy(strategy_doc: dict[str, Any]) -> FirstSignal:
    """Where the synthetic market gives `strategy_doc` (1m, BTC/USDT) its first buy after `_START_MS`."""
    probe = SyntheticFeed(clock=lambda: (_START_MS + 90 * MINUTE) / 1000)
    bars = probe.candles_at("BTC/USDT", "1m", since_ms=_START_MS - 60 * MINUTE, limit=150)[:-1]
    cols = np.array([(c.open, c.high, c.low, c.close, c.volume) for c in bars])
    candles = make_candles([c.timestamp_ms for c in bars], *cols.T)
    signal = signal_column(parse_strategy(strategy_doc), candles, timeframe="1m")
    stamps = candles.timestamp_ms
    first = next(int(stamps[i]) for i in range(len(bars)) if signal[i] > 0 and stamps[i] >= _START_MS)
    return FirstSignal(first, candles)
