"""Candle operands for the backtester ("sma(10)", "rsi(14)", "close", 100): checked when a strategy is read
and computed as whole columns (vectorised batch form) over the candles.

STAND-IN until `services/signals` commits its candle indicators: then `check_operand` and `operand_values`
call its parser and batch form, so the backtest and the live engine share one indicator code.
"""

from __future__ import annotations

import re

import numpy as np

from services.backtest.candles import Candles, FloatArray

_CALL = re.compile(r"^\s*([a-z_]+)\s*\(\s*(\d+)\s*\)\s*$")
_FIELDS = ("open", "high", "low", "close", "volume", "price")
_INDICATORS = ("sma", "ema", "rsi")


def check_operand(text: str) -> None:
    """Raise ValueError naming the mistake when `text` is not a candle operand."""
    if text.strip() in _FIELDS:
        return
    match = _CALL.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an indicator: write e.g. \"sma(20)\", \"rsi(14)\" or \"close\"")
    name, period = match[1], int(match[2])
    if name not in _INDICATORS:
        raise ValueError(f"there is no indicator {name!r} (known: {', '.join(_INDICATORS)})")
    if period < 1:
        raise ValueError(f"{text!r}: the period must be at least 1")


def operand_values(text: str, candles: Candles) -> FloatArray:
    """The operand's value at each candle's close (NaN while warming up). O(n)."""
    text = text.strip()
    if text in _FIELDS:
        return candles.close if text == "price" else getattr(candles, text)
    check_operand(text)
    match = _CALL.match(text)
    assert match is not None
    name, period = match[1], int(match[2])
    close = candles.close
    if name == "sma":
        return _sma(close, period)
    if name == "ema":
        return _ema(close, period)
    return _rsi(close, period)


def _sma(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        out[n - 1:] = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    return out


def _ema(x: FloatArray, n: int) -> FloatArray:
    """Seeded with the SMA of the first n values (TA-Lib's convention)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    alpha = 2.0 / (n + 1)
    value = float(x[:n].mean())
    out[n - 1] = value
    for i in range(n, x.shape[0]):  # stand-in: a plain loop
        value += alpha * (float(x[i]) - value)
        out[i] = value
    return out


def _rsi(x: FloatArray, n: int) -> FloatArray:
    """Wilder's RSI (TA-Lib's convention)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] <= n:
        return out
    d = np.diff(x)
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    g, lo = float(gain[:n].mean()), float(loss[:n].mean())
    for i in range(n, x.shape[0]):
        if i > n:
            g = (g * (n - 1) + gain[i - 1]) / n
            lo = (lo * (n - 1) + loss[i - 1]) / n
        out[i] = 100.0 if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)
    return out
