"""Rules are data, and fire the way a trader expects: on the edge, without chatter, not too often."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from services.market.types import Tick
from services.signals import EngineConfig, Rule, RuleError, Signal, SignalEngine, default_rules
from services.signals.rules import RuleRunner


def run(
    rule: Rule, series: list[dict[str, float]], symbol: str = "BTC/USDT", step_ms: int = 1_000
) -> list[Signal]:
    runner = RuleRunner(rule)
    fired = []
    for k, values in enumerate(series):
        signal = runner.evaluate(symbol, values, k * step_ms)
        if signal is not None:
            fired.append(signal)
    return fired


def test_rules_round_trip_through_json() -> None:
    for rule in default_rules():
        again = Rule.from_dict(json.loads(json.dumps(rule.to_dict())))
        assert again == rule
    custom = Rule(
        id="r1",
        name="both",
        direction="buy",
        symbols=("ETH/USDT",),
        when={
            "op": "all",
            "of": [
                {"op": "gt", "left": "price", "right": "vwap"},
                {"op": "lt", "left": "rsi_14", "right": 40},
            ],
        },
    )
    assert Rule.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


def test_a_single_symbol_is_one_symbol_not_its_letters() -> None:
    rule = Rule.from_dict(
        {
            "id": "x",
            "direction": "buy",
            "when": {"op": "gt", "left": "price", "right": 1},
            "symbols": "BTC/USDT",
        }
    )
    assert rule.symbols == ("BTC/USDT",) and rule.applies_to("BTC/USDT") and not rule.applies_to("B")


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "x", "direction": "hold", "when": {"op": "gt", "left": "price", "right": 1}},
        {"id": "x", "direction": "buy", "when": {"op": "near", "left": "price", "right": 1}},
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price"}},
        {"id": "x", "direction": "buy", "when": {"op": "all", "of": []}},
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price", "right": [1]}},
        {
            "id": "x",
            "direction": "buy",
            "when": {"op": "cross_above", "left": "ema_12", "right": "ema_26", "hysteresis": 1},
        },
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price", "right": 1}, "strength": 3},
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price", "right": 1}, "cooldown_ms": -1},
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price", "right": 1}, "colour": "red"},
        {"direction": "buy", "when": {"op": "gt", "left": "price", "right": 1}},
        {"id": "x", "direction": "buy", "when": {"op": "gt", "left": "price", "right": 1}, "symbols": 7},
    ],
)
def test_malformed_rules_are_refused_with_a_rule_error(bad: dict) -> None:
    with pytest.raises(RuleError):
        Rule.from_dict(bad)


def test_crossover_fires_once_when_the_fast_line_crosses_and_not_while_it_stays_above() -> None:
    rule = Rule(
        id="x", name="cross", direction="buy", when={"op": "cross_above", "left": "ema_12", "right": "ema_26"}
    )
    series = [{"ema_12": f, "ema_26": 10.0} for f in (9.0, 9.5, 10.5, 11.0, 12.0, 9.0, 10.2)]
    fired = run(rule, series)
    assert [s.timestamp_ms for s in fired] == [2_000, 6_000]
    assert set(fired[0].values) == {"price", "ema_12", "ema_26"}
    assert (fired[0].values["ema_12"], fired[0].values["ema_26"]) == (10.5, 10.0)
    assert fired[0].direction == "buy" and fired[0].rule_id == "x" and fired[0].strength == 1.0


def test_no_crossover_is_reported_while_an_input_is_still_warming_up() -> None:
    rule = Rule(
        id="x", name="cross", direction="buy", when={"op": "cross_above", "left": "ema_12", "right": "ema_26"}
    )
    assert run(rule, [{"ema_12": math.nan, "ema_26": 10.0}, {"ema_12": 11.0, "ema_26": 10.0}]) == []


def test_hysteresis_stops_chatter_around_the_threshold() -> None:
    rsi = [69.0, 71.0, 69.5, 70.5, 69.0, 71.0, 64.0, 71.0]
    plain = Rule(id="p", name="ob", direction="sell", when={"op": "gt", "left": "rsi_14", "right": 70})
    latched = Rule(
        id="h", name="ob", direction="sell", when={"op": "gt", "left": "rsi_14", "right": 70, "hysteresis": 5}
    )
    series = [{"rsi_14": v} for v in rsi]
    assert [s.timestamp_ms for s in run(plain, series)] == [1_000, 3_000, 5_000, 7_000]
    # Re-arms only once RSI went back under 65.
    assert [s.timestamp_ms for s in run(latched, series)] == [1_000, 7_000]


def test_cooldown_silences_a_rule_for_that_symbol_only() -> None:
    rule = Rule(
        id="c", name="c", direction="buy", when={"op": "gt", "left": "macd", "right": 0}, cooldown_ms=5_000
    )
    runner = RuleRunner(rule)
    xs = [1, -1, 1, -1, 1, -1, 1, -1, 1]  # rising edge at 0, 2, 4, 6, 8 seconds
    fired = [k for k, x in enumerate(xs) if runner.evaluate("A", {"macd": x}, k * 1_000)]
    assert fired == [0, 6]
    assert runner.evaluate("B", {"macd": 1}, 1_000) is not None  # another symbol has its own clock


def test_breakout_compares_with_the_level_before_this_tick() -> None:
    rule = Rule(
        id="b", name="b", direction="buy", when={"op": "breakout_above", "left": "price", "right": "donchian_high"}
    )
    # The channel high includes the current price, so price > high is impossible: compare with the
    # previous high.
    series = [
        {"price": 10.0, "donchian_high": 10.0},
        {"price": 9.0, "donchian_high": 10.0},
        {"price": 10.5, "donchian_high": 10.5},
        {"price": 10.6, "donchian_high": 10.6},
    ]
    assert [s.timestamp_ms for s in run(rule, series)] == [2_000]


def test_any_and_all_combine_and_strength_maps_an_indicator_to_zero_one() -> None:
    rule = Rule(
        id="a",
        name="a",
        direction="sell",
        when={
            "op": "any",
            "of": [{"op": "gt", "left": "rsi_14", "right": 70}, {"op": "gt", "left": "zscore", "right": 2}],
        },
        strength={"of": "rsi_14", "lo": 70, "hi": 100},
    )
    fired = run(rule, [{"rsi_14": 50, "zscore": 0}, {"rsi_14": 85, "zscore": 0}, {"rsi_14": 50, "zscore": 0}, {"rsi_14": 50, "zscore": 3}])
    assert [(s.timestamp_ms, s.strength) for s in fired] == [(1_000, 0.5), (3_000, 0.0)]
    both = dataclasses.replace(
        rule,
        when={
            "op": "all",
            "of": [{"op": "gt", "left": "rsi_14", "right": 70}, {"op": "gt", "left": "zscore", "right": 2}],
        },
    )
    assert [s.timestamp_ms for s in run(both, [{"rsi_14": 85, "zscore": 0}, {"rsi_14": 85, "zscore": 3}])] == [1_000]


def test_signal_is_a_frozen_value() -> None:
    signal = Signal("A", "r", "rule", "buy", 1.0, 0, {"price": 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.strength = 0.5  # type: ignore[misc]


def _trend_ticks(symbol: str) -> list[Tick]:
    """Down, then a sharp rally, then down again: crossings, RSI extremes, band breakouts."""
    prices = (
        [100.0 - 0.2 * k for k in range(60)]
        + [88.0 + 0.6 * k for k in range(60)]
        + [123.4 - 0.5 * k for k in range(60)]
    )
    return [Tick(symbol, 1_000 * k, p, 1.0) for k, p in enumerate(prices)]


def test_default_rules_fire_buy_and_sell_on_a_trend_reversal_and_respect_symbols() -> None:
    engine = SignalEngine(rules=default_rules())
    fired = [s for t in _trend_ticks("BTC/USDT") for s in engine.on_tick(t)]
    ids = {s.rule_id for s in fired}
    assert {"ema-cross-up", "ema-cross-down", "rsi-overbought", "rsi-oversold", "bb-breakout-up"} <= ids
    assert all(0.0 <= s.strength <= 1.0 and s.symbol == "BTC/USDT" for s in fired)
    up = next(s for s in fired if s.rule_id == "ema-cross-up")
    assert up.direction == "buy" and up.values["ema_12"] > up.values["ema_26"]

    only_eth = [r.with_changes(symbols=("ETH/USDT",)) for r in default_rules()]
    engine = SignalEngine(rules=only_eth)
    assert [s for t in _trend_ticks("BTC/USDT") for s in engine.on_tick(t)] == []


def test_disabled_rules_do_not_fire_and_set_rules_swaps_them_live() -> None:
    engine = SignalEngine(
        rules=[r.with_changes(enabled=False) for r in default_rules()], config=EngineConfig()
    )
    ticks = _trend_ticks("A")
    assert [s for t in ticks[:100] for s in engine.on_tick(t)] == []
    engine.set_rules(default_rules())
    assert len(engine.rules) == len(default_rules())
    assert [s for t in ticks[100:] for s in engine.on_tick(t)]
    with pytest.raises(ValueError):
        engine.set_rules(default_rules() + default_rules())
