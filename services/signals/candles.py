"""Candle indicators of any period on any timeframe, live (from trades) and in batch (numpy).

This module is the public face of the candle indicators; the backtester and the engine use it.

Operands (see services/signals/README.md for the full list)::

    spec = parse_operand("sma(50, 1h)")          # IndicatorSpec("sma", (50,), "1h", "value")
    spec = parse_operand("rsi", timeframe="15m")  # rsi(14, 15m): the default timeframe fills in
    parse_operand("macd(12, 26, 9).signal"); parse_operand("bb(20, 2).upper"); parse_operand("close")
    str(spec)                                      # canonical text, also its key in snapshots
    parse_operand("smaa(5)")                       # OperandError: Unknown indicator 'smaa' — did you mean 'sma'?

Batch (the backtester's path; arrays as long as the candles, NaN while warming up)::

    candles = Candles(timestamp_ms, open, high, low, close, volume)   # numpy arrays
    compute(spec, candles) -> np.ndarray            # value at each candle's close
    compute_many(specs, candles) -> {spec: array}  # shares one computation per indicator
    compute_on(spec, candles, "1m")                 # a 1h spec over 1m candles: the value as it
                                                    # stood at each 1m close (forming 1h candle)
    resample(candles, "1h") -> Candles              # UTC buckets

Incremental (the live path; the same numbers)::

    ind = make_indicator(spec); ind.push(o, h, l, c, v) -> tuple   # a closed candle
    ind.peek(o, h, l, c, v) -> tuple                               # the forming one, no change
    series = CandleSeries("1h"); series.want(spec); series.on_trade(ts, price, amount)
    series.read_into(out)   # out[str(spec)] = the forming candle's value (what a chart shows)
    series.closed[str(spec)]  # the value at the last close

Conventions: warm-up and arithmetic as TA-Lib (SMA/WMA from the n-th candle; EMA seeded with
the SMA of its first n closes; RSI and ATR Wilder-smoothed, seeded with the mean of the first n
changes / true ranges, first value at candle n; MACD's fast EMA seeded at the slow one's first
value, signal from candle slow+signal-2; Bollinger/stddev population; stochastic's %K and %D
simple means; ADX from candle 2n-1). Where a formula divides nothing by nothing (a flat window),
the value is the neutral midpoint, RSI/MFI/stochastic 50 and Williams %R -50 (TA-Lib writes 0).
Candles are UTC buckets `ts - ts % timeframe`; a span with no trades makes no candle.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from services.signals.batch import Candles, compute, compute_all, compute_many, ema, resample
from services.signals.incremental import CandleIndicator, make_indicator
from services.signals.operands import (
    REGISTRY,
    TIMEFRAME_MS,
    IndicatorSpec,
    OperandError,
    check_timeframe,
    parse_operand,
)

# Closed candles a series keeps, so an indicator asked for later (a chart adds one) starts warm.
HISTORY_CANDLES = 2_000

__all__ = [
    "HISTORY_CANDLES",
    "REGISTRY",
    "TIMEFRAME_MS",
    "CandleIndicator",
    "CandleSeries",
    "Candles",
    "IndicatorSpec",
    "OperandError",
    "SymbolCandles",
    "check_timeframe",
    "compute",
    "compute_all",
    "compute_many",
    "compute_on",
    "make_indicator",
    "parse_operand",
    "resample",
]


class CandleSeries:
    """One symbol's candles of one timeframe built from trades, and the indicators asked of them.

    `on_trade`: O(1) (+ one `push` per indicator when a candle closes); `read_into`: one `peek` per
    indicator. A trade older than the forming candle is ignored (its candle is closed).
    """

    __slots__ = (
        "timeframe", "ms", "start", "last_ts", "o", "h", "l", "c", "v", "_indicators", "_outputs", "_last", "closed",
        "history", "_reads",
    )

    def __init__(self, timeframe: str) -> None:
        self.timeframe = check_timeframe(timeframe)
        self.ms = TIMEFRAME_MS[timeframe]
        self.start: int | None = None  # open time of the forming candle
        self.last_ts = -(1 << 62)  # newest trade: a late one shapes high and low, not the close
        self.o = self.h = self.l = self.c = self.v = 0.0
        self._indicators: dict[IndicatorSpec, CandleIndicator] = {}  # by base spec: outputs share
        self._outputs: list[tuple[str, IndicatorSpec, int]] = []  # (key, base, output index)
        # Per indicator, the (key, output index) pairs read from it: one peek each per read.
        self._reads: list[tuple[CandleIndicator, tuple[tuple[str, int], ...]]] = []
        self._last: dict[IndicatorSpec, tuple[float, ...]] = {}  # every output at the last close
        self.closed: dict[str, float] = {}  # value of each wanted spec at the last close
        self.history: deque[tuple[int, float, float, float, float, float]] = deque(maxlen=HISTORY_CANDLES)

    def want(self, spec: IndicatorSpec) -> str:
        """Compute `spec` (on this timeframe) from now on, warmed by the kept history. Returns its key."""
        spec = spec.on(self.timeframe)
        key = str(spec)
        if any(k == key for k, _, _ in self._outputs):
            return key
        base = spec.base
        if base not in self._indicators:
            ind = self._indicators[base] = make_indicator(base)
            for _, o, h, l, c, v in self.history:  # noqa: E741
                self._last[base] = ind.push(o, h, l, c, v)
        if base in self._last:
            self.closed[key] = self._last[base][spec.output_index]
        self._outputs.append((key, base, spec.output_index))
        self._reads = [
            (ind, tuple((k, i) for k, b, i in self._outputs if b == base_))
            for base_, ind in self._indicators.items()
        ]
        return key

    def keep_only(self, keys: set[str]) -> None:
        """Stop computing what is not in `keys` (rules changed); the candles stay kept."""
        self._outputs = [o for o in self._outputs if o[0] in keys]
        bases = {base for _, base, _ in self._outputs}
        self._indicators = {b: ind for b, ind in self._indicators.items() if b in bases}
        self._last = {b: v for b, v in self._last.items() if b in bases}
        self.closed = {k: v for k, v in self.closed.items() if k in keys}
        self._reads = [
            (ind, tuple((k, i) for k, b, i in self._outputs if b == base)) for base, ind in self._indicators.items()
        ]

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(k for k, _, _ in self._outputs)

    def on_trade(self, timestamp_ms: int, price: float, amount: float) -> bool:
        """Add a trade to the forming candle; True when it opened a new one (the last one closed)."""
        bucket = timestamp_ms - timestamp_ms % self.ms
        start = self.start
        if start is not None and bucket == start:
            if price > self.h:
                self.h = price
            elif price < self.l:
                self.l = price
            if timestamp_ms >= self.last_ts:
                self.c = price
                self.last_ts = timestamp_ms
            self.v += amount
            return False
        if start is not None and bucket < start:
            return False
        self.last_ts = timestamp_ms
        closed = start is not None
        if closed:
            self._close()
        self.start = bucket
        self.o = self.h = self.l = self.c = price
        self.v = amount
        return closed

    def on_candle(self, timestamp_ms: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        """Add a closed candle (history, a backtest): the forming one, if older, closes first."""
        bucket = timestamp_ms - timestamp_ms % self.ms
        if self.start is not None:
            if bucket <= self.start:
                return
            self._close()
            self.start = None
        self._push(bucket, o, h, l, c, v)

    def _close(self) -> None:
        assert self.start is not None
        self._push(self.start, self.o, self.h, self.l, self.c, self.v)

    def _push(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.history.append((ts, o, h, l, c, v))
        values = self._last
        for base, ind in self._indicators.items():
            values[base] = ind.push(o, h, l, c, v)
        closed = self.closed
        for key, base, k in self._outputs:
            closed[key] = values[base][k]

    def seed_from(self, finer: CandleSeries) -> None:
        """Start this (new, empty) series from a finer one's kept candles, forming one included,
        so an indicator on a timeframe nobody watched yet starts warm. O(kept candles)."""
        rows = list(finer.history)
        partial_first = len(rows) == finer.history.maxlen  # the oldest bucket may be cut
        if finer.start is not None:
            rows.append((finer.start, finer.o, finer.h, finer.l, finer.c, finer.v))
        buckets: list[list[float]] = []
        for ts, o, h, l, c, v in rows:  # noqa: E741
            b = ts - ts % self.ms
            if buckets and buckets[-1][0] == b:
                last = buckets[-1]
                last[2], last[3], last[4], last[5] = max(last[2], h), min(last[3], l), c, last[5] + v
            else:
                buckets.append([b, o, h, l, c, v])
        if partial_first and len(buckets) > 1:
            buckets = buckets[1:]
        if not buckets:
            return
        for row in buckets[:-1]:
            self._push(int(row[0]), *row[1:])
        start, self.o, self.h, self.l, self.c, self.v = buckets[-1]
        self.start = int(start)
        self.last_ts = finer.last_ts

    def read_into(self, out: dict[str, float]) -> None:
        """The forming candle's value of every wanted spec, by key (NaN before the first trade)."""
        if self.start is None:
            for key, _, _ in self._outputs:
                out[key] = self.closed.get(key, np.nan)
            return
        o, h, l, c, v = self.o, self.h, self.l, self.c, self.v  # noqa: E741
        for ind, reads in self._reads:
            values = ind.peek(o, h, l, c, v)
            for key, k in reads:
                out[key] = values[k]


