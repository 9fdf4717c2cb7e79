"""The Strategies screen's state: the strategy being built, the backtest's progress, and its results
(already thinned for a phone-sized chart). Written by `StrategiesController`, read by `StrategiesView`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_POINTS = 400  # a phone-wide chart shows no more; the HTML report keeps every point


@dataclass(frozen=True, slots=True)
class StrategyDraft:
    """What the trader picks: two moving averages crossing, optional take-profit / stop-loss, a market and
    a range. `document()` is the strategy JSON (services/backtest/README.md)."""

    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    indicator: str = "sma"  # "sma" | "ema"
    fast: int = 50
    slow: int = 200
    take_profit_pct: float | None = None
    stop_loss_pct: float | None = None
    days: int = 730

    def document(self) -> dict[str, Any]:
        fast, slow = f"{self.indicator}({self.fast})", f"{self.indicator}({self.slow})"
        exits: dict[str, Any] = {"signal": True}
        if self.take_profit_pct is not None:
            exits["takeProfitPct"] = self.take_profit_pct
        if self.stop_loss_pct is not None:
            exits["stopLossPct"] = self.stop_loss_pct
        return {"name": f"{self.indicator.upper()} {self.fast}/{self.slow} {self.timeframe} on {self.symbol}",
                "positions": "long", "buy": {"cross_above": [fast, slow]}, "sell": {"cross_below": [fast, slow]},
                "exit": exits, "sizing": {"type": "equityPct", "value": 100}}


@dataclass(slots=True)
class BacktestSummary:
    stats: dict[str, Any]
    equity: list[tuple[int, float]]  # (timestamp_ms, value), thinned
    drawdown: list[tuple[int, float]]  # (timestamp_ms, percent below the peak), thinned
    trades: list[dict[str, Any]]  # RESULT.json trade rows, newest first
    candles: int


@dataclass(slots=True)
class BacktestLab:
    draft: StrategyDraft = field(default_factory=StrategyDraft)
    running: bool = False
    progress: float = 0.0  # 0..1
    stage: str = ""  # what the progress bar is doing, in words
    error: str | None = None
    result: BacktestSummary | None = None
