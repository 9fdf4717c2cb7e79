"""Benchmark: services.signals against talipp, pandas, bottleneck and river, measured in one run.

    python bench/signals.py                 # 1,000,000 ticks over 100 symbols (about a minute)
    python bench/signals.py --ticks 100000 --candles 200000  # quick check

Per tick, every library gets the same inputs: the trade price for SMA(20), EMA(20), RSI(14),
MACD(12, 26, 9) and Bollinger(20, 2); ATR(14) gets each closed 1-minute bar built from the same
ticks. Warm-up follows talipp (the engine is written to): SMA/Bollinger from the 20th price, EMA
seeded with the SMA of its first `period` prices, RSI from the 15th price (Wilder), MACD's signal
seeded with the SMA of the first 9 MACD values, ATR from the 14th bar (first TR = high - low).
Candle indicators: the batch form over `--candles` 1-minute candles for a 3-indicator strategy
(EMA 12, EMA 26, RSI 14: the backtester's path) and for MACD(12, 26, 9) + ATR 14 + ADX 14 against
TA-Lib's C on the same arrays, and the live
engine with candle rules (EMA 12/26 cross on 1m, RSI 14 on 5m, Bollinger 20 on 1m) per tick.
Times are this process's CPU time (time.process_time), so other processes sharing the cores do
not count against either side; engine and talipp also run interleaved chunk by chunk, so cache
and frequency effects hit both alike. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bottleneck  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import talib  # noqa: E402
from river import stats as river_stats  # noqa: E402
from talipp.indicators import ATR, BB, EMA, MACD, RSI, SMA  # noqa: E402
from talipp.ohlcv import OHLCV  # noqa: E402

from services.market.types import Tick  # noqa: E402
from services.signals import EngineConfig, RollingQuantile, Rule, SignalEngine, default_rules  # noqa: E402
from services.signals.candles import Candles, compute, parse_operand  # noqa: E402

BAR_MS = 60_000
# Exactly talipp's indicator set: the order-statistics, VWAP/volume and realised-vol groups off.
TALIPP_SET = EngineConfig(stats_points=0, vwap_horizon_ms=0, rvol_points=0)


def make_stream(n: int, n_symbols: int, seed: int) -> list[Tick]:
    """Seeded trades: each symbol a log-normal random walk at its own price level."""
    rng = random.Random(seed)
    symbols = [f"S{k:03d}/USDT" for k in range(n_symbols)]
    price = {s: 10 ** rng.uniform(-2, 4.8) for s in symbols}
    ticks = []
    ts = 1_700_000_000_000
    for _ in range(n):
        ts += int(rng.expovariate(1 / 10))  # ~100 trades/s over all symbols
        s = symbols[rng.randrange(n_symbols)]
        p = price[s] = price[s] * math.exp(rng.gauss(0.0, 0.0008))
        ticks.append(Tick(s, ts, p, rng.expovariate(1.0), "buy" if rng.random() < 0.5 else "sell"))
    return ticks


class TalippSymbol:
    """talipp's indicators for one symbol, plus the bar builder feeding its ATR."""

    __slots__ = ("sma", "ema", "rsi", "macd", "bb", "atr", "bar")

    def __init__(self) -> None:
        self.sma, self.ema, self.rsi = SMA(20), EMA(20), RSI(14)
        self.macd, self.bb, self.atr = MACD(12, 26, 9), BB(20, 2.0), ATR(14)
        self.bar: list[float] | None = None  # [start, open, high, low, close, volume]


def run_talipp(chunk: list[Tick], state: dict[str, TalippSymbol]) -> None:
    for t in chunk:
        sym = state.get(t.symbol)
        if sym is None:
            sym = state[t.symbol] = TalippSymbol()
        p = t.price
        sym.sma.add(p)
        sym.ema.add(p)
        sym.rsi.add(p)
        sym.macd.add(p)
        sym.bb.add(p)
        start = t.timestamp_ms - t.timestamp_ms % BAR_MS
        bar = sym.bar
        if bar is None or start != bar[0]:
            if bar is not None:
                sym.atr.add(OHLCV(bar[1], bar[2], bar[3], bar[4], bar[5]))
            sym.bar = [start, p, p, p, p, t.amount]
        else:
            if p > bar[2]:
                bar[2] = p
            if p < bar[3]:
                bar[3] = p
            bar[4] = p
            bar[5] += t.amount


