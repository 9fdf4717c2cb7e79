"""The operand syntax a trader writes: parsed into shared specs, mistakes refused when the rule is
written with a sentence naming them, and candle rules firing through the live engine."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from services.market.types import TIMEFRAME_MS as MARKET_TIMEFRAMES
from services.market.types import Tick
from services.signals import (
    IndicatorSpec,
    OperandError,
    Rule,
    RuleBook,
    RuleError,
    SignalEngine,
    parse_operand,
)
from services.signals.batch import Candles
from services.signals.candles import TIMEFRAME_MS, compute, resample
from services.signals.operands import REGISTRY


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("sma(50, 1h)", "sma(50, 1h)"),
        ("SMA( 50 ,1h )", "sma(50, 1h)"),
        ("ema(20)", "ema(20)"),
        ("rsi", "rsi(14)"),
        ("rsi(14, 15m)", "rsi(14, 15m)"),
        ("macd(12, 26, 9).signal", "macd(12, 26, 9).signal"),
        ("macd.line", "macd(12, 26, 9)"),
        ("bb(20, 2).upper", "bb(20, 2).upper"),
        ("bb(20)", "bb(20, 2)"),
        ("close", "close"),
        ("close(4h)", "close(4h)"),
        ("price", "price"),
        ("volume", "volume"),
        ("quantile(100, 0.25)", "quantile(100, 0.25)"),
        ("supertrend(10, 3).direction", "supertrend(10, 3).direction"),
    ],
)
def test_operands_parse_into_their_canonical_text(text: str, canonical: str) -> None:
    spec = parse_operand(text)
    assert str(spec) == canonical
    assert parse_operand(str(spec)) == spec  # the canonical text reads back as the same spec


def test_equal_operands_are_one_hashable_spec_and_the_default_timeframe_fills_in() -> None:
    assert parse_operand("sma(50)") == parse_operand("sma(50.0)") == IndicatorSpec("sma", (50,), None, "value")
    assert len({parse_operand("bb(20,2)"), parse_operand("bb(20, 2.0).middle"), parse_operand("bb")}) == 1
    assert parse_operand("rsi", timeframe="15m") == parse_operand("rsi(14, 15m)")
    assert parse_operand("rsi(14, 1h)", timeframe="15m").timeframe == "1h"  # its own wins
    assert parse_operand("price", timeframe="1h").timeframe is None  # the last trade has none
    assert parse_operand("macd(12, 26, 9).hist").base == parse_operand("macd(12, 26, 9)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smaa(5)", "Unknown indicator 'smaa' — did you mean 'sma'?"),
        ("banana", "Unknown indicator 'banana': use e.g. sma(20)"),
        ("ema20", "Unknown indicator 'ema20' — write it as 'ema(20)'"),
        ("sma_50", "Unknown indicator 'sma_50' — write it as 'sma(50)'"),
        ("rsi(1)", "RSI period must be a whole number from 2 to 1000"),
        ("rsi(14.5)", "RSI period must be a whole number from 2 to 1000"),
        ("rsi(abc)", "RSI period must be a number, not 'abc'"),
        ("sma(50, 2h)", "Unknown timeframe '2h': use 1m, 5m, 15m, 1h, 4h or 1d"),
        ("sma(1h, 50)", "Put the timeframe last"),
        ("macd(26, 12, 9)", "MACD's fast period must be shorter than its slow period"),
        ("macd(12, 26, 9).sig", "MACD has no output 'sig' — did you mean '.signal'?"),
        ("sma(20).upper", "SMA has one value: drop '.upper'"),
        ("bb(20, 2, 3)", "Bollinger bands takes 2 parameters (period, k), got 3"),
        ("bb(20, 0)", "Bollinger bands k must be a number from 0.1 to 10"),
        ("price(1h)", "'price' is the last trade's price: it has no timeframe (use close(1h))"),
        ("obv(14)", "On-balance volume takes no parameters"),
        ("sma(50", "Cannot read 'sma(50'"),
        ("", "An operand must be an indicator"),
    ],
)
def test_a_mistake_is_refused_with_a_sentence_naming_it(text: str, message: str) -> None:
    with pytest.raises(OperandError) as err:
        parse_operand(text)
    assert message in str(err.value)


def test_timeframes_are_the_markets_own() -> None:
    assert list(TIMEFRAME_MS) == ["1m", "5m", "15m", "1h", "4h", "1d"]
    assert all(TIMEFRAME_MS[tf] == ms for tf, ms in MARKET_TIMEFRAMES.items())


def test_there_are_at_least_twenty_indicators_besides_price_fields() -> None:
    indicators = [name for name in REGISTRY if REGISTRY[name].params or name == "obv"]
    assert len(indicators) >= 20, indicators


def _rule(left: object, right: object, op: str = "gt", **extra: object) -> dict:
    return {"id": "r", "direction": "buy", "when": {"op": op, "left": left, "right": right}, **extra}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule("rsi_14", "banana"), "Unknown indicator 'banana'"),
        (_rule("price", "ema20", op="cross_above"), "write it as 'ema(20)'"),
        (_rule("rsi(14, 2h)", 70), "Unknown timeframe '2h'"),
        (_rule("sma(50)", "sma(200)", op="cross_above", timeframe="2h"), "Unknown timeframe '2h'"),
        ({**_rule("rsi(14)", 70), "strength": {"of": "rsii", "lo": 70, "hi": 100}}, "did you mean 'rsi'?"),
    ],
)
def test_rules_naming_what_does_not_exist_are_refused_when_written(rule: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        Rule.from_dict(rule)
    book = RuleBook(tmp_path / "rules.json")
    with pytest.raises(RuleError):
        book.add(Rule.from_dict(rule))
    assert len(book) == 0 and not (tmp_path / "rules.json").exists()


def test_a_candle_rule_round_trips_through_json_with_its_timeframe() -> None:
    rule = Rule.from_dict(_rule("sma(50)", "sma(200)", op="cross_above", timeframe="1h"))
    again = Rule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule and again.timeframe == "1h"
    assert again.specs() == (parse_operand("sma(50, 1h)"), parse_operand("sma(200, 1h)"))
    assert Rule.from_dict(_rule("ema_12", "ema_26")).specs() == ()  # the tick indicators of old


def _ticks(symbol: str, minutes: int, seed: int = 7) -> list[Tick]:
    rng = random.Random(seed)
    price, out = 100.0, []
    for k in range(minutes * 6):  # a trade every 10 s
        price *= math.exp(rng.gauss(0.0, 0.002))
        out.append(Tick(symbol, 1_700_000_000_000 + k * 10_000, round(price, 2), 1.0 + (k % 3)))
    return out


def test_a_crossing_of_candle_smas_fires_through_the_engine_as_the_chart_shows_it() -> None:
    rule = Rule.from_dict(_rule("sma(5)", "sma(20)", op="cross_above", timeframe="5m"))
    engine = SignalEngine(rules=[rule])
    ticks = _ticks("BTC/USDT", 24 * 60)
    fired = [s for t in ticks for s in engine.on_tick(t)]
    assert fired, "a day of a random walk crosses its 5m SMAs"
    # Each signal's values are the forming 5m candle's SMAs at that trade: recompute in batch.
    for signal in fired[:5]:
        upto = [t for t in ticks if t.timestamp_ms <= signal.timestamp_ms]
        one_minute = Candles.from_rows(
            [(t.timestamp_ms, t.price, t.price, t.price, t.price, t.amount) for t in upto]
        )
        five = resample(one_minute, "5m")
        fast = compute(parse_operand("sma(5)"), five)[-1]
        slow = compute(parse_operand("sma(20)"), five)[-1]
        assert signal.values["sma(5, 5m)"] == pytest.approx(fast, rel=1e-9)
        assert signal.values["sma(20, 5m)"] == pytest.approx(slow, rel=1e-9)
        assert fast > slow


def test_the_engine_shares_identical_specs_and_serves_a_chart_watch() -> None:
    rules = [
        Rule.from_dict({**_rule("rsi(14)", 70), "id": "a"}),
        Rule.from_dict({**_rule("rsi", 70, op="lt"), "id": "b", "direction": "sell"}),
        Rule.from_dict({**_rule("rsi(14, 1m)", "ema(3)"), "id": "c"}),
    ]
    engine = SignalEngine(rules=rules)
    for t in _ticks("ETH/USDT", 90):
        engine.on_tick(t)
    candles = engine._candles["ETH/USDT"]
    assert set(candles.series) == {"1m"}
    assert set(candles.series["1m"].specs) == {"rsi(14, 1m)", "ema(3, 1m)"}
    key = engine.watch("ETH/USDT", "sma(10, 1m)")
    assert key == "sma(10, 1m)" and not math.isnan(engine.snapshot("ETH/USDT")[key])  # warm at once
    with pytest.raises(OperandError):
        engine.watch("ETH/USDT", "sma(10, 3m)")
