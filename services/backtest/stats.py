"""Performance figures of a backtest from its equity curve and trades. Units are in the names' docs:
percent where the name says a return, rate or exposure (12.5 = 12.5%), quote currency for money, ms for time.

Sharpe and Sortino are annualised from daily returns (the equity at each UTC day's last candle; per-candle
returns when candles are a day or longer), √365 for markets that trade every day and √252 when the data has no
weekend candles; risk-free rate 0. Sortino's downside deviation is √mean(min(r, 0)²). Calmar = CAGR / |max
drawdown|. CAGR compounds over the span from the first candle's time to the last candle's end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from services.backtest.candles import FloatArray, IntArray

YEAR_MS = 365.25 * 86_400_000
DAY_MS = 86_400_000


def drawdown(equity: FloatArray) -> FloatArray:
    """Fraction below the running peak at each point (0 at a new high, negative below)."""
    peak = np.maximum.accumulate(equity)
    return np.asarray(equity / peak - 1.0)


def max_drawdown_duration_ms(equity: FloatArray, ts: IntArray, peak: FloatArray | None = None) -> int:
    """Longest time from a peak to the moment equity first gets back to it (or to the end)."""
    if equity.shape[0] < 2:
        return 0
    if peak is None:
        peak = np.maximum.accumulate(equity)
    peaks = ts[np.flatnonzero(equity >= peak)]  # candle 0 is always one
    return int(max(int(np.diff(peaks).max(initial=0)), int(ts[-1] - peaks[-1])))


def _ratio(x: float) -> float | None:
    return x if math.isfinite(x) else None


def compute_stats(equity: FloatArray, ts: IntArray, trades: Mapping[str, npt.NDArray[Any]], *, cash: float,
                  timeframe_ms: int, exposure_candles: int, fees: float, buy_and_hold_pct: float) -> dict[str, Any]:
    """Every figure of RESULT.json's `stats` (camelCase); None where a figure is undefined (no trades...).
    `trades` holds columns `pnl`, `entry_value`, `entry_ms`, `exit_ms` (`Run.trade_columns()`)."""
    n = equity.shape[0]
    final = float(equity[-1]) if n else cash
    total = final / cash - 1.0
    span_ms = float(ts[-1] - ts[0] + timeframe_ms) if n else 0.0
    years = span_ms / YEAR_MS
    cagr = (final / cash) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else math.nan
    peak = np.maximum.accumulate(equity) if n else np.zeros(0)
    max_dd = float((equity / peak).min() - 1.0) if n else 0.0
    daily, days = _period_returns(equity, ts, timeframe_ms)
    weekdays_only = n > 0 and timeframe_ms < 7 * DAY_MS and not bool(
        np.any(((days + 3) % 7) >= 5))  # 1970-01-01 was a Thursday: +3 makes Monday 0
    per_year = 252.0 if weekdays_only else 365.0
    if timeframe_ms > DAY_MS:
        per_year = YEAR_MS / timeframe_ms
    sharpe = sortino = math.nan
    if daily.shape[0] > 1:
        sd = float(daily.std(ddof=1))
        mean = float(daily.mean())
        sharpe = mean / sd * math.sqrt(per_year) if sd > 0 else math.nan
        downside = float(np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2)))
        sortino = mean / downside * math.sqrt(per_year) if downside > 0 else math.nan
    calmar = cagr / abs(max_dd) if max_dd < 0 and math.isfinite(cagr) else math.nan
    pnl = trades["pnl"]
    count = int(pnl.shape[0])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    returns = pnl / trades["entry_value"] * 100.0 if count else np.zeros(0)
    durations = trades["exit_ms"] - trades["entry_ms"]
    return {
        "startEquity": cash,
        "finalEquity": final,
        "totalReturn": total * 100.0,
        "buyAndHoldReturn": buy_and_hold_pct,
        "cagr": _ratio(cagr * 100.0),
        "maxDrawdown": max_dd * 100.0,
        "maxDrawdownDuration": max_drawdown_duration_ms(equity, ts, peak) if n else 0,
        "sharpe": _ratio(sharpe),
        "sortino": _ratio(sortino),
        "calmar": _ratio(calmar),
        "trades": count,
        "winRate": float(wins.shape[0] / count * 100.0) if count else None,
        "profitFactor": _ratio(gross_win / gross_loss) if gross_loss > 0 else None,
        "expectancy": float(pnl.mean()) if count else None,
        "expectancyPct": float(returns.mean()) if count else None,
        "bestTrade": float(returns.max()) if count else None,
        "worstTrade": float(returns.min()) if count else None,
        "avgTradeDuration": int(durations.mean()) if count else None,
        "exposure": exposure_candles / n * 100.0 if n else 0.0,
        "fees": fees,
        "candles": n,
        "start": int(ts[0]) if n else None,
        "end": int(ts[-1]) if n else None,
    }


def _period_returns(equity: FloatArray, ts: IntArray, timeframe_ms: int) -> tuple[FloatArray, IntArray]:
    """Simple returns between the equity at each UTC day's last candle (per candle when candles ≥ 1 day),
    and the day numbers (since the epoch) those points fall on."""
    day = ts // DAY_MS
    if equity.shape[0] < 2:
        return np.zeros(0), day
    if timeframe_ms >= DAY_MS:
        values, days = equity, day
    else:
        last = np.concatenate((np.flatnonzero(day[1:] != day[:-1]), [day.shape[0] - 1]))
        values, days = equity[last], day[last]
    return np.asarray(values[1:] / values[:-1] - 1.0), days