class SymbolCandles:
    """Every timeframe's `CandleSeries` of one symbol, made on demand for the specs wanted."""

    __slots__ = ("series", "_list")

    def __init__(self) -> None:
        self.series: dict[str, CandleSeries] = {}
        self._list: list[CandleSeries] = []

    def want(self, spec: IndicatorSpec) -> str:
        """Track `spec` (its timeframe must be set); returns its key. Identical specs share."""
        if spec.timeframe is None:
            raise OperandError(f"'{spec}' needs a timeframe here, e.g. '{spec.on('1h')}'")
        series = self.series.get(spec.timeframe)
        if series is None:
            series = CandleSeries(spec.timeframe)
            finer = [f for f in self._list if f.ms < series.ms and series.ms % f.ms == 0]
            if finer:
                series.seed_from(min(finer, key=lambda f: f.ms))
            self.series[spec.timeframe] = series
            self._list.append(series)
        return series.want(spec)

    def keep_only(self, specs: set[IndicatorSpec]) -> None:
        """Stop computing every spec not in `specs` (timeframes set). Series stay, with their candles."""
        keys = {str(spec) for spec in specs}
        for series in self._list:
            series.keep_only(keys)

    def on_trade(self, timestamp_ms: int, price: float, amount: float) -> None:
        for series in self._list:
            series.on_trade(timestamp_ms, price, amount)

    def read_into(self, out: dict[str, float]) -> None:
        for series in self._list:
            series.read_into(out)


