"""Candle operands for the backtester ("sma(10)", "rsi(14)", "sma(50, 1h)", "close", 100): checked when a
strategy is read and computed as whole columns, through the signal engine's candle indicators
(`services.signals.candles`: the same parser and the batch form proved equal to the live incremental one)."""

from __future__ import annotations

from services.backtest.candles import Candles, FloatArray, timeframe_name
from services.signals.candles import OperandError, compute, compute_on, parse_operand
from services.signals.rules import LEGACY_KEYS


def check_operand(text: str) -> None:
    """Raise ValueError (OperandError) naming the mistake when `text` is not a candle operand."""
    if text in LEGACY_KEYS and text not in ("price",):
        raise OperandError(f"'{text}' is a tick indicator of the live engine; on candles write it as e.g. "
                           f"\"rsi(14)\" or \"ema(12)\"")
    parse_operand(text)


def operand_values(text: str, candles: Candles, timeframe: str | None = None) -> FloatArray:
    """The operand's value at each candle's close (NaN while warming up). `timeframe` is the candles' own
    (found from their spacing when None); a longer one in the operand gives the value a chart showed at
    that moment (the forming longer candle). O(n)."""
    spec = parse_operand(text)
    if spec.timeframe is None:
        return compute(spec, candles)
    own = timeframe or timeframe_name(candles)
    if own is None:
        raise OperandError(f"'{text}' names a timeframe, but these candles are not 1m, 5m, 15m, 1h, 4h or 1d "
                           f"candles, so it cannot be built from them")
    return compute_on(spec, candles, own)
