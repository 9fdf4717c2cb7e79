"""The local analyst: a deterministic read of trend, volatility and momentum from candles, offline.

Same candles and signals in, same answer out (no clock, no randomness), with the reasoning spelled
out so a trader can check every step. Each pass over the window is O(n) in the number of bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend_stub.insights.types import (
    Analysis,
    Indicators,
    MarketContext,
    NotEnoughData,
    ProviderName,
    Sentiment,
    SignalEvent,
    Trend,
    VolatilityLevel,
)
from services.market.types import TIMEFRAME_MS, Candle

MIN_BARS = 10
EMA_FAST = 9
EMA_SLOW = 21
RSI_PERIOD = 14
RECENT_BARS = 20  # the "recent" regime compared with the whole window, and the breakout lookback
CROSS_LOOKBACK = 5  # an EMA cross older than this many bars is no longer news
MAX_CALLER_SIGNALS = 10
_YEAR_MS = 365 * 86_400_000


def ema(values: Sequence[float], period: int) -> list[float]:
    """Exponential moving average seeded with the first value (alpha = 2 / (period + 1))."""
    alpha = 2.0 / (period + 1)
    out = [values[0]]
    for value in values[1:]:
        out.append(out[-1] + alpha * (value - out[-1]))
    return out


def linear_fit(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of `values` against their index, and the fit's R² (0 for a flat series)."""
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = math.fsum(values) / n
    sxx = math.fsum((i - mean_x) ** 2 for i in range(n))
    sxy = math.fsum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    syy = math.fsum((y - mean_y) ** 2 for y in values)
    slope = sxy / sxx
    r_squared = 0.0 if syy == 0 else min(1.0, (sxy * sxy) / (sxx * syy))
    return slope, r_squared


def rsi(closes: Sequence[float], period: int = RSI_PERIOD) -> float | None:
    """Wilder's RSI over the whole series; None with fewer than `period + 1` closes."""
    if len(closes) <= period:
        return None
    changes = [b - a for a, b in zip(closes, closes[1:], strict=False)]
    gain = math.fsum(max(c, 0.0) for c in changes[:period]) / period
    loss = math.fsum(max(-c, 0.0) for c in changes[:period]) / period
    for change in changes[period:]:
        gain = (gain * (period - 1) + max(change, 0.0)) / period
        loss = (loss * (period - 1) + max(-change, 0.0)) / period
    if loss == 0:
        return 100.0 if gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def realised_vol_pct(closes: Sequence[float]) -> float:
    """Sample standard deviation of log returns, in percent per bar."""
    returns = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False)]
    if len(returns) < 2:
        return 0.0
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return math.sqrt(variance) * 100.0


def measure(candles: Sequence[Candle], timeframe: str) -> Indicators:
    """The numbers every provider's answer rests on. Raises `NotEnoughData` on short or broken input."""
    if len(candles) < MIN_BARS:
        raise NotEnoughData(f"need at least {MIN_BARS} candles to analyse, got {len(candles)}")
    closes = [c.close for c in candles]
    if not all(math.isfinite(c) and c > 0 for c in closes):
        raise NotEnoughData("the candles hold non-positive or non-finite prices")
    slope, r_squared = linear_fit(closes)
    mean_close = math.fsum(closes) / len(closes)
    per_bar_vol = realised_vol_pct(closes)
    bars_per_year = _YEAR_MS / TIMEFRAME_MS.get(timeframe, TIMEFRAME_MS["1m"])
    return Indicators(
        last_close=closes[-1],
        change_pct=_round((closes[-1] / closes[0] - 1.0) * 100.0),
        ema_fast=_round(ema(closes, EMA_FAST)[-1]),
        ema_slow=_round(ema(closes, EMA_SLOW)[-1]),
        slope_pct_per_bar=_round(slope / mean_close * 100.0),
        r_squared=round(r_squared, 4),
        rsi=None if (value := rsi(closes)) is None else round(value, 2),
        realised_vol_pct=_round(per_bar_vol),
        recent_vol_pct=_round(realised_vol_pct(closes[-(RECENT_BARS + 1) :])),
        annualised_vol_pct=round(per_bar_vol * math.sqrt(bars_per_year), 2),
        bars=len(closes),
    )


