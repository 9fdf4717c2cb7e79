"""Incremental candle indicators: `push` a closed candle, `peek` at the forming one, as a chart does.

Every indicator holds only closed candles. `peek(o, h, l, c, v)` returns the values it would have if
the forming candle closed now, without changing anything; `push(o, h, l, c, v)` closes it and
returns the same values. Both return a tuple, one float per output (NaN while warming up).
Warm-up and arithmetic follow TA-Lib (see `services/signals/README.md`); `batch.py` holds the
vectorised twin of each, and the tests prove them equal.

Costs: O(1) per call for the recursive and running-sum indicators, O(log n) for the rolling
quantile, O(n) for CCI (its mean deviation has no running form); a window of n candles keeps n-1.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable
from math import fsum, log, sqrt
from typing import Protocol

from sortedcontainers import SortedList

from services.signals.operands import IndicatorSpec
from services.signals.sums import CompensatedSum
from services.signals.windows import FLAT_LIST_MAX_POINTS, _between

NAN = math.nan
FLAT = 1e-12  # a spread below this fraction of the level is rounding, not a move
Values = tuple[float, ...]


class CandleIndicator(Protocol):
    """One indicator's state over closed candles (see the module docstring)."""

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values: ...  # noqa: E741

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values: ...  # noqa: E741


# -- primitives over one float series: peek(x) / push(x) -> float ---------------------------------
class Mean:
    """Mean of the last n values. O(1); the running sum is Neumaier-compensated, so what falls out
    of the window (a spike long gone) leaves no rounding behind."""

    __slots__ = ("n", "buf", "s")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque()
        self.s = CompensatedSum()

    def peek(self, x: float) -> float:
        return (self.s.value + x) / self.n if len(self.buf) == self.n - 1 else NAN

    def push(self, x: float) -> float:
        out = self.peek(x)
        buf = self.buf
        buf.append(x)
        self.s.add(x)
        if len(buf) >= self.n:
            self.s.sub(buf.popleft())
        return out


class Sum(Mean):
    """Sum of the last n values. O(1)."""

    __slots__ = ()

    def peek(self, x: float) -> float:
        return self.s.value + x if len(self.buf) == self.n - 1 else NAN


class MeanStd:
    """Mean and population standard deviation of the last n values. O(1), or O(n) when the
    running sums cannot be trusted.

    Sums are of (x - K), K re-centred on the mean once per window turn. When the variance is
    small against the largest squared deviation summed since (a flat market after a spike), the
    running sum of squares holds mostly rounding, and the window is summed afresh instead.
    """

    __slots__ = ("n", "buf", "k", "s", "ss", "turn", "big")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque()
        self.k = NAN
        self.s = self.ss = 0.0
        self.turn = 0
        self.big = 0.0  # largest (x - K)^2 summed since the last rebase

    def peek2(self, x: float) -> tuple[float, float]:
        if len(self.buf) != self.n - 1:
            return NAN, NAN
        n = self.n
        k = x if self.k != self.k else self.k
        d = x - k
        m = (self.s + d) / n
        var = (self.ss + d * d) / n - m * m
        if var < 1e-7 * max(self.big, d * d):
            return _mean_std([*self.buf, x])
        return k + m, sqrt(var) if var > 0.0 else 0.0

    def push2(self, x: float) -> tuple[float, float]:
        out = self.peek2(x)
        if self.k != self.k:
            self.k = x
        buf = self.buf
        buf.append(x)
        d = x - self.k
        self.s += d
        self.ss += d * d
        if d * d > self.big:
            self.big = d * d
        if len(buf) >= self.n:
            old = buf.popleft() - self.k
            self.s -= old
            self.ss -= old * old
            self.turn += 1
            if self.turn >= self.n:
                self._rebase()
        return out

    def _rebase(self) -> None:
        buf = self.buf
        self.turn = 0
        if not buf:
            self.k, self.s, self.ss, self.big = NAN, 0.0, 0.0, 0.0
            return
        self.k = fsum(buf) / len(buf)
        diffs = [x - self.k for x in buf]
        self.s = fsum(diffs)
        squares = [d * d for d in diffs]
        self.ss = fsum(squares)
        self.big = max(squares)


