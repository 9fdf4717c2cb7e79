"""Candle indicators: the incremental form, the numpy batch form, a from-scratch formula and TA-Lib
agree; the forming candle's value on every trade is the batch value over the candles so far."""

from __future__ import annotations

import math
from collections.abc import Callable
from math import fsum
from typing import Any

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.signals.candles import (
    REGISTRY,
    TIMEFRAME_MS,
    Candles,
    CandleSeries,
    IndicatorSpec,
    compute,
    compute_all,
    compute_on,
    make_indicator,
    parse_operand,
    resample,
)

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- data -----------------------------------------------------------------------------------------
@st.composite
def candle_data(draw: st.DrawFn, min_size: int = 0, max_size: int = 90) -> Candles:
    """Candles on a 0.01 price grid: random walks with flat runs and gaps, volumes including 0."""
    n = draw(st.integers(min_size, max_size))
    start = draw(st.integers(100, 1_000_000))  # cents
    steps = draw(st.lists(st.sampled_from([0, 0, 1, -1, 7, -7, 150, -150, 3000, -3000]), min_size=n, max_size=n))
    wicks = draw(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), min_size=n, max_size=n))
    vols = draw(st.lists(st.sampled_from([0, 1, 2_500, 1_000_000]), min_size=n, max_size=n))
    closes, opens, highs, lows = [], [], [], []
    price = start
    for step, (up, down) in zip(steps, wicks, strict=True):
        o = price
        price = max(1, price + step)
        opens.append(o / 100)
        closes.append(price / 100)
        highs.append((max(o, price) + up) / 100)
        lows.append(max(1, min(o, price) - down) / 100)
    ts = np.arange(n, dtype=np.int64) * 60_000
    return Candles(ts, np.array(opens), np.array(highs), np.array(lows), np.array(closes), np.array(vols) / 1000)


def walk(seed: int, n: int) -> Candles:
    """A market-like series for TA-Lib (whose 'is zero' tests use 1e-8, so no flat windows)."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + rng.uniform(0.0005, 0.01, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0.0005, 0.01, n))
    return Candles(np.arange(n, dtype=np.int64) * 60_000, o, h, lo, c, rng.uniform(1, 100, n))


def random_spec(draw: Callable[..., Any], name: str) -> IndicatorSpec:
    d = REGISTRY[name]
    args = []
    for p in d.params:
        if p.integer:
            args.append(str(draw(st.integers(int(p.lo), min(int(p.hi), int(p.lo) + 25)))))
        else:
            args.append(str(draw(st.sampled_from([p.lo, p.default, min(p.hi, p.default * 2)]))))
    if name == "macd":
        fast = draw(st.integers(2, 10))
        args = [str(fast), str(draw(st.integers(fast + 1, fast + 15))), str(draw(st.integers(2, 10)))]
    text = f"{name}({', '.join(args)})" if args else name
    return parse_operand(text)


def same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Equal where defined, to 1e-7 of the series' scale; NaN at the same places."""
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: warm-up differs\n{a}\n{b}"
    ok = ~np.isnan(a)
    if ok.any():
        scale = max(1.0, float(np.max(np.abs(a[ok]))))
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-7, atol=1e-7 * scale, err_msg=what)


def incremental(spec: IndicatorSpec, k: Candles) -> np.ndarray:
    """Push each candle, checking on the way that peek gives the same values and changes nothing."""
    ind = make_indicator(spec.base)
    out = []
    for row in zip(k.open.tolist(), k.high.tolist(), k.low.tolist(), k.close.tolist(), k.volume.tolist(), strict=True):
        first, again, pushed = ind.peek(*row), ind.peek(*row), ind.push(*row)
        assert np.array_equal(first, again, equal_nan=True), "peek changed the state"
        assert np.array_equal(first, pushed, equal_nan=True), "peek and push disagree"
        out.append(pushed[spec.output_index])
    return np.array(out, dtype=np.float64)


# -- from-scratch formulas, written from the definitions (closed forms where there are) ------------
def _window(x: np.ndarray, n: int, f: Callable[[np.ndarray], float], first: int = 0) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(first + n - 1, len(x)):
        out[t] = f(x[t - n + 1 : t + 1])
    return out