def classify_trend(ind: Indicators) -> Trend:
    """Up or down only when the line through the closes is more than noise and the EMAs agree."""
    straight = ind.r_squared >= 0.25
    if straight and ind.slope_pct_per_bar > 0 and ind.ema_fast > ind.ema_slow:
        return "up"
    if straight and ind.slope_pct_per_bar < 0 and ind.ema_fast < ind.ema_slow:
        return "down"
    return "sideways"


def classify_volatility(ind: Indicators) -> VolatilityLevel:
    """The recent regime against the whole window: crypto volatility is only high or low relative to itself."""
    if ind.realised_vol_pct == 0:
        return "low"
    ratio = ind.recent_vol_pct / ind.realised_vol_pct
    if ratio >= 1.5:
        return "high"
    if ratio <= 0.6:
        return "low"
    return "normal"


def detect_signals(candles: Sequence[Candle], ind: Indicators) -> list[SignalEvent]:
    """Signals the candles themselves show on their last bars: EMA crosses, RSI extremes, breakouts,
    volume spikes. Each carries the open time of the bar it fired on."""
    closes = [c.close for c in candles]
    last = candles[-1]
    found: list[SignalEvent] = []
    fast, slow = ema(closes, EMA_FAST), ema(closes, EMA_SLOW)
    # The most recent cross only: scanning backwards from the last bar.
    for i in range(len(closes) - 1, max(0, len(closes) - 1 - CROSS_LOOKBACK), -1):
        before, after = fast[i - 1] - slow[i - 1], fast[i] - slow[i]
        if before <= 0 < after:
            found.append(
                SignalEvent(
                    "ema_cross_up",
                    f"EMA{EMA_FAST} crossed above EMA{EMA_SLOW}",
                    candles[i].timestamp_ms,
                    "buy",
                )
            )
            break
        if before >= 0 > after:
            found.append(
                SignalEvent(
                    "ema_cross_down",
                    f"EMA{EMA_FAST} crossed below EMA{EMA_SLOW}",
                    candles[i].timestamp_ms,
                    "sell",
                )
            )
            break
    if ind.rsi is not None and ind.rsi >= 70:
        found.append(
            SignalEvent(
                "rsi_overbought", f"RSI({RSI_PERIOD}) at {ind.rsi:.1f} ≥ 70", last.timestamp_ms, "sell"
            )
        )
    elif ind.rsi is not None and ind.rsi <= 30:
        found.append(
            SignalEvent("rsi_oversold", f"RSI({RSI_PERIOD}) at {ind.rsi:.1f} ≤ 30", last.timestamp_ms, "buy")
        )
    prior = candles[-(RECENT_BARS + 1) : -1]
    if prior:
        high, low = max(c.high for c in prior), min(c.low for c in prior)
        if last.close > high:
            found.append(
                SignalEvent(
                    "breakout_up",
                    f"close {_price(last.close)} above the {len(prior)}-bar high {_price(high)}",
                    last.timestamp_ms,
                    "buy",
                )
            )
        elif last.close < low:
            found.append(
                SignalEvent(
                    "breakdown",
                    f"close {_price(last.close)} below the {len(prior)}-bar low {_price(low)}",
                    last.timestamp_ms,
                    "sell",
                )
            )
        volumes = sorted(c.volume for c in prior)
        median = volumes[len(volumes) // 2]
        if median > 0 and last.volume >= 3 * median:
            found.append(
                SignalEvent(
                    "volume_spike",
                    f"volume {last.volume / median:.1f}× the {len(prior)}-bar median",
                    last.timestamp_ms,
                )
            )
    return found


def score_sentiment(trend: Trend, ind: Indicators, signals: Sequence[SignalEvent]) -> Sentiment:
    """Trend counts double; momentum (RSI, the window's change) adds or takes one, and so does the
    balance of the recent signals' directions (buy vs sell, the caller's and the analyst's alike)."""
    score = {"up": 2, "down": -2, "sideways": 0}[trend]
    score += 1 if ind.change_pct > 0 else -1 if ind.change_pct < 0 else 0
    if ind.rsi is not None:
        score += 1 if ind.rsi > 60 else -1 if ind.rsi < 40 else 0
    balance = sum(1 if s.direction == "buy" else -1 if s.direction == "sell" else 0 for s in signals)
    score += (balance > 0) - (balance < 0)
    # Three points: a trend with one confirmation, or a range with all three pointing the same way.
    if score >= 3:
        return "bullish"
    if score <= -3:
        return "bearish"
    return "neutral"


class LocalAnalyst:
    """The default provider: no network, no model, the same answer for the same context."""

    @property
    def name(self) -> ProviderName:
        return "local"

    async def analyse(self, context: MarketContext) -> Analysis:
        return self.read(context)

    def read(self, context: MarketContext) -> Analysis:
        """The synchronous core of `analyse`; remote providers call it for the facts they are given."""
        ind = measure(context.candles, context.timeframe)
        trend = classify_trend(ind)
        volatility = classify_volatility(ind)
        found = detect_signals(context.candles, ind)
        caller = list(context.signals)[-MAX_CALLER_SIGNALS:]
        signals = tuple(caller + found)
        sentiment = score_sentiment(trend, ind, signals)
        reasoning = explain(context, ind, trend, volatility, signals, sentiment)
        return Analysis(trend, volatility, sentiment, signals, reasoning, ind, model=None)

    async def aclose(self) -> None:
        return None


def explain(
    context: MarketContext,
    ind: Indicators,
    trend: Trend,
    volatility: VolatilityLevel,
    signals: Sequence[SignalEvent],
    sentiment: Sentiment,
) -> str:
    """One readable paragraph that walks through the numbers in the order the verdicts used them."""
    first_close = ind.last_close / (1 + ind.change_pct / 100)
    direction = "rises" if ind.slope_pct_per_bar > 0 else "falls" if ind.slope_pct_per_bar < 0 else "is flat"
    ema_side = (
        "above" if ind.ema_fast > ind.ema_slow else "below" if ind.ema_fast < ind.ema_slow else "level with"
    )
    parts = [
        f"{context.symbol} on {context.timeframe}: over the last {ind.bars} bars the close moved from "
        f"{_price(first_close)} to {_price(ind.last_close)} ({ind.change_pct:+.2f}%).",
        f"A least-squares line through the closes {direction} {abs(ind.slope_pct_per_bar):.4f}% per bar "
        f"(R² {ind.r_squared:.2f}) and the {EMA_FAST}-bar EMA ({_price(ind.ema_fast)}) is {ema_side} the "
        f"{EMA_SLOW}-bar EMA ({_price(ind.ema_slow)}), so the trend reads {trend}.",
    ]
    ratio = ind.recent_vol_pct / ind.realised_vol_pct if ind.realised_vol_pct else 0.0
    parts.append(
        f"Realised volatility is {ind.realised_vol_pct:.3f}% per bar (about {ind.annualised_vol_pct:.0f}% "
        f"annualised); the last {min(RECENT_BARS, ind.bars - 1)} bars moved {ratio:.1f}× as much as the "
        f"whole window, so volatility is {volatility}."
    )
    if ind.rsi is not None:
        parts.append(f"RSI({RSI_PERIOD}) is {ind.rsi:.1f}.")
    if signals:
        parts.append("Recent signals: " + "; ".join(_describe(s) for s in signals) + ".")
    else:
        parts.append("No signal fired on the last bars.")
    parts.append(f"Taken together the read is {sentiment}.")
    if context.question:
        parts.append(
            "The local analyst reads prices and signals only; it does not forecast or know the news, so "
            "weigh this against your own view on the question asked."
        )
    return " ".join(parts)


def _describe(signal: SignalEvent) -> str:
    said = ", ".join(x for x in (signal.direction, signal.detail) if x)
    return f"{signal.name} ({said})" if said else signal.name


def _round(value: float) -> float:
    """Eight significant digits: enough for any price, stable across platforms for equality checks."""
    return float(f"{value:.8g}")


def _price(value: float) -> str:
    return f"{value:,.{max(2, 6 - len(str(int(abs(value)))))}f}"
