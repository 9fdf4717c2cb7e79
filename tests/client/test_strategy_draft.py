"""The Strategies form's state: every condition kind, exit and sizing the form can build survives
`document()` → the backtester's parser → `from_saved()`, and a wrong operand is refused with the operand
parser's own sentence, in the form as it is typed and when the draft is checked."""

from __future__ import annotations

import pytest

from client.backtest_lab import OPERATORS, Condition, StrategyDraft, check_row_operand
from services.backtest import StrategyError, check_operand, parse_strategy
from services.signals.candles import parse_operand
from views.common import Intents
from views.strategies import PAPER_LONG_ONLY, StrategiesView


def _round_trip(draft: StrategyDraft) -> StrategyDraft | None:
    doc = draft.document()
    parse_strategy(doc, check_operand=check_operand)  # the backtester takes it as it is
    return StrategyDraft.from_saved({"symbol": draft.symbol, "timeframe": draft.timeframe, "strategy": doc},
                                    days=draft.days)


@pytest.mark.parametrize("op", list(OPERATORS))
def test_every_comparison_round_trips(op: str) -> None:
    draft = StrategyDraft(buy=(Condition("rsi(14)", op, "30"),), sell=(Condition("close", op, "sma(50, 4h)"),))
    assert _round_trip(draft) == draft


def test_all_and_any_groups_operands_and_hysteresis_round_trip() -> None:
    draft = StrategyDraft(
        buy=(Condition("ema(12)", "cross_above", "ema(26)"), Condition("rsi(14)", "gt", "50", hysteresis=2.0),
             Condition("macd(12, 26, 9).signal", "lt", "0")),
        sell=(Condition("close", "cross_below", "bb(20, 2).lower"), Condition("adx(14, 1d)", "gt", "25")),
        buy_join="all", sell_join="any", timeframe="15m", symbol="ETH/USDT")
    doc = draft.document()
    assert doc["buy"]["op"] == "all" and doc["sell"]["op"] == "any" and doc["buy"]["of"][1]["right"] == 50.0
    assert _round_trip(draft) == draft


@pytest.mark.parametrize("changes", [
    {"exit_signal": False, "take_profit_pct": 5.0},
    {"stop_loss_pct": 2.0, "trailing_stop_pct": 1.5},
    {"time_in_trade": 12, "time_unit": "bars"},
    {"time_in_trade": 36, "time_unit": "hours"},
    {"time_in_trade": 3, "time_unit": "bars", "timeframe": "1d"},
    {"sizing": "quote", "size": 250.0},
    {"sizing": "amount", "size": 0.05},
    {"sizing": "equityPct", "size": 25.0, "fee": 0.001, "slippage": 0.0005},
    {"positions": "long_short"},
    {"positions": "short", "buy": ()},
])
def test_exits_sizing_costs_and_direction_round_trip(changes: dict[str, object]) -> None:
    draft = StrategyDraft(**changes)  # type: ignore[arg-type]
    assert _round_trip(draft) == draft


def test_time_in_trade_means_what_the_backtester_reads() -> None:
    bars = parse_strategy(StrategyDraft(timeframe="4h", time_in_trade=3).document())
    hours = parse_strategy(StrategyDraft(timeframe="4h", time_in_trade=3, time_unit="hours").document())
    assert bars.exits.time_in_trade_ms == 3 * 4 * 3_600_000 and hours.exits.time_in_trade_ms == 3 * 3_600_000


def test_a_strategy_saved_through_the_api_loads_into_the_form() -> None:
    saved = {"symbol": "BTC/USDT", "strategy": {
        "name": "rsi", "timeframe": "1h", "buy": {"crosses_above": ["rsi", 30]}, "sell": {"below": ["rsi(14)", 70]},
        "exit": {"stopLossPct": 3, "timeInTrade": "2d"}}}
    draft = StrategyDraft.from_saved(saved)
    assert draft is not None
    assert draft.buy == (Condition("rsi", "cross_above", "30"),) and draft.sell == (Condition("rsi(14)", "lt", "70"),)
    assert (draft.stop_loss_pct, draft.time_in_trade, draft.time_unit) == (3.0, 48, "hours")
    nested = {"symbol": "BTC/USDT", "strategy": {"buy": {"all": [{"any": [{"gt": ["close", 1]}]}]}}}
    assert StrategyDraft.from_saved(nested) is None  # a nested group: switched on, not edited here


def test_the_moving_average_cross_keeps_its_short_name() -> None:
    assert StrategyDraft.cross("sma", 50, 200, take_profit_pct=5, stop_loss_pct=2).name == \
        "SMA 50/200 1h, TP 5%, SL 2% on BTC/USDT"
    rsi = StrategyDraft(buy=(Condition("rsi(14)", "cross_above", "30"),),
                        sell=(Condition("rsi(14)", "cross_below", "70"),), stop_loss_pct=3)
    assert rsi.name == "Buy rsi(14) crosses above 30, sell rsi(14) crosses below 70, 1h, SL 3% on BTC/USDT"
    assert rsi.strategy_id != StrategyDraft().strategy_id


@pytest.mark.parametrize("operand", ["rsi(1)", "banana", "sma(20, 2h)", "macd(26, 12, 9)", "bb(20, 2).middle_"])
def test_a_wrong_operand_is_refused_with_the_parsers_sentence(operand: str) -> None:
    with pytest.raises(ValueError) as parser:
        parse_operand(operand)
    sentence = str(parser.value)
    assert check_row_operand(operand) == sentence
    with pytest.raises(StrategyError) as refused:
        StrategyDraft(buy=(Condition(operand, "gt", "30"),)).check()
    assert str(refused.value) == f"'buy' condition: {sentence}"
    view = StrategiesView(Intents())
    row = view.buy.rows[0]
    row.left.name.value, row.left.args.value, row.left.timeframe.value = "number", operand, "own"
    assert row.validate() == sentence and row.error.value == sentence and row.error.visible
    assert view.draft() is None and view.error.value == f"'buy' condition: {sentence}"


def test_a_long_short_strategy_is_not_switched_on_for_paper() -> None:
    saved: list[tuple[StrategyDraft, bool]] = []
    view = StrategiesView(Intents(save_strategy=lambda d, on: saved.append((d, on))))
    view.positions.value = "long_short"
    view.positions.on_select(None)  # type: ignore[call-arg, arg-type, misc]
    assert view.positions_note.visible and view.positions_note.value == PAPER_LONG_ONLY
    view.save_on.on_click(None)  # type: ignore[call-arg, arg-type, misc]
    assert saved == [] and view.error.value == PAPER_LONG_ONLY
    view.save.on_click(None)  # type: ignore[call-arg, arg-type, misc]
    assert [(d.positions, on) for d, on in saved] == [("long_short", False)]


def test_presets_fill_the_rows_and_keep_the_market() -> None:
    view = StrategiesView(Intents())
    view.timeframe.value, view.days.value = "4h", "90"
    view.presets.controls[2].on_click(None)  # type: ignore[attr-defined]
    draft = view.draft()
    assert draft == StrategyDraft.ema_rsi(timeframe="4h", days=90)
    assert [r.condition() for r in view.buy.rows] == list(draft.buy)
    assert view.summary_text.value == draft.name
    view.buy.rows[1].right.args.value = "55"  # typed: the summary follows
    view.buy.rows[1].right.args.on_change(None)  # type: ignore[call-arg, arg-type, misc]
    assert view.summary_text.value == StrategyDraft.ema_rsi(timeframe="4h", days=90).name.replace("50", "55")