def run_engine(chunk: list[Tick], engine: SignalEngine) -> None:
    on_tick = engine.on_tick
    for t in chunk:
        on_tick(t)


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    fn(*args)
    return time.process_time() - t0


def rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def compare_with_talipp(ticks: list[Tick], talipp: dict[str, TalippSymbol], symbols: list[str]) -> float:
    """Replay `symbols` through a fresh engine and compare every value after every tick."""
    worst = 0.0
    for symbol in symbols:
        engine = SignalEngine(config=TALIPP_SET)
        ref = talipp[symbol]
        k = closed = 0
        bar_start: int | None = None
        for t in ticks:
            if t.symbol != symbol:
                continue
            engine.on_tick(t)
            v = engine.snapshot(symbol)
            pairs = [(v["sma_20"], ref.sma[k]), (v["ema_20"], ref.ema[k]), (v["rsi_14"], ref.rsi[k])]
            m, b = ref.macd[k], ref.bb[k]
            if m is not None:
                pairs += [(v["macd"], m.macd), (v["macd_signal"], m.signal), (v["macd_hist"], m.histogram)]
            if b is not None:
                pairs += [(v["bb_upper"], b.ub), (v["bb_mid"], b.cb), (v["bb_lower"], b.lb)]
            # A bar closes when the next one opens, for talipp's ATR as for the engine's.
            start = t.timestamp_ms - t.timestamp_ms % BAR_MS
            if bar_start is not None and start != bar_start:
                closed += 1
            bar_start = start
            if closed:
                pairs.append((v["atr_14"], ref.atr[closed - 1]))
            for mine, theirs in pairs:
                if theirs is None:
                    if not math.isnan(mine):
                        raise AssertionError(f"{symbol} tick {k}: engine has {mine}, talipp has no value yet")
                else:
                    worst = max(worst, rel(mine, theirs))
            k += 1
    return worst


def run_pandas(
    chunk: list[Tick], history: dict[str, list[float]], bars: dict[str, list[list[float]]]
) -> None:
    """What a naive dashboard does: recompute every indicator with pandas over the recent tail."""
    for t in chunk:
        h = history.setdefault(t.symbol, [])
        h.append(t.price)
        s = pd.Series(h[-300:])
        sma = s.rolling(20).mean()
        std = s.rolling(20).std(ddof=0)
        ema = s.ewm(span=20, adjust=False).mean()
        macd = s.ewm(span=12, adjust=False).mean() - s.ewm(span=26, adjust=False).mean()
        signal = macd.ewm(span=9, adjust=False).mean()
        delta = s.diff()
        gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
        _ = (
            sma.iat[-1] + 2 * std.iat[-1],
            ema.iat[-1],
            signal.iat[-1],
            100 - 100 / (1 + gain.iat[-1] / loss.iat[-1]),
        )
        b = bars.setdefault(t.symbol, [])
        start = t.timestamp_ms - t.timestamp_ms % BAR_MS
        if not b or b[-1][0] != start:
            if len(b) >= 2:
                df = pd.DataFrame(b, columns=["t", "h", "l", "c"])
                tr = pd.concat(
                    [df.h - df.l, (df.h - df.c.shift()).abs(), (df.l - df.c.shift()).abs()], axis=1
                ).max(axis=1)
                _ = tr.ewm(alpha=1 / 14, adjust=False).mean().iat[-1]
            b.append([start, t.price, t.price, t.price])
        else:
            b[-1][1] = max(b[-1][1], t.price)
            b[-1][2] = min(b[-1][2], t.price)
            b[-1][3] = t.price


def bench_median(series: list[float], window: int, reps: int) -> tuple[float, float, float, float]:
    """(ours us/pt, bottleneck us/pt, ours per-call update us/pt, max rel diff), best of `reps`.

    bottleneck gets the whole array at once (its best case); the engine streams it through
    `update_many` in chunks of 50,000, as a replay would, checking every output against
    bottleneck's as it goes (outside the timed sections).
    """
    arr = np.asarray(series)
    ref = bottleneck.move_median(arr, window)
    best_ours = best_bn = best_call = math.inf
    diff = 0.0
    chunk = 50_000
    for _ in range(reps):
        t_bn = timed(bottleneck.move_median, arr, window)
        ours = RollingQuantile(0.5, window)
        t_ours = 0.0
        for start in range(0, len(series), chunk):
            part = series[start : start + chunk]
            t0 = time.process_time()
            mine = ours.update_many(part)
            t_ours += time.process_time() - t0
            lo = max(start, window - 1)  # bottleneck is NaN until the window is full
            for a, b in zip(mine[lo - start :], ref[lo : start + chunk], strict=True):
                diff = max(diff, rel(a, float(b)))
        call = RollingQuantile(0.5, window)
        update = call.update
        t0 = time.process_time()
        for x in series:
            update(x)
        t_call = time.process_time() - t0
        best_ours, best_bn, best_call = min(best_ours, t_ours), min(best_bn, t_bn), min(best_call, t_call)
    n = len(series)
    return best_ours / n * 1e6, best_bn / n * 1e6, best_call / n * 1e6, diff