def _ema_closed_form(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Seed = mean of the first n; EMA_t = (1-a)^(t-n+1) seed + sum a (1-a)^(t-j) x_j."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    seed = fsum(x[:n]) / n
    for t in range(n - 1, len(x)):
        j = np.arange(n, t + 1)
        out[t] = (1 - alpha) ** (t - n + 1) * seed + fsum(alpha * (1 - alpha) ** (t - j) * x[j])
    return out


def _tr(k: Candles) -> np.ndarray:
    tr = np.full(len(k), np.nan)
    for t in range(1, len(k)):
        pc = k.close[t - 1]
        tr[t] = max(k.high[t] - k.low[t], abs(k.high[t] - pc), abs(k.low[t] - pc))
    return tr


def _shifted(x: np.ndarray, shift: int, total: int) -> np.ndarray:
    out = np.full(total, np.nan)
    out[shift : shift + len(x)] = x[: total - shift]
    return out


def reference(spec: IndicatorSpec, k: Candles) -> tuple[np.ndarray, ...] | None:
    name, p = spec.name, spec.params
    c, h, lo, v, N = k.close, k.high, k.low, k.volume, len(k)
    n = int(p[0]) if p else 0
    tp = (h + lo + c) / 3
    mean = lambda w: fsum(w) / len(w)  # noqa: E731
    std = lambda w: math.sqrt(fsum((w - mean(w)) ** 2) / len(w))  # noqa: E731
    if name in ("open", "high", "low", "close", "volume"):
        return (getattr(k, name),)
    if name == "price":
        return (c,)
    if name == "sma":
        return (_window(c, n, mean),)
    if name == "ema":
        return (_ema_closed_form(c, n, 2 / (n + 1)),)
    if name == "wma":
        return (_window(c, n, lambda w: fsum(w * np.arange(1, n + 1)) / (n * (n + 1) / 2)),)
    if name in ("rsi", "atr"):
        if name == "rsi":
            d = np.diff(c)
            g = _shifted(_ema_closed_form(np.maximum(d, 0), n, 1 / n), 1, N)
            l_ = _shifted(_ema_closed_form(np.maximum(-d, 0), n, 1 / n), 1, N)
            with np.errstate(invalid="ignore", divide="ignore"):
                rsi = np.where(g + l_ > 0, 100 * g / (g + l_), 50.0)
            rsi[np.isnan(g)] = np.nan
            return (rsi,)
        return (_shifted(_ema_closed_form(_tr(k)[1:], n, 1 / n), 1, N),)
    if name in ("bb", "stddev", "zscore"):
        m, s = _window(c, n, mean), _window(c, n, std)
        if name == "bb":
            return m, m + p[1] * s, m - p[1] * s
        if name == "stddev":
            return (s,)
        z = np.array([0.0 if s[t] <= 1e-12 * abs(m[t]) else (c[t] - m[t]) / s[t] for t in range(N)])
        z[np.isnan(s)] = np.nan
        return (z,)
    if name in ("highest", "lowest"):
        return (_window(c, n, np.max if name == "highest" else np.min),)
    if name == "donchian":
        up, dn = _window(h, n, np.max), _window(lo, n, np.min)
        return (up + dn) / 2, up, dn
    if name in ("median", "quantile"):
        q = 0.5 if name == "median" else p[1]
        return (_window(c, n, lambda w: float(np.quantile(w, q))),)
    if name == "vwap":
        return (_window(np.arange(N), n, lambda i: fsum(tp[i] * v[i]) / fsum(v[i]) if fsum(v[i]) > 0 else np.nan),)
    if name == "rvol":
        r2 = np.r_[np.nan, np.log(c[1:] / c[:-1]) ** 2] if N else np.array([])
        return (_window(r2, n, lambda w: math.sqrt(fsum(w)), first=1),)
    if name in ("volume_ratio", "volume_spike"):
        ratio = np.full(N, np.nan)
        for t in range(n, N):
            avg = fsum(v[t - n : t]) / n
            ratio[t] = v[t] / avg if avg > 0 else np.nan
        if name == "volume_ratio":
            return (ratio,)
        return (np.where(np.isnan(ratio), np.nan, (ratio >= p[1]).astype(float)),)
    if name == "roc":
        return (np.array([np.nan if t < n else (c[t] / c[t - n] - 1) * 100 for t in range(N)]),)
    if name == "obv":
        sign = np.sign(np.diff(c))
        return (np.cumsum(np.r_[v[:1], sign * v[1:]]) if N else np.array([]),)
    if name == "cci":
        def cci(i: np.ndarray) -> float:
            w = tp[i]
            md = fsum(abs(w - mean(w))) / n
            return 0.0 if md <= 1e-12 * abs(mean(w)) or abs(tp[i[-1]] - mean(w)) <= 1e-12 * abs(mean(w)) else (tp[i[-1]] - mean(w)) / (0.015 * md)

        return (_window(np.arange(N), n, cci),)
    if name == "mfi":
        def mfi(i: np.ndarray) -> float:
            pos = fsum(tp[j] * v[j] for j in i if tp[j] > tp[j - 1])
            neg = fsum(tp[j] * v[j] for j in i if tp[j] < tp[j - 1])
            return 100 * pos / (pos + neg) if pos + neg > 0 else 50.0

        return (_window(np.arange(N), n, mfi, first=1),)
    if name in ("willr", "stoch"):
        hh, ll = _window(h, n, np.max), _window(lo, n, np.min)
        flat = hh == ll
        if name == "willr":
            return (np.where(flat, -50.0, -100 * (hh - c) / np.where(flat, 1, hh - ll)),)
        fast_k = np.where(flat, 50.0, 100 * (c - ll) / np.where(flat, 1, hh - ll))
        slow_k = _window(fast_k, int(p[1]), mean, first=n - 1)
        return slow_k, _window(slow_k, int(p[2]), mean, first=n - 1 + int(p[1]) - 1)
    if name == "macd":
        fast, slow, sig = (int(x) for x in p)
        slow_e = _ema_closed_form(c, slow, 2 / (slow + 1))
        fast_e = _shifted(_ema_closed_form(c[slow - fast :], fast, 2 / (fast + 1)), slow - fast, N)
        line = fast_e - slow_e
        signal = _shifted(_ema_closed_form(line[slow - 1 :], sig, 2 / (sig + 1)), slow - 1, N)
        return line, signal, line - signal
    return None  # adx, supertrend: TA-Lib and the textbook recursion below


# -- the tests ------------------------------------------------------------------------------------
INDICATORS = sorted(REGISTRY)


@pytest.mark.parametrize("name", INDICATORS)
@PROPERTY
@given(data=st.data())
def test_incremental_equals_batch_equals_formula(name: str, data: st.DataObject) -> None:
    spec = random_spec(data.draw, name)
    k = data.draw(candle_data())
    outputs = compute_all(spec, k)
    ref = reference(spec, k)
    for index, output in enumerate(spec.definition.outputs):
        one = IndicatorSpec(spec.name, spec.params, None, output)
        batch = compute(one, k)
        np.testing.assert_array_equal(batch, outputs[index])
        same(incremental(one, k), batch, f"{one}: incremental vs batch")
        if ref is not None:
            same(batch, np.asarray(ref[index], dtype=np.float64), f"{one}: batch vs formula")


def _talib(name: str, k: Candles, n: int) -> tuple[str, tuple[np.ndarray, ...]]:
    h, lo, c, v = k.high, k.low, k.close, k.volume
    table: dict[str, tuple[str, Callable[[], tuple[np.ndarray, ...]]]] = {
        "sma": (f"sma({n})", lambda: (talib.SMA(c, n),)),
        "ema": (f"ema({n})", lambda: (talib.EMA(c, n),)),
        "wma": (f"wma({n})", lambda: (talib.WMA(c, n),)),
        "rsi": (f"rsi({n})", lambda: (talib.RSI(c, n),)),
        "atr": (f"atr({n})", lambda: (talib.ATR(h, lo, c, n),)),
        "adx": (f"adx({n})", lambda: (talib.ADX(h, lo, c, n),)),
        "cci": (f"cci({n})", lambda: (talib.CCI(h, lo, c, n),)),
        "mfi": (f"mfi({n})", lambda: (talib.MFI(h, lo, c, v, n),)),
        "willr": (f"willr({n})", lambda: (talib.WILLR(h, lo, c, n),)),
        "roc": (f"roc({n})", lambda: (talib.ROC(c, n),)),
        "stddev": (f"stddev({n})", lambda: (talib.STDDEV(c, n, 1),)),
        "highest": (f"highest({n})", lambda: (talib.MAX(c, n),)),
        "lowest": (f"lowest({n})", lambda: (talib.MIN(c, n),)),
        "obv": ("obv", lambda: (talib.OBV(c, v),)),
        "bb": (f"bb({n}, 2.5)", lambda: tuple(np.array(talib.BBANDS(c, n, 2.5, 2.5, talib.MA_Type.SMA))[[1, 0, 2]])),
        "macd": (f"macd({n}, {n + 9}, 5)", lambda: talib.MACD(c, n, n + 9, 5)),
        "stoch": (f"stoch({n}, 3, 4)", lambda: talib.STOCH(h, lo, c, n, 3, talib.MA_Type.SMA, 4, talib.MA_Type.SMA)),
    }
    text, fn = table[name]
    return text, fn()


TALIB_NAMES = ["sma", "ema", "wma", "rsi", "atr", "adx", "cci", "mfi", "willr", "roc", "stddev",
               "highest", "lowest", "obv", "bb", "macd", "stoch"]  # fmt: skip


@pytest.mark.parametrize("name", TALIB_NAMES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 400), period=st.integers(2, 40))
def test_equals_talib_where_talib_has_it(name: str, seed: int, size: int, period: int) -> None:
    assert REGISTRY[name].talib is not None
    k = walk(seed, size)
    text, expected = _talib(name, k, period)
    spec = parse_operand(text)
    mine = compute_all(spec, k)
    for index, ref in enumerate(expected):
        ours = mine[index]
        defined = ~np.isnan(ref)
        # TA-Lib cuts every output at the last one's warm-up (MACD's line, stochastic's %K):
        # ours starts no later, and from where TA-Lib starts the values agree.
        assert not np.isnan(ours[defined]).any(), f"{text}[{index}] NaN where TA-Lib has a value"
        first = int(np.argmax(defined)) if defined.any() else size
        same(ours[first:], np.asarray(ref[first:], dtype=np.float64), f"{text}[{index}] vs TA-Lib")
        if spec.definition.outputs == ("value",) or index == len(expected) - 1:
            assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{text}: warm-up differs from TA-Lib's"


