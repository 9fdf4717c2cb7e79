"""The local analyst: deterministic, and right about series whose shape we know."""

from __future__ import annotations

import dataclasses

import pytest

from backend_stub.insights import InsightDesk, LocalAnalyst, MarketContext, NotEnoughData, SignalEvent
from backend_stub.insights.local import ema, linear_fit, realised_vol_pct, rsi, score_sentiment
from services.market.types import Candle


def context(candles: list[Candle], **kwargs: object) -> MarketContext:
    return MarketContext(symbol="BTC/USDT", timeframe="1m", candles=tuple(candles), **kwargs)  # type: ignore[arg-type]


async def test_same_inputs_give_the_same_answer(uptrend: list[Candle]) -> None:
    signals = (SignalEvent("sma_cross", "SMA20 crossed SMA50", uptrend[-3].timestamp_ms),)
    first = await LocalAnalyst().analyse(context(uptrend, signals=signals, question="Buy?"))
    second = await LocalAnalyst().analyse(context(list(uptrend), signals=signals, question="Buy?"))
    assert first == second
    assert dataclasses.asdict(first) == dataclasses.asdict(second)


async def test_a_rising_series_reads_up_and_bullish(uptrend: list[Candle]) -> None:
    answer = await LocalAnalyst().analyse(context(uptrend))
    assert answer.trend == "up"
    assert answer.sentiment == "bullish"
    assert answer.indicators.slope_pct_per_bar > 0
    assert answer.indicators.ema_fast > answer.indicators.ema_slow
    assert answer.indicators.bars == 120
    assert answer.model is None


async def test_a_falling_series_reads_down_and_bearish(candles) -> None:
    answer = await LocalAnalyst().analyse(context(candles(120, drift=-0.1, start=200.0)))
    assert (answer.trend, answer.sentiment) == ("down", "bearish")


async def test_a_flat_noisy_series_reads_sideways(candles) -> None:
    answer = await LocalAnalyst().analyse(context(candles(120, drift=0.0, wiggle=1.0)))
    assert answer.trend == "sideways"
    assert answer.sentiment == "neutral"


async def test_volatility_compares_the_recent_regime_with_the_window(candles) -> None:
    calm_then_wild = candles(100, wiggle=0.1) + [
        dataclasses.replace(c, timestamp_ms=c.timestamp_ms + 100 * 60_000)
        for c in candles(20, wiggle=2.0, start=100.0)
    ]
    wild_then_calm = candles(100, wiggle=2.0) + [
        dataclasses.replace(c, timestamp_ms=c.timestamp_ms + 100 * 60_000) for c in candles(20, wiggle=0.05)
    ]
    assert (await LocalAnalyst().analyse(context(calm_then_wild))).volatility == "high"
    assert (await LocalAnalyst().analyse(context(wild_then_calm))).volatility == "low"
    assert (await LocalAnalyst().analyse(context(candles(120, wiggle=0.3)))).volatility == "normal"


async def test_breakout_volume_spike_and_rsi_signals_carry_the_bar_time(candles) -> None:
    bars = candles(60, wiggle=0.2)
    last = bars[-1]
    bars[-1] = dataclasses.replace(last, close=last.close + 5, high=last.close + 5.1, volume=500.0)
    answer = await LocalAnalyst().analyse(context(bars))
    by_name = {s.name: s for s in answer.signals}
    assert {"breakout_up", "volume_spike"} <= set(by_name)
    assert by_name["breakout_up"].timestamp_ms == last.timestamp_ms
    assert "20-bar high" in by_name["breakout_up"].detail
    assert (await LocalAnalyst().analyse(context(candles(60, drift=0.5, wiggle=0.01)))).signals[0].name == (
        "rsi_overbought"
    )


async def test_caller_signals_come_first_and_are_bounded(uptrend: list[Candle]) -> None:
    supplied = tuple(SignalEvent(f"rule_{i}", "fired", uptrend[0].timestamp_ms + i) for i in range(15))
    answer = await LocalAnalyst().analyse(context(uptrend, signals=supplied))
    assert [s.name for s in answer.signals[:10]] == [f"rule_{i}" for i in range(5, 15)]


async def test_the_reasoning_walks_through_the_numbers(uptrend: list[Candle]) -> None:
    answer = await LocalAnalyst().analyse(context(uptrend, question="Is this a good entry?"))
    ind = answer.indicators
    text = answer.reasoning
    assert text.startswith("BTC/USDT on 1m: over the last 120 bars")
    assert f"({ind.change_pct:+.2f}%)" in text
    assert f"R² {ind.r_squared:.2f}" in text
    assert f"RSI(14) is {ind.rsi:.1f}" in text
    assert "so the trend reads up" in text and "the read is bullish" in text
    assert "does not forecast" in text  # a question is answered honestly about what was looked at


async def test_too_few_or_broken_candles_are_refused(candles) -> None:
    with pytest.raises(NotEnoughData, match="at least 10 candles"):
        await LocalAnalyst().analyse(context(candles(5)))
    broken = candles(30)
    broken[4] = dataclasses.replace(broken[4], close=float("nan"))
    with pytest.raises(NotEnoughData, match="non-finite"):
        await LocalAnalyst().analyse(context(broken))


async def test_the_desk_answers_locally_without_a_fallback(uptrend: list[Candle]) -> None:
    async with InsightDesk(provider=LocalAnalyst()) as desk:
        insight = await desk.ask(context(uptrend, question="Trend?"))
    assert (insight.provider, insight.fallback, insight.question) == ("local", None, "Trend?")


def test_indicator_formulas_match_hand_computed_values() -> None:
    assert ema([1.0, 2.0, 3.0], 3) == [1.0, 1.5, 2.25]
    slope, r2 = linear_fit([1.0, 3.0, 5.0, 7.0])
    assert (slope, r2) == (2.0, 1.0)
    assert linear_fit([4.0, 4.0, 4.0]) == (0.0, 0.0)
    assert rsi([float(i) for i in range(20)]) == 100.0
    assert rsi([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0]) == pytest.approx(
        50.0
    )
    assert rsi([1.0] * 5) is None
    assert realised_vol_pct([100.0, 100.0, 100.0]) == 0.0


async def test_the_balance_of_signal_directions_sways_the_sentiment(uptrend: list[Candle]) -> None:
    ind = dataclasses.replace(
        (await LocalAnalyst().analyse(context(uptrend))).indicators, change_pct=0.4, rsi=65.0
    )
    buys = [SignalEvent("macd_cross_up", "MACD above signal", 1, "buy")] * 2
    sells = [SignalEvent("rsi_overbought", "RSI 74", 1, "sell")] * 3
    assert score_sentiment("sideways", ind, buys) == "bullish"
    assert score_sentiment("sideways", ind, []) == "neutral"
    assert score_sentiment("sideways", ind, buys + sells) == "neutral"
    answer = await LocalAnalyst().analyse(context(uptrend, signals=tuple(buys)))
    assert "macd_cross_up (buy, MACD above signal)" in answer.reasoning
