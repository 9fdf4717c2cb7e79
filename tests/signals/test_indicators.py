"""Every streaming indicator equals its batch definition recomputed from scratch on the same data.

Streams are random (hypothesis): random walks at several price magnitudes, same-millisecond
ticks, late ticks inside and beyond the tolerance, exact duplicates, and small windows so that
evictions, bar closes and warm-up boundaries all happen within a few dozen ticks.
Values are compared to 1e-9 relative to the price scale (differences of prices such as MACD or
a z-score's numerator have no meaningful relative error of their own when they cross zero).
"""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.market.types import Tick
from services.signals import EngineConfig, SignalEngine
from services.signals.indicators import SymbolIndicators, indicator_keys

CFG = EngineConfig(
    sma_period=5,
    ema_period=4,
    macd_fast=3,
    macd_slow=6,
    macd_signal=3,
    rsi_period=4,
    atr_period=3,
    bar_ms=1_000,
    stats_points=7,
    stats_horizon_ms=3_000,
    quantiles=(0.1, 0.9),
    vwap_horizon_ms=4_000,
    volume_spike_horizon_ms=1_000,
    rvol_points=5,
    late_tolerance_ms=2_000,
)
NAN = math.nan


# -- batch definitions, from scratch ------------------------------------------------------------
def ema_series(xs: list[float], n: int) -> list[float]:
    """EMA after each input (NaN before the first `n`), seeded with the SMA of the first n."""
    out = [NAN] * len(xs)
    if len(xs) < n:
        return out
    m = 2.0 / (n + 1.0)
    e = sum(xs[:n]) / n
    out[n - 1] = e
    for k in range(n, len(xs)):
        e = m * xs[k] + (1.0 - m) * e
        out[k] = e
    return out


def rsi_batch(xs: list[float], n: int) -> float:
    """Wilder's RSI, textbook form: first averages over the first n changes, then smoothing."""
    if len(xs) < n + 1:
        return NAN
    ch = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    ag = sum(max(c, 0.0) for c in ch[:n]) / n
    al = sum(max(-c, 0.0) for c in ch[:n]) / n
    for c in ch[n:]:
        ag = (ag * (n - 1) + max(c, 0.0)) / n
        al = (al * (n - 1) + max(-c, 0.0)) / n
    return 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)


def atr_batch(bars: list[tuple[float, float, float]], n: int) -> float:
    """Wilder ATR of closed bars (high, low, close); first TR is high - low."""
    if len(bars) < n:
        return NAN
    trs = [bars[0][0] - bars[0][1]]
    for (h, lo, _), (_, _, pc) in zip(bars[1:], bars, strict=False):
        trs.append(max(h - lo, abs(h - pc), abs(lo - pc)))
    atr = sum(trs[:n]) / n
    for tr in trs[n:]:
        atr = (atr * (n - 1) + tr) / n
    return atr


def quantile(sorted_xs: list[float], q: float) -> float:
    h = q * (len(sorted_xs) - 1)
    i = int(h)
    if i + 1 >= len(sorted_xs):
        return sorted_xs[i]
    return sorted_xs[i] + (sorted_xs[i + 1] - sorted_xs[i]) * (h - i)