def _adx_textbook(k: Candles, n: int) -> np.ndarray:
    """Wilder's ADX, TA-Lib's seeding: DM/TR summed over the first n-1 changes, then s - s/n + x."""
    pdm = mdm = tr = 0.0
    dxs: list[float] = []
    out = np.full(len(k), np.nan)
    adx = np.nan
    for t in range(1, len(k)):
        up, down = k.high[t] - k.high[t - 1], k.low[t - 1] - k.low[t]
        plus = up if up > down and up > 0 else 0.0
        minus = down if down > up and down > 0 else 0.0
        true = max(k.high[t] - k.low[t], abs(k.high[t] - k.close[t - 1]), abs(k.low[t] - k.close[t - 1]))
        if t < n:
            pdm, mdm, tr = pdm + plus, mdm + minus, tr + true
            continue
        pdm, mdm, tr = pdm - pdm / n + plus, mdm - mdm / n + minus, tr - tr / n + true
        pdi, mdi = 100 * pdm / tr, 100 * mdm / tr
        dx = 100 * abs(pdi - mdi) / (pdi + mdi)
        if t < 2 * n - 1:
            dxs.append(dx)
        elif t == 2 * n - 1:
            adx = (fsum(dxs) + dx) / n
        else:
            adx = (adx * (n - 1) + dx) / n
        out[t] = adx
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 300), period=st.integers(2, 30))
def test_adx_equals_the_textbook_recursion(seed: int, size: int, period: int) -> None:
    k = walk(seed, size)
    same(compute(parse_operand(f"adx({period})"), k), _adx_textbook(k, period), "adx vs textbook")


