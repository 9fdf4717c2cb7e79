"""The chart's studies over a list of candles: EMA, SMA, Bollinger bands, VWAP, RSI and MACD, batch form.

Each is O(n) over the bars shown and returns one value per bar (None while it warms up). They are the
textbook formulas (Wilder's RSI, SMA-seeded EMA); services.signals holds the streaming engine that rules
run on, these draw what the trader looks at and are recomputed only when a bar closes or the view moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.market import Candle

Series = list[float | None]


@dataclass(frozen=True, slots=True)
class Study:
    """One study a trader can switch on: where it is drawn and what it is called in the legend."""

    key: str
    label: str
    pane: str  # "price": over the candles; else the name of its own pane under them


STUDIES: tuple[Study, ...] = (
    Study("ema20", "EMA 20", "price"),
    Study("sma50", "SMA 50", "price"),
    Study("bb20", "Bollinger 20, 2", "price"),
    Study("vwap", "VWAP", "price"),
    Study("rsi14", "RSI 14", "rsi"),
    Study("macd", "MACD 12, 26, 9", "macd"),
)
STUDY_BY_KEY = {s.key: s for s in STUDIES}


def sma(values: Sequence[float], period: int) -> Series:
    out: Series = [None] * len(values)
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= period:
            total -= values[i - period]
        if i >= period - 1:
            out[i] = total / period
    return out


def ema(values: Sequence[float], period: int) -> Series:
    """Seeded with the SMA of the first `period` values, then alpha = 2 / (period + 1)."""
    out: Series = [None] * len(values)
    if len(values) < period:
        return out
    alpha = 2.0 / (period + 1)
    value = sum(values[:period]) / period
    out[period - 1] = value
    for i in range(period, len(values)):
        value += alpha * (values[i] - value)
        out[i] = value
    return out


def bollinger(values: Sequence[float], period: int = 20, k: float = 2.0) -> tuple[Series, Series, Series]:
    """(middle, upper, lower): the SMA ± k population standard deviations over `period` values."""
    middle = sma(values, period)
    upper: Series = [None] * len(values)
    lower: Series = [None] * len(values)
    for i, mean in enumerate(middle):
        if mean is None:
            continue
        window = values[i - period + 1:i + 1]
        sd = math.sqrt(sum((v - mean) ** 2 for v in window) / period)
        upper[i], lower[i] = mean + k * sd, mean - k * sd
    return middle, upper, lower


def vwap(candles: Sequence[Candle], day_ms: int = 86_400_000) -> Series:
    """Volume-weighted typical price, anchored at each UTC day's start (as exchanges draw it)."""
    out: Series = []
    day, pv, vol = None, 0.0, 0.0
    for c in candles:
        if c.timestamp_ms // day_ms != day:
            day, pv, vol = c.timestamp_ms // day_ms, 0.0, 0.0
        pv += (c.high + c.low + c.close) / 3 * c.volume
        vol += c.volume
        out.append(pv / vol if vol > 0 else None)
    return out


def rsi(values: Sequence[float], period: int = 14) -> Series:
    """Wilder's RSI: smoothed average gain over smoothed average loss."""
    out: Series = [None] * len(values)
    if len(values) <= period:
        return out
    gains = [max(0.0, values[i] - values[i - 1]) for i in range(1, len(values))]
    losses = [max(0.0, values[i - 1] - values[i]) for i in range(1, len(values))]
    gain, loss = sum(gains[:period]) / period, sum(losses[:period]) / period
    for i in range(period, len(values)):
        if i > period:
            gain = (gain * (period - 1) + gains[i - 1]) / period
            loss = (loss * (period - 1) + losses[i - 1]) / period
        out[i] = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
    return out


def macd(values: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Series, Series, Series]:
    """(macd, signal, histogram): EMA(fast) − EMA(slow), its EMA(signal), and their difference."""
    fast_ema, slow_ema = ema(values, fast), ema(values, slow)
    line: Series = [f - s if f is not None and s is not None else None for f, s in zip(fast_ema, slow_ema, strict=True)]
    start = next((i for i, v in enumerate(line) if v is not None), len(line))
    tail = ema([v for v in line[start:] if v is not None], signal)
    sig: Series = [*([None] * start), *tail]
    hist: Series = [m - s if m is not None and s is not None else None for m, s in zip(line, sig, strict=True)]
    return line, sig, hist


def compute(key: str, candles: Sequence[Candle]) -> dict[str, Series]:
    """The named lines of study `key` over `candles`, one value per candle."""
    closes = [c.close for c in candles]
    if key == "ema20":
        return {"EMA 20": ema(closes, 20)}
    if key == "sma50":
        return {"SMA 50": sma(closes, 50)}
    if key == "bb20":
        mid, up, low = bollinger(closes, 20, 2.0)
        return {"BB mid": mid, "BB upper": up, "BB lower": low}
    if key == "vwap":
        return {"VWAP": vwap(candles)}
    if key == "rsi14":
        return {"RSI 14": rsi(closes, 14)}
    if key == "macd":
        line, sig, hist = macd(closes)
        return {"MACD": line, "Signal": sig, "Histogram": hist}
    raise ValueError(f"unknown study {key!r}")
