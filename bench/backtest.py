"""Benchmark: the backtester against backtesting.py and vectorbt on the same strategies and candles.

    python bench/backtest.py                    # 1,051,200 1-minute candles (two years), a few minutes
    python bench/backtest.py --candles 100000   # quick check

Strategies: the shipped `assets/strategies/sma-cross.json` (SMA 10/20 cross, long only, all in) and a
3-indicator one (EMA 12/26 cross up while RSI 14 < 70 buys, EMA cross down sells). Data: a seeded
geometric random walk of 1-minute candles. Our time is one whole `backtest()` (indicators, signals, fills
through the order book and the ledger, equity curve, figures), best of --repeat runs, CPU time of this
process (time.process_time), so other processes on the shared cores do not count. backtesting.py runs the
same rules (its own pandas SMA; TA-Lib's EMA and RSI: independent indicator code) with the same next-open
fills, fee 0, and a cash so large its whole-unit sizing never skips a trade; its trade list is compared with
ours (entry/exit candle and price). vectorbt (warm, numba compiled) runs `Portfolio.from_signals` with its
own indicators, signals shifted one candle and filled at the open. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from services.backtest import Candles, backtest, check_operand, load_strategy, make_candles, parse_strategy  # noqa: E402

EMA_RSI = {
    "name": "EMA 12/26 cross filtered by RSI 14",
    "positions": "long",
    "buy": {"all": [{"cross_above": ["ema(12)", "ema(26)"]}, {"lt": ["rsi(14)", 70]}]},
    "sell": {"cross_below": ["ema(12)", "ema(26)"]},
}


def synthetic_candles(n: int, seed: int = 7) -> Candles:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.0004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.0004, n)))
    # Prices on a 0.01 grid, as an exchange prints them (and as a CSV would carry them).
    open_, high, low, close = (np.round(x, 2) for x in (open_, high, low, close))
    high, low = np.maximum.reduce([high, open_, close]), np.minimum.reduce([low, open_, close])
    ts = 1_704_067_200_000 + 60_000 * np.arange(n, dtype=np.int64)
    return make_candles(ts, open_, high, low, close, rng.uniform(1, 10, n))


def cpu(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def backtesting_py(candles: Candles, kind: str) -> tuple[float, list[tuple[int, int, float, float]]]:
    import talib
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    index = pd.to_datetime(candles.timestamp_ms, unit="ms")
    df = pd.DataFrame({"Open": candles.open, "High": candles.high, "Low": candles.low, "Close": candles.close,
                       "Volume": candles.volume}, index=index)

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.a = self.I(SMA, self.data.Close, 10)
            self.b = self.I(SMA, self.data.Close, 20)

        def next(self) -> None:
            if crossover(self.a, self.b):
                if not self.position:
                    self.buy()
            elif crossover(self.b, self.a):
                self.position.close()

    class EmaRsi(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            close = np.asarray(self.data.Close, dtype=float)
            self.a = self.I(talib.EMA, close, 12)
            self.b = self.I(talib.EMA, close, 26)
            self.r = self.I(talib.RSI, close, 14)

        def next(self) -> None:
            if crossover(self.a, self.b) and self.r[-1] < 70:
                if not self.position:
                    self.buy()
            elif crossover(self.b, self.a):
                self.position.close()

    strategy = SmaCross if kind == "sma" else EmaRsi
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(df, strategy, cash=1e15, commission=0, finalize_trades=False)
        t0 = time.process_time()
        stats = bt.run()
        elapsed = time.process_time() - t0
    ms = candles.timestamp_ms
    pos = {int(t): i for i, t in enumerate(ms)}
    trades = [(pos[int(pd.Timestamp(r.EntryTime).value // 1_000_000)], pos[int(pd.Timestamp(r.ExitTime).value // 1_000_000)],
               float(r.EntryPrice), float(r.ExitPrice)) for r in stats["_trades"].itertuples()]
    return elapsed, trades


def vectorbt_time(candles: Candles, kind: str) -> float | None:
    try:
        import vectorbt as vbt
    except ImportError:
        return None
    close = pd.Series(candles.close)
    open_ = pd.Series(candles.open)

    def go() -> Any:
        if kind == "sma":
            fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 20)
            entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        else:
            fast, slow = vbt.MA.run(close, 12, ewm=True), vbt.MA.run(close, 26, ewm=True)
            rsi = vbt.RSI.run(close, 14)
            entries = fast.ma_crossed_above(slow) & rsi.rsi_below(70)
            exits = fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries.shift(1, fill_value=False), exits.shift(1, fill_value=False),
                                        price=open_, init_cash=10_000, fees=0.0, freq="1min")
        return pf.total_return()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        go()  # compile
        elapsed, _ = cpu(go, 2)
    return elapsed


def agreement(ours: list[tuple[int, int, float, float]], theirs: list[tuple[int, int, float, float]]) -> float:
    """Share of trades (of the longer list) that appear in both with the same candles and prices."""
    mine = {(a, b, round(p, 8), round(q, 8)) for a, b, p, q in ours}
    other = {(a, b, round(p, 8), round(q, 8)) for a, b, p, q in theirs}
    return len(mine & other) / max(len(mine), len(other), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=1_051_200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-backtesting-py", action="store_true")
    args = parser.parse_args()
    candles = synthetic_candles(args.candles)
    n = len(candles)
    strategies = {
        "sma": load_strategy(ROOT / "assets/strategies/sma-cross.json", check_operand=check_operand),
        "ema_rsi": parse_strategy(EMA_RSI, check_operand=check_operand),
    }
    out: dict[str, Any] = {"candles": n, "strategies": {}}
    for kind, strategy in strategies.items():
        ours_s, result = cpu(lambda s=strategy: backtest(s, candles, cash=Decimal(10_000), fee=0.0), args.repeat)
        row: dict[str, Any] = {"seconds": round(ours_s, 4), "candles_per_s": round(n / ours_s),
                               "trades": len(result.trades)}
        print(f"{kind}: ours {ours_s:.3f} s ({n / ours_s:,.0f} candles/s), {len(result.trades)} trades", flush=True)
        if not args.skip_backtesting_py:
            theirs_s, theirs = backtesting_py(candles, kind)
            ours_trades = [(t.entry_index, t.exit_index, float(t.entry_price), float(t.exit_price))
                           for t in result.trades if t.exit_reason != "end"]
            row |= {"backtesting_py_seconds": round(theirs_s, 3), "speedup_vs_backtesting_py": round(theirs_s / ours_s, 1),
                    "agreement": round(agreement(ours_trades, theirs), 6), "backtesting_py_trades": len(theirs)}
            print(f"{kind}: backtesting.py {theirs_s:.2f} s → {theirs_s / ours_s:.1f}× ; trade agreement "
                  f"{row['agreement']:.4%} ({len(ours_trades)} vs {len(theirs)})", flush=True)
        vbt_s = vectorbt_time(candles, kind)
        if vbt_s is not None:
            row |= {"vectorbt_seconds": round(vbt_s, 4), "slowdown_vs_vectorbt": round(ours_s / vbt_s, 2)}
            print(f"{kind}: vectorbt {vbt_s:.3f} s → ours is {ours_s / vbt_s:.2f}× its time", flush=True)
        out["strategies"][kind] = row
    rows = out["strategies"].values()
    out["candles_per_s"] = min(r["candles_per_s"] for r in rows)
    if not args.skip_backtesting_py:
        out["speedup_vs_backtesting_py"] = min(r["speedup_vs_backtesting_py"] for r in rows)
        out["agreement"] = min(r["agreement"] for r in rows)
    vbt = [r["slowdown_vs_vectorbt"] for r in rows if "slowdown_vs_vectorbt" in r]
    out["slowdown_vs_vectorbt"] = max(vbt) if vbt else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