def test_supertrend_follows_the_trend_and_flips_on_a_reversal() -> None:
    up = np.linspace(100, 200, 60)
    closes = np.r_[up, np.linspace(200, 120, 40)]
    k = Candles(np.arange(100) * 60_000, closes, closes + 1, closes - 1, closes, np.ones(100))
    value, direction = compute_all(parse_operand("supertrend(10, 3)"), k)
    assert np.isnan(direction[:10]).all() and direction[10] == -1.0  # starts down, as TradingView's
    assert (direction[20:60] == 1.0).all() and (value[20:60] < closes[20:60]).all()  # support below
    assert (direction[75:] == -1.0).all() and (value[75:] > closes[75:]).all()  # resistance above


def _aggregate(ticks: list[tuple[int, float, float]], ms: int) -> Candles:
    rows: dict[int, list[float]] = {}
    for ts, p, a in ticks:
        b = ts - ts % ms
        if b not in rows:
            rows[b] = [p, p, p, p, a]
        else:
            r = rows[b]
            r[1], r[2], r[3], r[4] = max(r[1], p), min(r[2], p), p, r[4] + a
    return Candles.from_rows([(b, *r) for b, r in rows.items()])


@pytest.mark.parametrize("text", ["sma(3)", "ema(4)", "rsi(3)", "macd(2, 4, 2).hist", "bb(3, 2).upper",
                                  "stoch(3, 2, 2).d", "adx(2)", "atr(2)", "quantile(4, 0.25)", "cci(3)",
                                  "mfi(3)", "supertrend(2, 1.5)", "volume", "high"])  # fmt: skip
