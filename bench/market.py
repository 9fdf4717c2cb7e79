"""Benchmark: the synthetic market and the candle store, against pandas, DuckDB and Parquet in the same run.

    python bench/market.py            # ~30-60 s on 2 cores
    python bench/market.py --quick    # a few seconds (shorter ranges)

1. Candles: 2 years of BTC/USDT 1-minute bars (1,051,200) from `SyntheticMarket` (cold: its day-level process
   computed first; warm: cached), per candle against the baseline — pandas `resample("1min")` building the
   same candles from the same trades (the synthetic market's own trades of `--trade-hours` hours, generated
   first, not timed). Also `bars_from_trades` (our numpy aggregation of trades) on those trades, and a check
   that both give exactly the synthetic candles.
2. CLI: `python -m services.market.candles` writing the 2-year 1m CSV (a child process, wall time).
0. Replay: loading the shipped recording (`ReplayFeed()`: parse and index, the app's start-up cost) against
   the naive loader, `json.loads` on each decompressed line (no index).
3. Store: the same 2 years written to the numpy store (monthly .npy), DuckDB (one table) and Parquet (one file,
   monthly row groups); then `--pages` chart pages of 500 bars ending at random times, median and p95 each.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.market import synthetic  # noqa: E402
from services.market.history import CandleStore, bars_from_trades  # noqa: E402
from services.market.synthetic import MINUTE_MS, SyntheticMarket  # noqa: E402

SYMBOL = "BTC/USDT"


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench_candles(minutes: int, trade_hours: int, end_ms: int) -> dict[str, float]:
    import pandas as pd

    start = end_ms - minutes * MINUTE_MS
    synthetic._symbol_days.cache_clear()  # cold: the day-level process is computed too
    synthetic._market_days.cache_clear()
    cold, cold_s = timed(SyntheticMarket(7).candles, SYMBOL, "1m", start, end_ms)
    market = SyntheticMarket(7)
    market.candles(SYMBOL, "1m", start, start + MINUTE_MS)  # warm the day-level process only
    warm, warm_s = timed(market.candles, SYMBOL, "1m", start, end_ms)
    assert len(warm) == minutes and np.array_equal(cold, warm)

    first_minute = end_ms // MINUTE_MS - trade_hours * 60
    parts = [market.minute_trades(SYMBOL, m) for m in range(first_minute, first_minute + trade_hours * 60)]
    ts = np.concatenate([p[0] for p in parts])
    price = np.concatenate([p[1] for p in parts])
    amount = np.concatenate([p[2] for p in parts])
    n_bars = trade_hours * 60
    since, until = first_minute * MINUTE_MS, (first_minute + n_bars) * MINUTE_MS
    reference = market.candles(SYMBOL, "1m", since, until)

    def pandas_resample() -> np.ndarray:
        frame = pd.DataFrame({"price": price, "amount": amount}, index=pd.to_datetime(ts, unit="ms"))
        ohlc = frame["price"].resample("1min").ohlc()
        vol = frame["amount"].resample("1min").sum()
        out = np.column_stack([ohlc.index.as_unit("ms").asi8, ohlc.to_numpy(), vol.to_numpy()])
        return out

    pd_bars, pd_s = min((timed(pandas_resample) for _ in range(3)), key=lambda r: r[1])
    np_bars, np_s = min((timed(bars_from_trades, ts, price, amount, MINUTE_MS, since, until) for _ in range(3)),
                        key=lambda r: r[1])
    assert np.allclose(pd_bars, reference) and np.allclose(np_bars, reference), "candles and trades disagree"
    per_pd = pd_s / n_bars
    return {
        "candles": minutes,
        "synthetic_cold_s": round(cold_s, 3),
        "synthetic_warm_s": round(warm_s, 3),
        "synthetic_us_per_candle": round(warm_s / minutes * 1e6, 3),
        "trades": int(len(ts)),
        "pandas_resample_us_per_candle": round(per_pd * 1e6, 3),
        "numpy_from_trades_us_per_candle": round(np_s / n_bars * 1e6, 3),
        "ratio_synthetic_vs_pandas": round((warm_s / minutes) / per_pd, 4),
        "ratio_numpy_trades_vs_pandas": round(np_s / pd_s, 4),
    }


def bench_replay_load(rounds: int = 3) -> dict[str, float]:
    import gzip

    from services.market.replay import ReplayFeed, default_recording

    path = default_recording()

    def naive() -> int:
        with gzip.open(path, "rt") as lines:
            return len([json.loads(line) for line in lines])

    load_s = min(timed(ReplayFeed, path)[1] for _ in range(rounds))
    naive_s = min(timed(naive)[1] for _ in range(rounds))
    return {"replay_load_s": round(load_s, 4), "replay_naive_s": round(naive_s, 4),
            "ratio_replay_load_vs_naive": round(load_s / naive_s, 2)}


def bench_cli(since: str, until: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "btc.csv"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "services.market.candles", "--source", "synthetic", "--symbol",
                        SYMBOL, "--timeframe", "1m", "--since", since, "--until", until, "--out", str(out)],
                       cwd=ROOT, check=True)
        wall = time.perf_counter() - t
        rows = sum(1 for _ in out.open()) - 1
    return {"cli_csv_s": round(wall, 2), "cli_rows": rows}


def bench_store(bars: np.ndarray, pages: int) -> dict[str, float]:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    ends = rng.integers(500, len(bars), pages)
    befores = [int(bars[e, 0]) for e in ends]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = CandleStore(root / "npy")
        _, out["npy_write_s"] = timed(store.write, "bench", SYMBOL, "1m", bars)

        con = duckdb.connect(str(root / "candles.duckdb"))
        t = time.perf_counter()
        con.execute("CREATE TABLE candles (ts BIGINT PRIMARY KEY, o DOUBLE, h DOUBLE, l DOUBLE, c DOUBLE, v DOUBLE)")
        table = pa.table({"ts": bars[:, 0].astype(np.int64), "o": bars[:, 1], "h": bars[:, 2], "l": bars[:, 3],
                          "c": bars[:, 4], "v": bars[:, 5]})
        con.register("arrow_bars", table)
        con.execute("INSERT INTO candles SELECT * FROM arrow_bars")
        con.unregister("arrow_bars")
        out["duckdb_write_s"] = time.perf_counter() - t

        path = root / "candles.parquet"
        _, out["parquet_write_s"] = timed(pq.write_table, table, path, row_group_size=43_200)

        def npy_page(before: int) -> np.ndarray:
            return store.page("bench", SYMBOL, "1m", before_ms=before, limit=500)

        def duck_page(before: int) -> np.ndarray:
            rows = con.execute("SELECT * FROM candles WHERE ts < ? ORDER BY ts DESC LIMIT 500", [before]).fetchnumpy()
            return np.column_stack([rows[k] for k in ("ts", "o", "h", "l", "c", "v")])[::-1]

        def parquet_page(before: int) -> np.ndarray:
            t = pq.read_table(path, filters=[("ts", "<", before), ("ts", ">=", before - 500 * MINUTE_MS)])
            return np.column_stack([t.column(k).to_numpy() for k in ("ts", "o", "h", "l", "c", "v")])

        for name, fn in (("npy", npy_page), ("duckdb", duck_page), ("parquet", parquet_page)):
            fn(befores[0])  # warm: file opened, page cache
            times = []
            for before in befores:
                page, s = timed(fn, before)
                assert len(page) == 500 and page[-1, 0] < before, name
                times.append(s)
            times.sort()
            out[f"{name}_page_ms_p50"] = statistics.median(times) * 1e3
            out[f"{name}_page_ms_p95"] = times[int(0.95 * (len(times) - 1))] * 1e3
        con.close()
        out["npy_bytes"] = sum(p.stat().st_size for p in (root / "npy").rglob("*.npy"))
        out["duckdb_bytes"] = (root / "candles.duckdb").stat().st_size
        out["parquet_bytes"] = path.stat().st_size
    out["ratio_npy_page_vs_duckdb"] = out["npy_page_ms_p50"] / out["duckdb_page_ms_p50"]
    out["ratio_npy_page_vs_parquet"] = out["npy_page_ms_p50"] / out["parquet_page_ms_p50"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    minutes = 43_200 if args.quick else 1_051_200
    end_ms = int(time.time() * 1000) // 86_400_000 * 86_400_000  # today 00:00 UTC
    replay = bench_replay_load()
    print("replay:", replay, flush=True)
    candles = bench_candles(minutes, 1 if args.quick else 6, end_ms)
    print("candles:", candles, flush=True)
    days = minutes // 1440
    since = time.strftime("%Y-%m-%d", time.gmtime((end_ms - days * 86_400_000) / 1000))
    until = time.strftime("%Y-%m-%d", time.gmtime(end_ms / 1000))
    cli = bench_cli(since, until)
    print("cli:", cli, flush=True)
    bars = SyntheticMarket(7).candles(SYMBOL, "1m", end_ms - minutes * MINUTE_MS, end_ms)
    store = bench_store(bars, 50 if args.quick else args.pages)
    print("store:", store, flush=True)
    print(json.dumps({"bench": "market", **replay, **candles, **cli, **store}))


if __name__ == "__main__":
    main()