def bench_quantile(values: list[float], window: int, measured: int, chunk: int) -> tuple[float, float, float]:
    """Rolling 0.9-quantile, steady state: fill both windows (untimed), then time `measured` updates."""
    ours = RollingQuantile(0.9, window)
    river = river_stats.RollingQuantile(0.9, window)
    ours.update_many(values[:window])
    river_update = river.update
    for x in values[:window]:
        river_update(x)
    t_ours = t_river = 0.0
    diff = 0.0
    rest = values[window : window + measured]
    for start in range(0, len(rest), chunk):
        part = rest[start : start + chunk]
        t0 = time.process_time()
        mine = ours.update_many(part)
        t_ours += time.process_time() - t0
        theirs: list[float] = []  # river's get() is typed Optional; it is a number once the window is full
        get = river.get
        t0 = time.process_time()
        for x in part:
            river_update(x)
            theirs.append(get())  # type: ignore[arg-type]
        t_river += time.process_time() - t0
        diff = max(diff, max(rel(a, b) for a, b in zip(mine, theirs, strict=True)))
    return t_ours / len(rest) * 1e6, t_river / len(rest) * 1e6, diff


CANDLE_SETS = {
    "EMA12+EMA26+RSI14": (("ema(12)", "ema(26)", "rsi(14)"),
                          lambda k: [talib.EMA(k.close, 12), talib.EMA(k.close, 26), talib.RSI(k.close, 14)]),
    "MACD+ATR14+ADX14": (("macd(12, 26, 9)", "macd(12, 26, 9).signal", "atr(14)", "adx(14)"),
                         lambda k: [*talib.MACD(k.close, 12, 26, 9)[:2], talib.ATR(k.high, k.low, k.close, 14),
                                    talib.ADX(k.high, k.low, k.close, 14)]),
}