@settings(max_examples=20, deadline=None)
@given(gaps=st.lists(st.integers(0, 40_000), min_size=1, max_size=60), moves=st.data())
def test_forming_value_on_every_trade_is_the_batch_value_over_the_candles_so_far(
    text: str, gaps: list[int], moves: st.DataObject
) -> None:
    spec = parse_operand(text, "1m")
    series = CandleSeries("1m")
    key = series.want(spec)
    ticks: list[tuple[int, float, float]] = []
    ts, price = 1_700_000_000_000, 100.0
    for gap in gaps:
        ts += gap
        price = round(price + moves.draw(st.sampled_from([0.0, 0.01, -0.01, 0.5, -0.5, 3.0])), 2)
        amount = moves.draw(st.sampled_from([0.0, 0.5, 2.0]))
        ticks.append((ts, price, amount))
        series.on_trade(ts, price, amount)
        out: dict[str, float] = {}
        series.read_into(out)
        expected = compute(spec, _aggregate(ticks, 60_000))[-1]
        assert (math.isnan(out[key]) and math.isnan(expected)) or math.isclose(
            out[key], expected, rel_tol=1e-9, abs_tol=1e-9
        ), (out[key], expected)


@settings(max_examples=20, deadline=None)
@given(k=candle_data(min_size=1, max_size=200), text=st.sampled_from(["sma(3, 15m)", "rsi(2, 5m)", "macd(2, 3, 2, 1h).signal", "close(1h)"]))
def test_a_longer_timeframe_over_short_candles_is_what_the_chart_showed_at_each_close(k: Candles, text: str) -> None:
    spec = parse_operand(text)
    got = compute_on(spec, k, "1m")
    series = CandleSeries(spec.timeframe or "1m")
    key = series.want(spec)
    for i in range(len(k)):
        # Feeding each 1m candle as its four trades builds the same longer candle.
        for p in (k.open[i], k.high[i], k.low[i], k.close[i]):
            series.on_trade(int(k.timestamp_ms[i]), float(p), float(k.volume[i]) / 4)
        out: dict[str, float] = {}
        series.read_into(out)
        assert (math.isnan(out[key]) and math.isnan(got[i])) or math.isclose(out[key], got[i], rel_tol=1e-9, abs_tol=1e-9)
    assert spec.timeframe is not None
    closed = compute(spec, resample(k, spec.timeframe))
    bucket = k.timestamp_ms - k.timestamp_ms % TIMEFRAME_MS[spec.timeframe]
    last_of_bucket = np.r_[bucket[1:] != bucket[:-1], True]
    same(got[last_of_bucket], closed, f"{text}: value at each longer close")


def test_resample_builds_utc_candles_and_a_gap_makes_none() -> None:
    ts = np.array([0, 60_000, 120_000, 3_600_000, 3_660_000, 10_800_000], dtype=np.int64)
    k = Candles(ts, np.array([1, 2, 3, 4, 5, 6.0]), np.array([2, 5, 3, 4, 9, 6.0]), np.array([1, 1, 0.5, 4, 5, 6.0]),
                np.array([2, 3, 2.5, 4, 8, 6.0]), np.ones(6))  # fmt: skip
    h = resample(k, "1h")
    assert h.timestamp_ms.tolist() == [0, 3_600_000, 10_800_000]
    assert h.open.tolist() == [1, 4, 6] and h.high.tolist() == [5, 9, 6] and h.low.tolist() == [0.5, 4, 6]
    assert h.close.tolist() == [2.5, 8, 6] and h.volume.tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="Unknown timeframe '2h'"):
        resample(k, "2h")


def test_a_candle_asked_for_later_starts_warm_from_the_kept_history() -> None:
    series = CandleSeries("1m")
    for minute in range(30):
        series.on_trade(minute * 60_000, 100.0 + minute, 1.0)
    key = series.want(parse_operand("sma(5)"))
    out: dict[str, float] = {}
    series.read_into(out)
    assert out[key] == pytest.approx(fsum([125.0, 126, 127, 128, 129]) / 5)
    assert series.closed[key] == pytest.approx(fsum([124.0, 125, 126, 127, 128]) / 5)
