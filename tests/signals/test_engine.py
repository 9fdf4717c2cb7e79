"""The app's view of the engine: ticks in, snapshots and signals out, per symbol."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.market.types import Tick
from services.signals import EngineConfig, Rule, SignalEngine, TickCounters, default_rules


def test_snapshot_has_the_documented_keys_per_symbol_and_nothing_for_unknown_symbols() -> None:
    engine = SignalEngine(rules=default_rules())
    for k in range(1_000):  # 1 tick/s: 16 one-minute bars, enough for ATR(14)
        engine.on_tick(Tick("BTC/USDT", 1_000 * k, 30_000.0 + (k % 7), 0.1))
        engine.on_tick(Tick("ETH/USDT", 1_000 * k, 2_000.0 - (k % 5), 1.0))
    btc, eth = engine.snapshot("BTC/USDT"), engine.snapshot("ETH/USDT")
    for key in (
        "sma_20",
        "ema_20",
        "rsi_14",
        "bb_upper",
        "bb_lower",
        "vwap",
        "atr_14",
        "zscore",
        "median",
        "donchian_high",
        "donchian_low",
        "macd",
        "q90",
        "rvol",
    ):
        assert not math.isnan(btc[key]), key
    assert set(btc) == set(engine.keys())
    assert 30_000 <= btc["sma_20"] <= 30_006 and 1_996 <= eth["sma_20"] <= 2_000  # no mixing
    assert btc["donchian_high"] == 30_006.0 and btc["donchian_low"] == 30_000.0
    assert engine.snapshot("DOGE/USDT") == {}
    assert set(engine.symbols) == {"BTC/USDT", "ETH/USDT"}


def test_the_price_window_answers_any_quantile_rank_and_time_range() -> None:
    engine = SignalEngine(config=EngineConfig(stats_points=100))
    for k in range(150):
        engine.on_tick(Tick("A", 1_000 * k, float(k), 1.0))
    window = engine.window("A")
    assert window is not None and len(window) == 100  # ticks 50..149
    assert window.quantile(0.25) == 74.75 and window.rank(60.0) == 10
    assert window.between(140_000, 142_000) == [(140_000, 140.0), (141_000, 141.0), (142_000, 142.0)]
    assert engine.window("B") is None
    assert SignalEngine(config=EngineConfig(stats_points=0)).window("A") is None


def test_periods_are_configurable_and_name_the_keys() -> None:
    engine = SignalEngine(config=EngineConfig(sma_period=50, rsi_period=7, ema_period=9))
    engine.on_tick(Tick("A", 0, 1.0, 1.0))
    assert {"sma_50", "rsi_7", "ema_9"} <= set(engine.snapshot("A"))


def test_late_ticks_are_placed_too_old_ones_and_replays_are_counted_and_dropped() -> None:
    engine = SignalEngine(config=EngineConfig(sma_period=3, late_tolerance_ms=1_000))
    for ts, price in [(10_000, 1.0), (11_000, 2.0), (12_000, 3.0)]:
        engine.on_tick(Tick("A", ts, price, 1.0))
    assert engine.snapshot("A")["sma_3"] == 2.0
    engine.on_tick(Tick("A", 11_500, 9.0, 1.0))  # 500 ms late: placed between 11 s and 12 s
    snap = engine.snapshot("A")
    assert snap["sma_3"] == (2.0 + 9.0 + 3.0) / 3  # the 10 s point was the oldest, it left
    assert snap["price"] == 3.0  # the last price is still the newest trade's
    engine.on_tick(Tick("A", 10_500, 100.0, 1.0))  # 1.5 s late: dropped
    engine.on_tick(Tick("A", 12_000, 3.0, 1.0))  # an exact replay of the newest trade
    assert engine.snapshot("A")["sma_3"] == (2.0 + 9.0 + 3.0) / 3
    assert engine.counters("A") == TickCounters(accepted=4, late_placed=1, late_dropped=1, duplicates=1)
    assert engine.counters("never-seen") == TickCounters(0, 0, 0, 0)


def test_invalid_ticks_are_counted_and_change_nothing() -> None:
    engine = SignalEngine(config=EngineConfig(sma_period=2))
    for k, p in enumerate([10.0, 11.0, 12.0]):
        engine.on_tick(Tick("A", 1_000 * k, p, 1.0))
    before = engine.snapshot("A")
    bad = [
        (3_000, math.nan, 1.0),
        (3_000, math.inf, 1.0),
        (3_000, -1.0, 1.0),
        (3_000, 0.0, 1.0),
        (3_000, 13.0, -2.0),
        (3_000, 13.0, math.nan),
    ]
    bad += [(1_500, math.nan, 1.0)]  # late and invalid
    for ts, p, a in bad:
        assert engine.on_tick(Tick("A", ts, p, a)) == []
    after = engine.snapshot("A")
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] or (math.isnan(after[k]) and math.isnan(before[k])) for k in before)
    assert engine.counters("A").invalid == len(bad)
    engine.on_tick(Tick("A", 3_000, 13.0, 1.0))
    assert engine.snapshot("A")["sma_2"] == 12.5


def test_duplicate_memory_of_late_ticks_is_bounded_and_keeps_the_newest(monkeypatch) -> None:
    from services.signals import indicators

    monkeypatch.setattr(indicators, "DUPLICATE_MEMORY", 8)
    engine = SignalEngine(config=EngineConfig(late_tolerance_ms=10_000))
    engine.on_tick(Tick("A", 100_000, 1.0, 1.0))
    late = [Tick("A", 95_000 + k, 1.0 + k / 100, 1.0) for k in range(50)]
    for tick in late:
        engine.on_tick(tick)
    engine.on_tick(late[-1])  # a replay of the newest late tick is still recognised
    assert engine.counters("A").duplicates == 1
    assert engine.counters("A").late_placed == 50


def test_keeping_duplicates_is_a_choice() -> None:
    engine = SignalEngine(config=EngineConfig(sma_period=2, drop_duplicates=False))
    for _ in range(3):
        engine.on_tick(Tick("A", 5, 1.0, 2.0))
    assert engine.counters("A").accepted == 3
    assert engine.snapshot("A")["vwap"] == 1.0


def test_atr_uses_bars_built_from_ticks() -> None:
    engine = SignalEngine(config=EngineConfig(atr_period=2, bar_ms=60_000))
    # bar 0: 10..12, bar 1: 11..15 (gap-free), bar 2 opens (closes bar 1).
    for ts, p in [(0, 10.0), (20_000, 12.0), (59_000, 11.0), (60_000, 11.0), (90_000, 15.0), (120_000, 14.0)]:
        engine.on_tick(Tick("A", ts, p, 1.0))
    # TR(bar 0) = 2; TR(bar 1) = max(4, |15 - 11|, |11 - 11|) = 4; ATR(2) = mean = 3.
    assert engine.snapshot("A")["atr_2"] == 3.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 900), st.floats(-0.01, 0.01)), min_size=1, max_size=200)
)
def test_symbols_do_not_leak_into_each_other(steps: list[tuple[bool, int, float]]) -> None:
    """Interleaving two symbols gives each the values it would have alone."""
    together = SignalEngine(rules=default_rules())
    alone = {"A": SignalEngine(rules=default_rules()), "B": SignalEngine(rules=default_rules())}
    ts, price = 0, {"A": 100.0, "B": 5.0}
    for is_a, dt, move in steps:
        symbol = "A" if is_a else "B"
        ts += dt
        price[symbol] *= math.exp(move)
        tick = Tick(symbol, ts, price[symbol], 1.0)
        assert together.on_tick(tick) == alone[symbol].on_tick(tick)
    for symbol, engine in alone.items():
        mine, theirs = together.snapshot(symbol), engine.snapshot(symbol)
        assert mine.keys() == theirs.keys()
        assert all(mine[k] == theirs[k] or (math.isnan(mine[k]) and math.isnan(theirs[k])) for k in mine)


def test_dropped_ticks_fire_nothing() -> None:
    rule = Rule(
        id="any", name="price above 0", direction="buy", when={"op": "gt", "left": "price", "right": 0}
    )
    engine = SignalEngine(rules=[rule], config=EngineConfig(late_tolerance_ms=100))
    assert len(engine.on_tick(Tick("A", 10_000, 1.0, 1.0))) == 1
    engine.set_rules([])
    engine.set_rules([rule])  # fresh state: would fire again on the next accepted tick
    assert engine.on_tick(Tick("A", 5_000, 2.0, 1.0)) == []  # too late
    assert engine.on_tick(Tick("A", 10_000, 1.0, 1.0)) == []  # replay
    assert engine.on_tick(Tick("A", 10_001, math.nan, 1.0)) == []  # invalid
    assert len(engine.on_tick(Tick("A", 10_002, 1.5, 1.0))) == 1