def _mean_std(window: list[float]) -> tuple[float, float]:
    """Two-pass mean and population standard deviation: O(n), exact to rounding."""
    n = len(window)
    mean = fsum(window) / n
    var = fsum([(y - mean) ** 2 for y in window]) / n
    return mean, sqrt(var)


class Ema:
    """TA-Lib's EMA: the first value is the mean of the first n, then e + 2/(n+1) * (x - e). O(1)."""

    __slots__ = ("n", "k", "count", "seed", "e")

    def __init__(self, n: int) -> None:
        self.n = n
        self.k = 2.0 / (n + 1)
        self.count = 0
        self.seed = 0.0
        self.e = NAN

    def peek(self, x: float) -> float:
        if self.count >= self.n:
            return self.e + self.k * (x - self.e)
        return (self.seed + x) / self.n if self.count == self.n - 1 else NAN

    def push(self, x: float) -> float:
        out = self.peek(x)
        if self.count < self.n:
            self.seed += x
        self.e = out
        self.count += 1
        return out


class Wilder(Ema):
    """Wilder's smoothing as TA-Lib writes it: mean of the first n, then (w*(n-1) + x)/n. O(1)."""

    __slots__ = ()

    def peek(self, x: float) -> float:
        if self.count >= self.n:
            return (self.e * (self.n - 1) + x) / self.n
        return (self.seed + x) / self.n if self.count == self.n - 1 else NAN


class Extreme:
    """Max (or min) of the last n values: a monotonic deque of the last n-1. O(1) amortised."""

    __slots__ = ("n", "count", "q", "better")

    def __init__(self, n: int, *, highest: bool) -> None:
        self.n = n
        self.count = 0
        self.q: deque[tuple[int, float]] = deque()  # (index, value), values decreasing (max)
        self.better: Callable[[float, float], bool] = (lambda a, b: a >= b) if highest else (lambda a, b: a <= b)

    def peek(self, x: float) -> float:
        if self.count < self.n - 1:
            return NAN
        if not self.q:
            return x
        best = self.q[0][1]
        return best if self.better(best, x) else x

    def push(self, x: float) -> float:
        out = self.peek(x)
        q, better = self.q, self.better
        while q and better(x, q[-1][1]):
            q.pop()
        q.append((self.count, x))
        self.count += 1
        keep_from = self.count - (self.n - 1)
        while q and q[0][0] < keep_from:
            q.popleft()
        return out


class Quantile:
    """Quantile q (linear interpolation, numpy's default) of the last n values. O(log n).

    `peek` reads the k-th value of (window + x) by bisection, without inserting x.
    """

    __slots__ = ("n", "q", "buf", "sorted")

    def __init__(self, n: int, q: float) -> None:
        self.n = n
        self.q = q
        self.buf: deque[float] = deque()
        self.sorted: list[float] | SortedList = SortedList() if n - 1 > FLAT_LIST_MAX_POINTS else []

    def peek(self, x: float) -> float:
        s = self.sorted
        if len(s) != self.n - 1:
            return NAN
        pos = s.bisect_right(x) if isinstance(s, SortedList) else bisect_right(s, x)

        def kth(k: int) -> float:
            return float(s[k]) if k < pos else (x if k == pos else float(s[k - 1]))

        h = self.q * (self.n - 1)
        i = int(h)
        frac = h - i
        lo = kth(i)
        if frac == 0.0 or i + 1 >= self.n:
            return lo
        return _between(lo, kth(i + 1), frac)

    def push(self, x: float) -> float:
        out = self.peek(x)
        s = self.sorted
        self.buf.append(x)
        if isinstance(s, SortedList):
            s.add(x)
        else:
            insort(s, x)
        if len(self.buf) >= self.n:
            old = self.buf.popleft()
            if isinstance(s, SortedList):
                s.remove(old)
            else:
                del s[bisect_left(s, old)]
        return out


# -- candle indicators --------------------------------------------------------------------------
def true_range(h: float, l: float, prev_close: float) -> float:  # noqa: E741
    """TA-Lib's TRUE_RANGE, operation for operation."""
    out = h - l
    a = abs(h - prev_close)
    if a > out:
        out = a
    b = abs(l - prev_close)
    return b if b > out else out


class _Field:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return ((o, h, l, c, v)[self.index],)

    push = peek


