"""The simulated market and the replay file format: reproducible, labelled, realistic enough, loop-closed."""

from __future__ import annotations

import gzip
import json
from collections import Counter

from services.market.recording import load_recording, write_recording
from services.market.replay import default_recording
from services.market.simulate import SYMBOLS, main, simulate


def test_same_seed_same_market_and_identical_bytes(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    main(["--seed", "5", "--minutes", "2", "--out", str(a)])
    main(["--seed", "5", "--minutes", "2", "--out", str(b)])
    assert a.read_bytes() == b.read_bytes()
    assert simulate(6, 2)[1] != simulate(5, 2)[1]


def test_shipped_recording_is_labelled_simulated_with_ccxt_markets():
    path = default_recording()
    assert path.stat().st_size < 5_000_000
    with gzip.open(path, "rt") as f:
        meta = json.loads(f.readline())
        first_trade = json.loads(f.readline())
    assert meta["type"] == "meta" and meta["format"] == "skeet-replay/1"
    assert meta["source"] == "simulated" and meta["seed"] == 7
    assert meta["end_ms"] - meta["start_ms"] == 3_600_000
    assert set(meta["symbols"]) >= {
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "BNB/USDT",
        "XRP/USDT",
        "ADA/USDT",
        "DOGE/USDT",
        "AVAX/USDT",
    }
    btc = meta["markets"]["BTC/USDT"]
    assert btc["precision"] == {"amount": 0.00001, "price": 0.01, "cost": None, "base": None, "quote": None}
    assert btc["limits"]["amount"]["min"] == 0.00001 and btc["limits"]["cost"]["min"] == 5.0
    assert set(first_trade) == {"type", "symbol", "timestamp", "price", "amount", "side", "id"}


def test_trades_respect_precision_rates_and_close_the_loop():
    meta, trades = simulate(7, 10)
    counts = Counter(t["symbol"] for t in trades)
    for spec in SYMBOLS:
        rate = counts[spec.symbol] / 600
        assert 1.0 <= rate <= 4.0, (spec.symbol, rate)
        own = [t for t in trades if t["symbol"] == spec.symbol]
        tick, step = spec.price_tick, spec.amount_step
        for t in own[:200]:
            assert abs(t["price"] / tick - round(t["price"] / tick)) < 1e-6
            assert abs(t["amount"] / step - round(t["amount"] / step)) < 1e-6 and t["amount"] > 0
        # Brownian bridge: the last trades sit near the start price (within ~0.1 %), so a loop has no seam.
        assert abs(own[-1]["price"] / spec.price - 1) < 0.001
        assert abs(own[0]["price"] / spec.price - 1) < 0.001
        assert len({t["id"] for t in own}) == len(own)
    times = [t["timestamp"] for t in trades]
    assert times == sorted(times) and meta.start_ms <= times[0] and times[-1] < meta.end_ms


def test_write_then_load_round_trip(tmp_path):
    meta, trades = simulate(9, 1)
    path = tmp_path / "r.jsonl.gz"
    assert write_recording(path, meta, trades) == len(trades)
    rec = load_recording(path)
    assert rec.meta == meta
    btc = [t for t in trades if t["symbol"] == "BTC/USDT"]
    series = rec.series["BTC/USDT"]
    assert list(series.prices) == [t["price"] for t in btc]
    assert list(series.offsets_ms) == [t["timestamp"] - meta.start_ms for t in btc]
    assert series.ids == tuple(t["id"] for t in btc)
    assert {series.side(i) for i in range(len(series))} == {"buy", "sell"}
