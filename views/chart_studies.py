"""The chart's studies over a list of candles: EMA, SMA, Bollinger bands, VWAP, RSI and MACD.

Each is the engine's own indicator (`services.signals.batch`, the batch form the backtester uses, proved
equal to the incremental form rules run on), so a line on the chart is the value a rule compares: one formula
per indicator in the app. O(n) over the bars handed in, in numpy; a forming bar's tick reads only its own row
into the arrays (`StudyInputs`), the closed bars' columns are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

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
    return compute_many([key], Candles.from_rows(candles))[key]


def compute_many(keys: Iterable[str], candles: Candles, skip: int = 0) -> dict[str, dict[str, Series]]:
    """`compute` of each study in `keys` over the same arrays, each line without its first `skip` values
    (the warm-up bars before the first one shown)."""
    out: dict[str, dict[str, Series]] = {}
    for key in keys:
        study = STUDY_BY_KEY.get(key)
        if study is None:
            raise ValueError(f"unknown study {key!r}")
        outputs = compute_all(parse_operand(study.operand), candles)
        out[key] = {name: [None if math.isnan(v) else v for v in values[skip:].tolist()]
                    for name, values in zip(study.lines, outputs, strict=True) if name is not None}
    return out


class StudyInputs:
    """The arrays studies are computed over, from one repaint to the next: a tick changes only the forming
    (last) bar, so the closed bars' columns are kept while the closed bars are the same, and only the last
    row is read and appended. Reading ~150 bars' rows into arrays was a third of a forming bar's repaint,
    once per study."""

    def __init__(self) -> None:
        self._closed_rows: list[Candle] | None = None
        self._closed: Candles | None = None

    def arrays(self, candles: Sequence[Candle]) -> Candles:
        closed = list(candles[:-1])
        if self._closed is None or closed != self._closed_rows:  # the same bars: an identity check each, in C
            self._closed_rows, self._closed = closed, Candles.from_rows(closed)
        if not candles:
            return self._closed
        last = Candles.from_rows(candles[-1:])
        return Candles(*(np.concatenate((getattr(self._closed, name), getattr(last, name)))
                         for name in ("timestamp_ms", "open", "high", "low", "close", "volume")))