def compute_on(spec: IndicatorSpec, candles: Candles, timeframe: str) -> np.ndarray:
    """`spec` at each close of `candles` (of `timeframe`): batch when the spec is on the same
    timeframe (or names none); for a longer one, the value a chart showed at that moment, i.e.
    over the closed longer candles and the one forming. O(n) numpy, or O(n) incremental steps.
    """
    check_timeframe(timeframe)
    if not spec.definition.timeframed or spec.timeframe in (None, timeframe):
        return compute(spec, candles)
    if TIMEFRAME_MS[spec.timeframe] < TIMEFRAME_MS[timeframe]:
        raise OperandError(f"'{spec}' needs {spec.timeframe} candles: it cannot be computed from {timeframe} candles")
    ms = TIMEFRAME_MS[spec.timeframe]
    fast = _forming_vectorised(spec, candles, ms)
    if fast is not None:
        return fast
    ind = make_indicator(spec.base)
    k = spec.output_index
    out = np.empty(len(candles))
    ts, op, hi, lo, cl, vo = (
        candles.timestamp_ms.tolist(),
        candles.open.tolist(),
        candles.high.tolist(),
        candles.low.tolist(),
        candles.close.tolist(),
        candles.volume.tolist(),
    )
    start = None
    o = h = l = c = v = 0.0  # noqa: E741
    for i in range(len(ts)):
        bucket = ts[i] - ts[i] % ms
        if bucket != start:
            if start is not None:
                ind.push(o, h, l, c, v)
            start, o, h, l, v = bucket, op[i], hi[i], lo[i], 0.0  # noqa: E741
        else:
            h = max(h, hi[i])
            l = min(l, lo[i])  # noqa: E741
        c = cl[i]
        v += vo[i]
        out[i] = ind.peek(o, h, l, c, v)[k]
    return out


def _forming_vectorised(spec: IndicatorSpec, candles: Candles, ms: int) -> np.ndarray | None:
    """`compute_on`'s answer in numpy for the indicators whose forming value is a closed-form step
    from the state at the last longer close (SMA, EMA, close, open, volume); None for the others.

    For a short candle j in longer bucket b: SMA = (sum of the n-1 longer closes before b + c_j)/n,
    EMA = E[b-1] + k (c_j - E[b-1]) (or the seed mean at b = n-1), the arithmetic of `Mean`/`Ema`.
    """
    name = spec.name
    if name not in ("sma", "ema", "close", "open", "volume") or len(candles) == 0:
        return None
    ts = candles.timestamp_ms
    bucket = ts - ts % ms
    new = np.r_[True, bucket[1:] != bucket[:-1]]
    g = np.cumsum(new) - 1  # index of the longer candle each short one falls in
    c = candles.close
    if name == "close":
        return c.copy()
    if name == "open":
        return candles.open[np.flatnonzero(new)][g]
    if name == "volume":
        total = np.cumsum(candles.volume)
        before = np.r_[0.0, total][np.flatnonzero(new)][g]
        return total - before
    n = int(spec.params[0])
    closes = resample(candles, spec.timeframe or "1m").close
    out = np.full(len(candles), np.nan)
    if name == "sma":
        prior = np.full(len(closes), np.nan)  # prior[b] = sum of the n-1 closes before b
        if len(closes) >= n:
            prior[n - 1 :] = sliding_window_view(closes[:-1], n - 1).sum(axis=1)
        valid = g >= n - 1
        out[valid] = (prior[g[valid]] + c[valid]) / n
        return out
    closed = ema(closes, n)
    at_seed = g == n - 1
    if at_seed.any():
        out[at_seed] = (np.cumsum(closes[: n - 1])[-1] + c[at_seed]) / n  # cumsum: `Ema.seed`'s order
    later = g > n - 1
    prev = closed[g[later] - 1]
    out[later] = prev + (2.0 / (n + 1)) * (c[later] - prev)
    return out
