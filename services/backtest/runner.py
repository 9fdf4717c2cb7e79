"""One backtest, start to finish: candles + strategy → signals (vectorised, the live rule language) →
fills (engine) → equity curve, drawdown and figures. `BacktestResult.to_json()` is RESULT.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from services.backtest.candles import Candles, FloatArray, iso, timeframe_ms, timeframe_name
from services.backtest.conditions import fires
from services.backtest.engine import MarketSteps, Run, Trade, net_signal, run
from services.backtest.operands import operand_values
from services.backtest.stats import compute_stats, drawdown
from services.backtest.strategy import Strategy, StrategyError
from services.ledger import dec
from services.market.types import TIMEFRAME_MS
from services.signals.candles import resample

DEFAULT_CASH = Decimal(10_000)


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    strategy: Strategy
    candles: Candles  # the candles the strategy ran on (resampled to its timeframe when it names one)
    run: Run
    equity: FloatArray  # account value at each candle's close, quote currency
    stats: dict[str, Any]

    @property
    def trades(self) -> tuple[Trade, ...]:
        return self.run.trades

    @property
    def drawdown(self) -> FloatArray:
        return drawdown(self.equity)

    def to_json(self) -> dict[str, Any]:
        ts = self.candles.timestamp_ms.tolist()
        return {
            "strategy": self.strategy.name,
            "trades": [trade_json(t) for t in self.trades],
            "stats": self.stats,
            "equity": [[t, round(v, 8)] for t, v in zip(ts, self.equity.tolist(), strict=True)],
        }


def trade_json(t: Trade) -> dict[str, Any]:
    return {
        "entryTime": iso(t.entry_ms),
        "exitTime": iso(t.exit_ms),
        "entryTimestamp": t.entry_ms,
        "exitTimestamp": t.exit_ms,
        "side": t.side,
        "amount": float(t.amount),
        "entryPrice": float(t.entry_price),
        "exitPrice": float(t.exit_price),
        "pnl": float(t.pnl),
        "returnPct": t.return_pct,
        "fees": float(t.entry_fee + t.exit_fee),
        "exitReason": t.exit_reason,
    }


def signal_column(strategy: Strategy, candles: Candles, *, timeframe: str | None = None,
                  column: Callable[[str], FloatArray] | None = None) -> np.ndarray:
    """Net signal at each close (+1 buy, -1 sell, 0 none), operands computed once each. `timeframe`: the
    candles' own (found from their spacing when None)."""
    n = len(candles)
    cache: dict[str, FloatArray] = {}

    def values(text: str) -> FloatArray:
        if text not in cache:
            cache[text] = column(text) if column is not None else operand_values(text, candles, timeframe)
        return cache[text]

    buy = fires(strategy.buy, values, n) if strategy.buy is not None else None
    sell = fires(strategy.sell, values, n) if strategy.sell is not None else None
    return net_signal(buy, sell, n)


def backtest(strategy: Strategy, candles: Candles, *, cash: Decimal = DEFAULT_CASH, fee: float | None = None,
             slippage: float | None = None, symbol: str = "ASSET/USDT",
             market: MarketSteps | None = None) -> BacktestResult:
    """Run `strategy` over `candles`. `fee`/`slippage` (fractions) override the strategy's own; `market`
    gives the price tick and amount step fills are rounded to (none by default)."""
    if len(candles) == 0:
        raise StrategyError("there are no candles to test on")
    if fee is not None or slippage is not None:
        strategy = strategy.with_changes(fee=strategy.fee if fee is None else fee,
                                         slippage=strategy.slippage if slippage is None else slippage)
    own = timeframe_name(candles)
    if strategy.timeframe is not None and strategy.timeframe != own:
        if own is None or TIMEFRAME_MS[strategy.timeframe] < TIMEFRAME_MS[own]:
            raise StrategyError(f"the strategy trades {strategy.timeframe} candles, which cannot be built from "
                                f"these {own or 'irregular'} candles")
        candles = resample(candles, strategy.timeframe)
        own = strategy.timeframe
    signal = signal_column(strategy, candles, timeframe=own)
    result = run(strategy, candles, signal, cash=dec(cash), symbol=symbol, market=market)
    return assemble(strategy, candles, result)


def assemble(strategy: Strategy, candles: Candles, result: Run) -> BacktestResult:
    """Equity curve (vectorised over the fills) and figures."""
    n = len(candles)
    cash0 = float(result.cash)
    # The account after the last fill at or before each candle: index 0 is "no fill yet". O(n).
    state = np.cumsum(np.bincount(result.fill_index, minlength=n)[:n])
    cash = np.concatenate(([cash0], result.cash_after))[state]
    amount = np.concatenate(([0.0], result.amount_after))[state]
    equity = np.asarray(cash + amount * candles.close, dtype=np.float64)
    columns = result.trade_columns()
    # Candles with a position open at some moment: +1 at each entry candle, -1 after each exit candle.
    marks = (np.bincount(columns["entry_index"], minlength=n + 1)
             - np.bincount(columns["exit_index"] + 1, minlength=n + 1))
    exposed = int(np.count_nonzero(np.cumsum(marks[:n])))
    hold = float(candles.close[-1] / candles.open[0] - 1.0) * 100.0
    stats = compute_stats(equity, candles.timestamp_ms, columns, cash=cash0, timeframe_ms=timeframe_ms(candles),
                          exposure_candles=exposed, fees=float(result.fees), buy_and_hold_pct=hold)
    return BacktestResult(strategy, candles, result, equity, stats)