def bench_candle_batch(n: int, seed: int, which: str) -> tuple[float, float, float]:
    """(candles/s of our batch form, TA-Lib's candles/s, max diff relative to each series' largest value)
    for one of CANDLE_SETS."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.r_[close[0], close[:-1]]
    candles = Candles(
        np.arange(n, dtype=np.int64) * BAR_MS,
        open_,
        np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n)),
        np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n)),
        close,
        rng.uniform(1, 10, n),
    )
    texts, reference = CANDLE_SETS[which]
    specs = [parse_operand(t) for t in texts]
    best_ours = best_talib = math.inf
    diff = 0.0
    for _ in range(3):
        t0 = time.process_time()
        ours = [compute(spec, candles) for spec in specs]
        best_ours = min(best_ours, time.process_time() - t0)
        t0 = time.process_time()
        theirs = reference(candles)
        best_talib = min(best_talib, time.process_time() - t0)
        for a, b in zip(ours, theirs, strict=True):
            ok = ~np.isnan(b)
            diff = max(diff, float(np.max(np.abs(a[ok] - b[ok]))) / float(np.max(np.abs(b[ok]))))
    return n / best_ours, n / best_talib, diff


def bench_candle_engine(ticks: list[Tick]) -> tuple[float, int]:
    """(us per tick, signals) of the live engine running candle rules only."""
    rules = [
        Rule(id="cross", name="EMA 12 crosses EMA 26 (1m)", direction="buy",
             when={"op": "cross_above", "left": "ema(12)", "right": "ema(26)"}),
        Rule(id="oversold", name="RSI 5m < 30", direction="buy",
             when={"op": "lt", "left": "rsi(14, 5m)", "right": 30}),
        Rule(id="band", name="close above the 1m upper band", direction="sell",
             when={"op": "gt", "left": "close", "right": "bb(20, 2).upper"}),
    ]  # fmt: skip
    engine = SignalEngine(rules=rules, config=TALIPP_SET)
    on_tick = engine.on_tick
    fired = 0
    t0 = time.process_time()
    for t in ticks:
        fired += len(on_tick(t))
    return (time.process_time() - t0) / len(ticks) * 1e6, fired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20_240_601)
    ap.add_argument("--pandas-ticks", type=int, default=2_000, help="pandas recomputes per tick: a sample")
    ap.add_argument("--median-window", type=int, default=1_000)
    ap.add_argument("--quantile-window", type=int, default=500_000)
    ap.add_argument("--quantile-measured", type=int, default=20_000)
    ap.add_argument("--candles", type=int, default=1_051_200, help="1m candles for the batch form (2 years)")
    args = ap.parse_args()

    t0 = time.process_time()
    ticks = make_stream(args.ticks, args.symbols, args.seed)
    print(
        f"stream: {len(ticks):,} ticks over {args.symbols} symbols, seed {args.seed} ({time.process_time() - t0:.1f} s CPU)"
    )
    gc.collect()
    gc.freeze()  # the stream lives for the whole run: keep the collector off it

    # The order-statistics structures run first, on a fresh heap: after talipp has allocated and
    # freed a gigabyte of small objects, new Python floats land scattered in memory and cost
    # the pure-Python side cache misses that are talipp's doing, not the structure's.
    # 1. Rolling median vs bottleneck (batch, in C). The series: each symbol's prices in turn.
    by_symbol: dict[str, list[float]] = {}
    for t in ticks:
        by_symbol.setdefault(t.symbol, []).append(t.price)
    # Each side gets the data in its natural form: bottleneck a float64 array, the engine a list
    # of Python floats made from that array (fresh, contiguous objects, as a replay would load).
    series = np.array([p for s in sorted(by_symbol) for p in by_symbol[s]]).tolist()
    median_us, bn_us, median_call_us, median_diff = bench_median(series, args.median_window, reps=3)

    # 2. Rolling 0.9-quantile over a huge window vs river (Rust inside).
    rng = random.Random(args.seed)
    qvals = [rng.gauss(0.0, 1.0) for _ in range(args.quantile_window + args.quantile_measured)]
    q_us, river_us, q_diff = bench_quantile(qvals, args.quantile_window, args.quantile_measured, chunk=2_000)

    del series, qvals, by_symbol
    gc.collect()

    # 3. Engine vs talipp, interleaved in chunks.
    engine = SignalEngine(config=TALIPP_SET)
    talipp: dict[str, TalippSymbol] = {}
    t_engine = t_talipp = 0.0
    # Small chunks that stay in cache, and alternating who goes first: the first reader of a
    # chunk pays for fetching the ticks from memory.
    chunk = 5_000
    for k, start in enumerate(range(0, len(ticks), chunk)):
        part = ticks[start : start + chunk]
        if k % 2:
            t_talipp += timed(run_talipp, part, talipp)
            t_engine += timed(run_engine, part, engine)
        else:
            t_engine += timed(run_engine, part, engine)
            t_talipp += timed(run_talipp, part, talipp)
    engine_us = t_engine / len(ticks) * 1e6
    talipp_us = t_talipp / len(ticks) * 1e6
    sample_symbols = sorted(talipp)[:10]  # every value after every tick; last values for all
    talipp_diff = compare_with_talipp(ticks, talipp, sample_symbols)
    final_diff = 0.0
    for symbol, ref in talipp.items():  # last values of every symbol
        v = engine.snapshot(symbol)
        for mine, theirs in (
            (v["sma_20"], ref.sma[-1]),
            (v["ema_20"], ref.ema[-1]),
            (v["rsi_14"], ref.rsi[-1]),
        ):
            if theirs is not None:
                final_diff = max(final_diff, rel(mine, theirs))
        if ref.macd[-1] is not None and ref.macd[-1].signal is not None:
            final_diff = max(final_diff, rel(v["macd_signal"], ref.macd[-1].signal))
        if ref.bb[-1] is not None:
            final_diff = max(final_diff, rel(v["bb_upper"], ref.bb[-1].ub), rel(v["bb_lower"], ref.bb[-1].lb))
    talipp_diff = max(talipp_diff, final_diff)
    del talipp
    gc.collect()
    if talipp_diff > 1e-9:
        raise SystemExit(f"engine and talipp disagree: max relative difference {talipp_diff:.3g} > 1e-9")

    # 4. The full engine (every indicator + the default rules), for the record.
    full = SignalEngine(rules=default_rules())
    sample = ticks[: min(len(ticks), 200_000)]
    fired = 0
    t_full = time.process_time()
    for t in sample:
        fired += len(full.on_tick(t))
    full_us = (time.process_time() - t_full) / len(sample) * 1e6

    # 5. Candle indicators: batch (the backtester's) and live with candle rules.
    batch_cps, talib_cps, batch_diff = bench_candle_batch(args.candles, args.seed, "EMA12+EMA26+RSI14")
    batch2_cps, talib2_cps, batch2_diff = bench_candle_batch(args.candles, args.seed, "MACD+ATR14+ADX14")
    candle_us, candle_fired = bench_candle_engine(sample)

    # 6. pandas recomputation per tick, on the first ticks of the same stream (it is slow).
    n_pd = min(args.pandas_ticks, len(ticks))
    pd_sample = ticks[:n_pd]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # RSI's 0/0 on flat stretches, harmless here
        t_pd = timed(run_pandas, pd_sample, {}, {})
    pandas_us = t_pd / n_pd * 1e6

    rows = [
        (
            "engine, talipp's set (per tick)",
            engine_us,
            "talipp 2.x",
            talipp_us,
            talipp_us / engine_us,
            ">= 15x",
            talipp_diff,
        ),
        (
            "engine, talipp's set (per tick)",
            engine_us,
            f"pandas recompute ({n_pd:,} ticks)",
            pandas_us,
            pandas_us / engine_us,
            ">= 100x",
            math.nan,
        ),
        (
            "engine, all indicators + rules",
            full_us,
            f"({fired} signals on {len(sample):,} ticks)",
            math.nan,
            math.nan,
            "",
            math.nan,
        ),
        (
            f"candle batch, EMA12+EMA26+RSI14 ({args.candles:,})",
            1e6 / batch_cps,
            "TA-Lib (C), same three",
            1e6 / talib_cps,
            batch_cps / talib_cps,
            "",
            batch_diff,
        ),
        (
            f"candle batch, MACD+ATR14+ADX14 ({args.candles:,})",
            1e6 / batch2_cps,
            "TA-Lib (C), same four",
            1e6 / talib2_cps,
            batch2_cps / talib2_cps,
            "",
            batch2_diff,
        ),
        (
            "engine, candle rules only (per tick)",
            candle_us,
            f"({candle_fired} signals on {len(sample):,} ticks)",
            math.nan,
            math.nan,
            "",
            math.nan,
        ),
        (
            f"median, {args.median_window:,} pts (update_many)",
            median_us,
            "bottleneck.move_median",
            bn_us,
            median_us / bn_us,
            "<= 10x slower",
            median_diff,
        ),
        (
            f"median, {args.median_window:,} pts (update/call)",
            median_call_us,
            "bottleneck.move_median",
            bn_us,
            median_call_us / bn_us,
            "",
            math.nan,
        ),
        (
            f"0.9-quantile, {args.quantile_window:,} pts",
            q_us,
            "river RollingQuantile",
            river_us,
            river_us / q_us,
            ">= 5x",
            q_diff,
        ),
    ]
    print(
        f"\n{'measure':<40} {'us/op':>9}  {'reference':<32} {'us/op':>9} {'ratio':>8}  {'target':<14} {'max rel diff':>12}"
    )
    for name, mine, ref_name, ref, ratio, target, diff in rows:
        print(
            f"{name:<40} {mine:>9.3f}  {ref_name:<32} {ref:>9.3f} {ratio:>8.2f}  {target:<14} {diff:>12.3g}"
        )
    print(
        json.dumps(
            {
                "ticks": len(ticks),
                "engine_us_per_tick": round(engine_us, 4),
                "talipp_us_per_tick": round(talipp_us, 4),
                "speedup_vs_talipp": round(talipp_us / engine_us, 2),
                "speedup_vs_pandas": round(pandas_us / engine_us, 1),
                "median_slowdown_vs_bottleneck": round(median_us / bn_us, 2),
                "quantile_speedup_vs_river": round(river_us / q_us, 2),
                "max_rel_diff_vs_talipp": talipp_diff,
                "engine_full_us_per_tick": round(full_us, 3),
                "candle_batch_candles_per_s": round(batch_cps),
                "candle_batch_vs_talib": round(batch_cps / talib_cps, 4),
                "candle_batch2_candles_per_s": round(batch2_cps),
                "candle_batch2_vs_talib": round(batch2_cps / talib2_cps, 4),
                "candle_engine_us_per_tick": round(candle_us, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