class BatchModel:
    """The stated out-of-order policy, applied naively; indicators recomputed from scratch."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.accepted: list[tuple[int, int, float, float]] = []  # (ts, seq, price, amount)
        self.accepted_ticks: list[Tick] = []
        self.in_order: list[Tick] = []
        self.late_into_bar: list[Tick] = []  # late ticks that joined the then-open bar
        self.last_ts: int | None = None
        self.dropped = self.dups = self.invalid = 0

    def feed(self, tick: Tick) -> bool:
        ts = tick.timestamp_ms
        if self.last_ts is not None and ts < self.last_ts - self.cfg.late_tolerance_ms:
            self.dropped += 1
            return False
        if not (0.0 < tick.price < math.inf and 0.0 <= tick.amount < math.inf):
            self.invalid += 1
            return False
        if tick in self.accepted_ticks:  # anything it could equal is within the tolerance
            self.dups += 1
            return False
        self.accepted.append((ts, len(self.accepted), tick.price, tick.amount))
        self.accepted_ticks.append(tick)
        if self.last_ts is None or ts >= self.last_ts:
            self.in_order.append(tick)
            self.last_ts = ts
        elif ts // self.cfg.bar_ms == self.last_ts // self.cfg.bar_ms:
            self.late_into_bar.append(tick)
        return True

    def values(self) -> dict[str, float]:
        c = self.cfg
        out: dict[str, float] = {}
        by_time = sorted(self.accepted)  # (ts, seq): arrival breaks timestamp ties
        prices = [t.price for t in self.in_order]
        out["price"] = prices[-1]
        win = [p for _, _, p, _ in by_time[-c.sma_period :]]
        if len(by_time) >= c.sma_period:
            mean = statistics.fmean(win)
            std = statistics.pstdev(win)
            out.update(
                {
                    f"sma_{c.sma_period}": mean,
                    "bb_mid": mean,
                    "bb_upper": mean + c.bb_k * std,
                    "bb_lower": mean - c.bb_k * std,
                }
            )
            out["zscore"] = (win[-1] - mean) / std if std > 0 else 0.0
            out["_std"] = std
        else:
            for k in (f"sma_{c.sma_period}", "bb_mid", "bb_upper", "bb_lower", "zscore"):
                out[k] = NAN
            out["_std"] = NAN
        for n in (c.ema_period, c.macd_fast, c.macd_slow):
            out[f"ema_{n}"] = ema_series(prices, n)[-1]
        fast, slow = ema_series(prices, c.macd_fast), ema_series(prices, c.macd_slow)
        macd = [f - s for f, s in zip(fast, slow, strict=True)][c.macd_slow - 1 :]
        out["macd"] = macd[-1] if macd else NAN
        sig = ema_series(macd, c.macd_signal)[-1] if macd else NAN
        out["macd_signal"] = sig
        out["macd_hist"] = out["macd"] - sig if sig == sig else NAN
        out[f"rsi_{c.rsi_period}"] = rsi_batch(prices, c.rsi_period)
        # Bars: in-order ticks bucketed by bar, plus late ticks that arrived while their bar was open.
        buckets: dict[int, list[Tick]] = {}
        for t in self.in_order:
            buckets.setdefault(t.timestamp_ms // c.bar_ms, []).append(t)
        closed = []
        for b in sorted(buckets)[:-1]:
            ts_ = buckets[b] + [t for t in self.late_into_bar if t.timestamp_ms // c.bar_ms == b]
            closed.append((max(t.price for t in ts_), min(t.price for t in ts_), buckets[b][-1].price))
        out[f"atr_{c.atr_period}"] = atr_batch(closed, c.atr_period)
        newest = by_time[-1][0]
        stats_pts = by_time[-c.stats_points :]
        stats_pts = [x for x in stats_pts if x[0] > newest - c.stats_horizon_ms]
        vals = sorted(p for _, _, p, _ in stats_pts)
        out["median"] = statistics.median(vals)
        out["donchian_high"], out["donchian_low"] = vals[-1], vals[0]
        out["q10"], out["q90"] = quantile(vals, 0.1), quantile(vals, 0.9)
        flow = [x for x in by_time if x[0] > newest - c.vwap_horizon_ms]
        vol = math.fsum(a for *_, a in flow)
        out["vwap"] = math.fsum(p * a for _, _, p, a in flow) / vol
        short = math.fsum(a for ts, _, _, a in flow if ts > newest - c.volume_spike_horizon_ms)
        ratio = (short / c.volume_spike_horizon_ms) / (vol / c.vwap_horizon_ms)
        out["volume_ratio"] = ratio
        out["volume_spike"] = 1.0 if ratio >= c.volume_spike_ratio else 0.0
        rets = [math.log(b / a) for a, b in zip(prices, prices[1:], strict=False)][-c.rvol_points :]
        out["rvol"] = math.sqrt(math.fsum(r * r for r in rets)) if len(rets) == c.rvol_points else NAN
        return out


def close(a: float, b: float, scale: float) -> bool:
    if a != a or b != b:
        return a != a and b != b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


# -- streams --------------------------------------------------------------------------------------
@st.composite
def tick_streams(draw: st.DrawFn, min_size: int = 1, max_size: int = 40) -> list[Tick]:
    scale = draw(st.sampled_from([1e-4, 1.0, 250.0, 65_000.0, 3e7]))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["next", "next", "next", "same", "late", "too_late", "dup", "bad"]),
                st.integers(1, 1_500),  # forward step / lateness in ms
                st.floats(-0.02, 0.02),  # log price move
                st.floats(0.001, 50.0),  # amount
            ),
            min_size=min_size,
            max_size=max_size,
        )
    )
    ticks: list[Tick] = []
    ts, price = 1_000_000, scale
    for kind, dt, move, amount in steps:
        price *= math.exp(move)
        if kind == "dup" and ticks:
            ticks.append(ticks[draw(st.integers(0, len(ticks) - 1))])
            continue
        if kind == "bad":  # in order or late, with a price or amount no feed should send
            bad_price, bad_amount = draw(
                st.sampled_from(
                    [(math.nan, 1.0), (-price, 1.0), (0.0, 1.0), (price, -1.0), (price, math.inf)]
                )
            )
            ticks.append(Tick("X/USDT", ts + (dt if move > 0 else -min(dt, 2_000)), bad_price, bad_amount))
            continue
        if kind == "next":
            ts += dt
            t = ts
        elif kind == "same":
            t = ts
        elif kind == "late":
            t = ts - min(dt, 2_000)
        else:
            t = ts - 2_001 - dt
        ticks.append(Tick("X/USDT", t, price, amount))
    return ticks


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(tick_streams(1, 40), tick_streams(60, 160)))
def test_every_indicator_equals_its_batch_definition_after_every_tick(ticks: list[Tick]) -> None:
    ind = SymbolIndicators("X/USDT", CFG)
    model = BatchModel(CFG)
    for tick in ticks:
        accepted = ind.update(tick)
        assert accepted == model.feed(tick)
        if not model.in_order:
            continue
        got, want = ind.read(), model.values()
        scale = abs(want["price"])
        for key in indicator_keys(CFG):
            if key == "zscore" and not want["_std"] >= 1e-6 * scale:
                continue  # (x - mean) / std carries an error of ~eps * price / std by definition
            if key in ("volume_spike",) and abs(want["volume_ratio"] - CFG.volume_spike_ratio) < 1e-9:
                continue  # on the threshold itself either side is a correct rounding
            tol_scale = (
                scale if key not in ("rsi_4", "zscore", "volume_ratio", "volume_spike", "rvol") else 1.0
            )
            assert close(got[key], want[key], tol_scale), (key, got[key], want[key], tick)
    counters = ind.counters()
    assert counters.late_dropped == model.dropped
    assert counters.duplicates == model.dups
    assert counters.invalid == model.invalid


def test_indicators_are_nan_until_their_window_fills_then_defined() -> None:
    engine = SignalEngine(config=CFG)
    engine.on_tick(Tick("A", 1_000, 10.0, 1.0))
    snap = engine.snapshot("A")
    assert set(snap) == set(indicator_keys(CFG))
    assert math.isnan(snap["sma_5"]) and math.isnan(snap["rsi_4"]) and math.isnan(snap["macd_signal"])
    assert snap["price"] == 10.0 and snap["vwap"] == 10.0
    for k in range(1, 20):
        engine.on_tick(Tick("A", 1_000 + 700 * k, 10.0 + (k % 3), 1.0))
    snap = engine.snapshot("A")
    assert all(not math.isnan(v) for v in snap.values()), snap


def test_matches_talipp_value_for_value_on_a_long_stream() -> None:
    """The benchmark's claim, in small: same inputs, same warm-up, same numbers as talipp."""
    talipp = pytest.importorskip("talipp.indicators")
    from talipp.ohlcv import OHLCV

    cfg = EngineConfig(stats_points=0, vwap_horizon_ms=0, rvol_points=0)
    ind = SymbolIndicators("A", cfg)
    sma, ema, rsi = talipp.SMA(20), talipp.EMA(20), talipp.RSI(14)
    macd, bb, atr = talipp.MACD(12, 26, 9), talipp.BB(20, 2.0), talipp.ATR(14)
    import random

    rng = random.Random(7)
    price, ts, bar = 30_000.0, 0, None
    worst = 0.0
    for _ in range(5_000):
        ts += rng.randint(0, 3_000)
        price *= math.exp(rng.gauss(0, 0.001))
        ind.update(Tick("A", ts, price, 1.0))
        for x in (sma, ema, rsi, macd, bb):
            x.add(price)
        start = ts - ts % 60_000
        if bar is None or start != bar[0]:
            if bar is not None:
                atr.add(OHLCV(bar[1], bar[2], bar[3], bar[4], 0.0))
            bar = [start, price, price, price, price]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
        v = ind.read()
        pairs = [
            (v["sma_20"], sma[-1]),
            (v["ema_20"], ema[-1]),
            (v["rsi_14"], rsi[-1]),
            (v["atr_14"], atr[-1] if len(atr) else None),
        ]
        if macd[-1] is not None:
            pairs += [
                (v["macd"], macd[-1].macd),
                (v["macd_signal"], macd[-1].signal),
                (v["macd_hist"], macd[-1].histogram),
            ]
        if bb[-1] is not None:
            pairs += [(v["bb_upper"], bb[-1].ub), (v["bb_lower"], bb[-1].lb)]
        for mine, theirs in pairs:
            if theirs is None:
                assert math.isnan(mine)
            else:
                worst = max(worst, abs(mine - theirs) / abs(theirs) if theirs else abs(mine))
    assert worst < 1e-9
