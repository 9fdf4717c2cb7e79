"""The Strategies screen's state: the strategy being built, the backtest's progress and its results (already
thinned for a phone-sized chart), the trader's saved strategies (kept in step by the live state) and the
drift report of one running on paper. Written by `StrategiesController`, read by `StrategiesView`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_POINTS = 400  # a phone-wide chart shows no more; the HTML report keeps every point
_AVERAGE = re.compile(r"^(sma|ema)\((\d+)\)$")


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

    @property
    def name(self) -> str:
        exits = "".join(f", {label} {value:g}%" for label, value in (("TP", self.take_profit_pct),
                                                                      ("SL", self.stop_loss_pct)) if value is not None)
        return f"{self.indicator.upper()} {self.fast}/{self.slow} {self.timeframe}{exits} on {self.symbol}"

    @property
    def strategy_id(self) -> str:
        """The saved strategy's id: the same settings save over the same strategy."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:64]

    def document(self) -> dict[str, Any]:
        fast, slow = f"{self.indicator}({self.fast})", f"{self.indicator}({self.slow})"
        exits: dict[str, Any] = {"signal": True}
        if self.take_profit_pct is not None:
            exits["takeProfitPct"] = self.take_profit_pct
        if self.stop_loss_pct is not None:
            exits["stopLossPct"] = self.stop_loss_pct
        return {"name": self.name, "positions": "long", "buy": {"cross_above": [fast, slow]},
                "sell": {"cross_below": [fast, slow]}, "exit": exits, "sizing": {"type": "equityPct", "value": 100}}

    @staticmethod
    def from_saved(doc: dict[str, Any], days: int = 730) -> StrategyDraft | None:
        """The form's draft for a saved strategy, or None when it was not built with this form (an RSI rule
        saved through the API): such a strategy can still be switched on, only not edited here."""
        strategy = doc.get("strategy") or {}
        cross = (strategy.get("buy") or {}).get("cross_above")
        if not isinstance(cross, list) or len(cross) != 2:
            return None
        fast, slow = (_AVERAGE.match(str(c)) for c in cross)
        if fast is None or slow is None or fast[1] != slow[1]:
            return None
        exits = strategy.get("exit") or {}
        return StrategyDraft(symbol=doc.get("symbol", "BTC/USDT"), timeframe=strategy.get("timeframe") or "1h",
                             indicator=fast[1], fast=int(fast[2]), slow=int(slow[2]),
                             take_profit_pct=exits.get("takeProfitPct"), stop_loss_pct=exits.get("stopLossPct"),
                             days=days)


@dataclass(slots=True)
class BacktestSummary:
    stats: dict[str, Any]
    equity: list[tuple[int, float]]  # (timestamp_ms, value), thinned
    drawdown: list[tuple[int, float]]  # (timestamp_ms, percent below the peak), thinned
    trades: list[dict[str, Any]]  # RESULT.json trade rows, newest first
    candles: int


@dataclass(slots=True)
class DriftSummary:
    """A running strategy's live paper trades beside the backtest of the same period."""

    strategy_id: str
    summary: str  # one sentence (services.backtest.drift.DriftReport.summary)
    rows: list[dict[str, Any]]  # DriftReport.to_json()["trades"]
    live_trades: int
    backtest_trades: int


@dataclass(slots=True)
class BacktestLab:
    draft: StrategyDraft = field(default_factory=StrategyDraft)
    running: bool = False
    progress: float = 0.0  # 0..1
    stage: str = ""  # what the progress bar is doing, in words
    error: str | None = None
    result: BacktestSummary | None = None
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → the backend's document (live state)
    notice: str = ""  # the last save / switch / delete, in words
    drift: DriftSummary | None = None
