"""The chart's studies over a list of candles: EMA, SMA, Bollinger bands, VWAP, RSI and MACD.

Each is the engine's own indicator (`services.signals.batch`, the batch form the backtester uses, proved
equal to the incremental form rules run on), so a line on the chart is the value a rule compares: one formula
per indicator in the app. O(n) over the bars handed in; recomputed only when a bar closes or the view moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.market import Candle
from services.signals.batch import Candles, compute_all
from services.signals.operands import parse_operand

Series = list[float | None]


@dataclass(frozen=True, slots=True)
class Study:
    """One study a trader can switch on: where it is drawn, what it is called, the engine operand it draws
    and the legend names of that operand's outputs, in the engine's order."""

    key: str
    label: str
    pane: str  # "price": over the candles; else the name of its own pane under them
    operand: str  # services.signals operand text, e.g. "bb(20, 2)"
    lines: tuple[str | None, ...]  # a name per output; None: not drawn


STUDIES: tuple[Study, ...] = (
    Study("ema20", "EMA 20", "price", "ema(20)", ("EMA 20",)),
    Study("sma50", "SMA 50", "price", "sma(50)", ("SMA 50",)),
    Study("bb20", "Bollinger 20, 2", "price", "bb(20, 2)", ("BB mid", "BB upper", "BB lower")),
    Study("vwap", "VWAP 20", "price", "vwap(20)", ("VWAP",)),
    Study("rsi14", "RSI 14", "rsi", "rsi(14)", ("RSI 14",)),
    Study("macd", "MACD 12, 26, 9", "macd", "macd(12, 26, 9)", ("MACD", "Signal", "Histogram")),
)
STUDY_BY_KEY = {s.key: s for s in STUDIES}


def compute(key: str, candles: Sequence[Candle]) -> dict[str, Series]:
    """The named lines of study `key` over `candles`, one value per candle (None while it warms up)."""
    study = STUDY_BY_KEY.get(key)
    if study is None:
        raise ValueError(f"unknown study {key!r}")
    outputs = compute_all(parse_operand(study.operand), Candles.from_rows(candles))
    return {name: [None if math.isnan(v) else v for v in values.tolist()]
            for name, values in zip(study.lines, outputs, strict=True) if name is not None}