class _OnClose:
    """A primitive over the closes: sma, ema, wma, highest, lowest, median, quantile."""

    __slots__ = ("p",)

    def __init__(self, p: Mean | Ema | Extreme | Quantile | Wma) -> None:
        self.p = p

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return (self.p.peek(c),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return (self.p.push(c),)


class Wma:
    """Linearly weighted mean of the last n (newest weight n). O(1): weighted sum W moves by
    W - S + (n-1)x per close; both re-added exactly once per window turn."""

    __slots__ = ("n", "buf", "s", "w", "turn", "div")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque()
        self.s = self.w = 0.0
        self.turn = 0
        self.div = n * (n + 1) / 2.0

    def peek(self, x: float) -> float:
        if len(self.buf) != self.n - 1:
            return NAN
        return (self.w + self.n * x) / self.div

    def push(self, x: float) -> float:
        out = self.peek(x)
        buf, n = self.buf, self.n
        if len(buf) < n - 1:
            buf.append(x)
            self.s += x
            self.w += len(buf) * x
            return out
        if n == 1:
            return out
        self.w = self.w - self.s + (n - 1) * x
        self.s += x - buf.popleft()
        buf.append(x)
        self.turn += 1
        if self.turn >= n:
            self.turn = 0
            self.s = fsum(buf)
            self.w = fsum([(k + 1) * y for k, y in enumerate(buf)])
        return out


class _Bands:
    """bb(n, k): middle, upper, lower; stddev(n); zscore(n)."""

    __slots__ = ("ms", "k", "kind")

    def __init__(self, n: int, k: float, kind: str) -> None:
        self.ms = MeanStd(n)
        self.k = k
        self.kind = kind

    def _out(self, c: float, m: float, sd: float) -> Values:
        if self.kind == "bb":
            return (m, m + self.k * sd, m - self.k * sd)
        if self.kind == "stddev":
            return (sd,)
        return (zscore(c, m, sd),)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return self._out(c, *self.ms.peek2(c))

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return self._out(c, *self.ms.push2(c))


def zscore(c: float, mean: float, sd: float) -> float:
    """(c - mean) / sd; 0 where the window is flat (sd within rounding of 0)."""
    if sd != sd:
        return NAN
    return (c - mean) / sd if sd > 1e-12 * abs(mean) else 0.0


def rsi_value(ag: float, al: float) -> float:
    """100 * gain / (gain + loss); 50 (neutral) when nothing moved, where TA-Lib writes 0."""
    total = ag + al
    if total != total:
        return NAN
    return 100.0 * (ag / total) if total > 0.0 else 50.0


class _Rsi:
    __slots__ = ("prev", "gain", "loss")

    def __init__(self, n: int) -> None:
        self.prev = NAN
        self.gain, self.loss = Wilder(n), Wilder(n)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.prev != self.prev:
            return (NAN,)
        d = c - self.prev
        return (rsi_value(self.gain.peek(d if d > 0 else 0.0), self.loss.peek(-d if d < 0 else 0.0)),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        prev, self.prev = self.prev, c
        if prev != prev:
            return (NAN,)
        d = c - prev
        return (rsi_value(self.gain.push(d if d > 0 else 0.0), self.loss.push(-d if d < 0 else 0.0)),)


class _Atr:
    __slots__ = ("prev", "w")

    def __init__(self, n: int) -> None:
        self.prev = NAN
        self.w = Wilder(n)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return (NAN,) if self.prev != self.prev else (self.w.peek(true_range(h, l, self.prev)),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        prev, self.prev = self.prev, c
        return (NAN,) if prev != prev else (self.w.push(true_range(h, l, prev)),)


class _Macd:
    """TA-Lib's MACD: the fast EMA is seeded at the slow one's first value (index slow-1) with the
    mean of the `fast` closes ending there, so both start together."""

    __slots__ = ("fast", "slow", "signal", "count", "skip")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.fast, self.slow, self.signal = Ema(fast), Ema(slow), Ema(signal)
        self.count = 0
        self.skip = slow - fast  # closes the fast EMA never sees

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.count < self.skip:
            return (NAN, NAN, NAN)
        line = self.fast.peek(c) - self.slow.peek(c)
        if line != line:
            return (NAN, NAN, NAN)
        sig = self.signal.peek(line)
        return (line, sig, line - sig)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        self.count += 1
        slow = self.slow.push(c)
        if self.count <= self.skip:
            return (NAN, NAN, NAN)
        line = self.fast.push(c) - slow
        if line != line:
            return (NAN, NAN, NAN)
        sig = self.signal.push(line)
        return (line, sig, line - sig)


def stoch_k(c: float, hh: float, ll: float) -> float:
    """TA-Lib's fast %K; 50 when the window is flat (TA-Lib: 0)."""
    diff = (hh - ll) / 100.0
    return (c - ll) / diff if diff != 0.0 else 50.0


def williams_r(c: float, hh: float, ll: float) -> float:
    """TA-Lib's %R; -50 when the window is flat (TA-Lib: 0)."""
    diff = (hh - ll) / -100.0
    return (hh - c) / diff if diff != 0.0 else -50.0


class _HighLow:
    """The window's highest high and lowest low: stoch, willr, donchian."""

    __slots__ = ("hi", "lo", "kind", "k", "d")

    def __init__(self, n: int, kind: str, k_smooth: int = 1, d_smooth: int = 1) -> None:
        self.hi, self.lo = Extreme(n, highest=True), Extreme(n, highest=False)
        self.kind = kind
        self.k, self.d = Mean(k_smooth), Mean(d_smooth)

    def _out(self, c: float, hh: float, ll: float, commit: bool) -> Values:
        if hh != hh:
            return (NAN, NAN) if self.kind == "stoch" else ((NAN,) if self.kind == "willr" else (NAN, NAN, NAN))
        if self.kind == "donchian":
            return ((hh + ll) / 2.0, hh, ll)
        if self.kind == "willr":
            return (williams_r(c, hh, ll),)
        fk = stoch_k(c, hh, ll)
        sk = self.k.push(fk) if commit else self.k.peek(fk)
        if sk != sk:
            return (NAN, NAN)
        return (sk, self.d.push(sk) if commit else self.d.peek(sk))

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return self._out(c, self.hi.peek(h), self.lo.peek(l), False)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return self._out(c, self.hi.push(h), self.lo.push(l), True)


class _Adx:
    """TA-Lib's ADX: sums of +DM, -DM and TR over the first n-1 changes, then smoothed
    (s - s/n + x); ADX is the mean of the first n DX values, then Wilder-smoothed."""

    __slots__ = ("n", "count", "ph", "pl", "pc", "pdm", "mdm", "tr", "sum_dx", "adx")

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.ph = self.pl = self.pc = NAN
        self.pdm = self.mdm = self.tr = self.sum_dx = 0.0
        self.adx = NAN

    def _step(self, h: float, l: float, c: float) -> tuple[float, tuple[float, ...]]:  # noqa: E741
        n, k = self.n, self.count
        if k == 0:
            return NAN, (self.pdm, self.mdm, self.tr, self.sum_dx, self.adx)
        dp, dm = h - self.ph, self.pl - l
        plus = minus = 0.0
        if dm > 0 and dp < dm:
            minus = dm
        elif dp > 0 and dp > dm:
            plus = dp
        tr = true_range(h, l, self.pc)
        if k < n:
            return NAN, (self.pdm + plus, self.mdm + minus, self.tr + tr, self.sum_dx, self.adx)
        pdm = self.pdm - self.pdm / n + plus
        mdm = self.mdm - self.mdm / n + minus
        tr_s = self.tr - self.tr / n + tr
        dx = NAN
        if tr_s != 0.0:
            mdi = 100.0 * (mdm / tr_s)
            pdi = 100.0 * (pdm / tr_s)
            total = mdi + pdi
            if total != 0.0:
                dx = 100.0 * (abs(mdi - pdi) / total)
        sum_dx, adx = self.sum_dx, self.adx
        if k < 2 * n - 1:
            sum_dx += dx if dx == dx else 0.0
            return NAN, (pdm, mdm, tr_s, sum_dx, adx)
        if k == 2 * n - 1:
            sum_dx += dx if dx == dx else 0.0
            adx = sum_dx / n
        elif dx == dx:
            adx = (adx * (n - 1) + dx) / n
        return adx, (pdm, mdm, tr_s, sum_dx, adx)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        return (self._step(h, l, c)[0],)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        value, (self.pdm, self.mdm, self.tr, self.sum_dx, self.adx) = self._step(h, l, c)
        self.count += 1
        self.ph, self.pl, self.pc = h, l, c
        return (value,)


class _Supertrend:
    """ATR bands around (high+low)/2 that only tighten while the trend holds (TradingView's rule);
    value is the band in force, direction +1 (up: the lower band) or -1 (down: the upper band).
    The first value starts down, as TradingView's does."""

    __slots__ = ("atr", "m", "prev", "upper", "lower", "dir")

    def __init__(self, n: int, m: float) -> None:
        self.atr = _Atr(n)
        self.m = m
        self.prev = NAN
        self.upper = self.lower = NAN
        self.dir = 0.0

    def _step(self, h: float, l: float, c: float, atr: float) -> tuple[float, float, float]:  # noqa: E741
        hl2 = (h + l) / 2.0
        up, lo = hl2 + self.m * atr, hl2 - self.m * atr
        if self.upper != self.upper:
            return up, lo, -1.0
        pc = self.prev
        if not (up < self.upper or pc > self.upper):
            up = self.upper
        if not (lo > self.lower or pc < self.lower):
            lo = self.lower
        if self.dir < 0:
            d = 1.0 if c > up else -1.0
        else:
            d = -1.0 if c < lo else 1.0
        return up, lo, d

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        atr = self.atr.peek(o, h, l, c, v)[0]
        if atr != atr:
            return (NAN, NAN)
        up, lo, d = self._step(h, l, c, atr)
        return (lo if d > 0 else up, d)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        atr = self.atr.push(o, h, l, c, v)[0]
        out: Values = (NAN, NAN)
        if atr == atr:
            self.upper, self.lower, self.dir = self._step(h, l, c, atr)
            out = (self.lower if self.dir > 0 else self.upper, self.dir)
        self.prev = c
        return out


class _Cci:
    __slots__ = ("n", "buf")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque(maxlen=n - 1)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if len(self.buf) != self.n - 1:
            return (NAN,)
        tp = (h + l + c) / 3.0
        return (cci_value(tp, [*self.buf, tp]),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        out = self.peek(o, h, l, c, v)
        if self.n > 1:
            self.buf.append((h + l + c) / 3.0)
        return out


def cci_value(tp: float, window: list[float]) -> float:
    """(tp - mean) / (0.015 * mean deviation), O(n); 0 when the window is flat (as TA-Lib), flat
    meaning within rounding of the mean (so the sum's rounding order cannot make noise of it)."""
    n = len(window)
    mean = fsum(window) / n
    dev = fsum([abs(x - mean) for x in window])
    diff = tp - mean
    tiny = FLAT * abs(mean)
    return diff / (0.015 * (dev / n)) if abs(diff) > tiny and dev > tiny * n else 0.0


class _Mfi:
    __slots__ = ("prev", "pos", "neg")

    def __init__(self, n: int) -> None:
        self.prev = NAN
        self.pos, self.neg = Sum(n), Sum(n)

    @staticmethod
    def _value(pos: float, neg: float) -> float:
        total = pos + neg
        if total != total:
            return NAN
        return 100.0 * (pos / total) if total > 0.0 else 50.0

    def _flows(self, h: float, l: float, c: float, v: float) -> tuple[float, float, float]:  # noqa: E741
        tp = (h + l + c) / 3.0
        mf = tp * v
        return tp, (mf if tp > self.prev else 0.0), (mf if tp < self.prev else 0.0)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.prev != self.prev:
            return (NAN,)
        _, up, down = self._flows(h, l, c, v)
        return (self._value(self.pos.peek(up), self.neg.peek(down)),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.prev != self.prev:
            self.prev = (h + l + c) / 3.0
            return (NAN,)
        tp, up, down = self._flows(h, l, c, v)
        self.prev = tp
        return (self._value(self.pos.push(up), self.neg.push(down)),)


class _Roc:
    __slots__ = ("buf",)

    def __init__(self, n: int) -> None:
        self.buf: deque[float] = deque(maxlen=n)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        buf = self.buf
        if len(buf) != buf.maxlen:
            return (NAN,)
        base = buf[0]
        return (((c / base) - 1.0) * 100.0 if base != 0.0 else 0.0,)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        out = self.peek(o, h, l, c, v)
        self.buf.append(c)
        return out


class _Obv:
    """On-balance volume from the first candle seen (TA-Lib: it starts at that candle's volume)."""

    __slots__ = ("prev", "obv")

    def __init__(self) -> None:
        self.prev = NAN
        self.obv = 0.0

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.prev != self.prev:
            return (v,)
        return (self.obv + v if c > self.prev else (self.obv - v if c < self.prev else self.obv),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        out = self.peek(o, h, l, c, v)
        self.obv, self.prev = out[0], c
        return out


class _Vwap:
    __slots__ = ("pv", "vol")

    def __init__(self, n: int) -> None:
        self.pv, self.vol = Sum(n), Sum(n)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        vol = self.vol.peek(v)
        pv = self.pv.peek((h + l + c) / 3.0 * v)
        return (pv / vol if vol > 0.0 else NAN,)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        vol = self.vol.push(v)
        pv = self.pv.push((h + l + c) / 3.0 * v)
        return (pv / vol if vol > 0.0 else NAN,)


class _Rvol:
    """sqrt of the sum of squared log returns over the last n closes."""

    __slots__ = ("prev", "s")

    def __init__(self, n: int) -> None:
        self.prev = NAN
        self.s = Sum(n)

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        if self.prev != self.prev:
            return (NAN,)
        r = log(c / self.prev)
        return (sqrt(max(self.s.peek(r * r), 0.0)),)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        prev, self.prev = self.prev, c
        if prev != prev:
            return (NAN,)
        r = log(c / prev)
        return (sqrt(max(self.s.push(r * r), 0.0)),)


class _VolumeRatio:
    """This candle's volume / the mean volume of the n candles before it (1 = usual)."""

    __slots__ = ("buf", "s", "spike")

    def __init__(self, n: int, spike: float | None) -> None:
        self.buf: deque[float] = deque(maxlen=n)
        self.s = CompensatedSum()
        self.spike = spike

    def peek(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        buf = self.buf
        if len(buf) != buf.maxlen:
            return (NAN,)
        mean = self.s.value / len(buf)
        ratio = v / mean if mean > 0.0 else NAN
        if self.spike is None or ratio != ratio:
            return (ratio,)
        return (1.0 if ratio >= self.spike else 0.0,)

    def push(self, o: float, h: float, l: float, c: float, v: float) -> Values:  # noqa: E741
        out = self.peek(o, h, l, c, v)
        buf = self.buf
        if len(buf) == buf.maxlen:
            self.s.sub(buf[0])
        buf.append(v)
        self.s.add(v)
        return out


_FIELDS = {"open": 0, "high": 1, "low": 2, "close": 3, "price": 3, "volume": 4}


def make_indicator(spec: IndicatorSpec) -> CandleIndicator:
    """A fresh incremental indicator for `spec` (its output is picked by `spec.output_index`)."""
    name, p = spec.name, spec.params
    if name in _FIELDS:
        return _Field(_FIELDS[name])
    n = int(p[0]) if p else 0
    if name == "sma":
        return _OnClose(Mean(n))
    if name == "ema":
        return _OnClose(Ema(n))
    if name == "wma":
        return _OnClose(Wma(n))
    if name in ("highest", "lowest"):
        return _OnClose(Extreme(n, highest=name == "highest"))
    if name == "median":
        return _OnClose(Quantile(n, 0.5))
    if name == "quantile":
        return _OnClose(Quantile(n, float(p[1])))
    if name in ("bb", "stddev", "zscore"):
        return _Bands(n, float(p[1]) if name == "bb" else 0.0, name)
    if name == "rsi":
        return _Rsi(n)
    if name == "atr":
        return _Atr(n)
    if name == "macd":
        return _Macd(int(p[0]), int(p[1]), int(p[2]))
    if name == "stoch":
        return _HighLow(n, "stoch", int(p[1]), int(p[2]))
    if name in ("willr", "donchian"):
        return _HighLow(n, name)
    if name == "adx":
        return _Adx(n)
    if name == "supertrend":
        return _Supertrend(n, float(p[1]))
    if name == "cci":
        return _Cci(n)
    if name == "mfi":
        return _Mfi(n)
    if name == "roc":
        return _Roc(n)
    if name == "obv":
        return _Obv()
    if name == "vwap":
        return _Vwap(n)
    if name == "rvol":
        return _Rvol(n)
    if name == "volume_ratio":
        return _VolumeRatio(n, None)
    if name == "volume_spike":
        return _VolumeRatio(n, float(p[1]))
    raise KeyError(f"no incremental form for {name!r}")  # the registry and this table disagree
