"""The numpy recursions over long series (many blocks, every carry level): `linear_filter` against the
plain loop, EMA/RSI/ATR/ADX/MACD against TA-Lib and the incremental form over 200,000 candles, and a long
quiet stretch where Wilder's averages decay towards 0 (RSI divides by them)."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from services.signals.batch import _BLOCK, _CARRY_LOOP, linear_filter
from services.signals.candles import Candles, compute, compute_all, make_indicator, parse_operand


def walk(n: int, seed: int) -> Candles:
    rng = np.random.default_rng(seed)
    c = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n))), 2)
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + rng.uniform(0.0001, 0.002, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0.0001, 0.002, n))
    return Candles(np.arange(n, dtype=np.int64) * 60_000, o, h, lo, c, rng.uniform(1, 100, n))


def loop(x: np.ndarray, b: float, y0: float) -> np.ndarray:
    out, y = [], y0
    for v in x.tolist():
        y = b * y + v
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("b", [0.0, 1 / 3, 0.5, 12 / 13, 0.999, 1.0])
@pytest.mark.parametrize("n", [0, 1, _BLOCK - 1, _BLOCK, _BLOCK * _CARRY_LOOP + 5, _BLOCK**2 * _CARRY_LOOP * 2 + 7])
def test_linear_filter_is_the_loop(b: float, n: int) -> None:
    x = np.random.default_rng(n).normal(0, 1, n)
    got, want = linear_filter(x, b, 2.5), loop(x, b, 2.5)
    assert got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want)))) if n else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)


N = 200_000


@pytest.mark.parametrize(("text", "ref"), [
    ("ema(12)", lambda k: talib.EMA(k.close, 12)),
    ("ema(200)", lambda k: talib.EMA(k.close, 200)),
    ("rsi(14)", lambda k: talib.RSI(k.close, 14)),
    ("rsi(2)", lambda k: talib.RSI(k.close, 2)),
    ("atr(14)", lambda k: talib.ATR(k.high, k.low, k.close, 14)),
    ("adx(14)", lambda k: talib.ADX(k.high, k.low, k.close, 14)),
    ("macd(12, 26, 9)", lambda k: talib.MACD(k.close, 12, 26, 9)[0]),
    ("macd(12, 26, 9).signal", lambda k: talib.MACD(k.close, 12, 26, 9)[1]),
])  # fmt: skip
def test_long_series_equal_talib(text: str, ref) -> None:  # noqa: ANN001
    k = walk(N, 3)
    ours, theirs = compute(parse_operand(text), k), np.asarray(ref(k), dtype=np.float64)
    defined = ~np.isnan(theirs)
    first = int(np.argmax(defined))
    assert not np.isnan(ours[first:]).any()
    scale = float(np.max(np.abs(theirs[defined])))
    np.testing.assert_allclose(ours[first:], theirs[first:], rtol=1e-9, atol=1e-9 * scale, err_msg=text)


@pytest.mark.parametrize("text", ["ema(26)", "rsi(14)", "atr(14)", "adx(14)"])
def test_long_quiet_stretch_equals_the_incremental_form(text: str) -> None:
    """Moves, then 3,000 candles at one price (the averages of gains and losses decay for thousands of
    candles), then moves again: the batch values stay those of the candle-by-candle form."""
    k = walk(6_000, 5)
    c = k.close.copy()
    c[1_000:4_000] = c[999]
    o = np.r_[c[0], c[:-1]]
    flat = Candles(k.timestamp_ms, o, np.maximum(o, c), np.minimum(o, c), c, k.volume)
    spec = parse_operand(text)
    batch = compute_all(spec, flat)[spec.output_index]
    ind = make_indicator(spec.base)
    rows = zip(flat.open.tolist(), flat.high.tolist(), flat.low.tolist(), flat.close.tolist(), flat.volume.tolist(),
               strict=True)
    live = np.array([ind.push(*row)[spec.output_index] for row in rows])
    assert np.array_equal(np.isnan(batch), np.isnan(live))
    ok = ~np.isnan(live)
    np.testing.assert_allclose(batch[ok], live[ok], rtol=1e-9, atol=1e-9 * float(np.max(np.abs(live[ok]))))


def test_adx_from_a_flat_start_equals_the_incremental_form() -> None:
    """No directional move for the first 500 candles (DX undefined, ADX held), then a market: the loop
    part and the numpy part join where the last undefined DX is."""
    k = walk(3_000, 9)
    c = k.close.copy()
    c[:500] = c[500]
    o = np.r_[c[0], c[:-1]]
    h, lo = np.maximum(o, c), np.minimum(o, c)
    h[500:], lo[500:] = k.high[500:], k.low[500:]
    flat = Candles(k.timestamp_ms, o, np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c)), c, k.volume)
    spec = parse_operand("adx(5)")
    batch = compute(spec, flat)
    ind = make_indicator(spec.base)
    rows = zip(flat.open.tolist(), flat.high.tolist(), flat.low.tolist(), flat.close.tolist(), flat.volume.tolist(),
               strict=True)
    live = np.array([ind.push(*row)[0] for row in rows])
    assert np.array_equal(np.isnan(batch), np.isnan(live))
    ok = ~np.isnan(live)
    assert ok[100:].all()
    np.testing.assert_allclose(batch[ok], live[ok], rtol=1e-9, atol=1e-9 * 100)
