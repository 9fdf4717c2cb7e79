"""Parameter sweep with an in-sample/out-of-sample split: ranking, progress, cancel, and the warning when
the in-sample winner fails on the candles it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from services.backtest.candles import make_candles
from services.backtest.operands import check_operand
from services.backtest.strategy import StrategyError
from services.backtest.sweep import fill_in, sweep

TEMPLATE = {
    "name": "SMA $fast/$slow",
    "buy": {"cross_above": ["sma($fast)", "sma($slow)"]},
    "sell": {"cross_below": ["sma($fast)", "sma($slow)"]},
    "exit": {"stopLossPct": "$sl"},
}
SPACE = {"fast": [3, 5, 8], "slow": [13, 21], "sl": [50]}


def _candles(close: np.ndarray):  # noqa: ANN202
    open_ = np.concatenate(([close[0]], close[:-1]))
    return make_candles(60_000 * np.arange(close.shape[0]), open_, np.maximum(open_, close) * 1.001,
                        np.minimum(open_, close) * 0.999, close)


def _trend_then_chop(n: int = 4000) -> np.ndarray:
    t = np.arange(n)
    up = 100 * np.exp(0.0008 * t[: int(n * 0.7)]) * (1 + 0.01 * np.sin(t[: int(n * 0.7)] / 9))
    rng = np.random.default_rng(3)
    chop = up[-1] * np.exp(np.cumsum(rng.normal(-0.0006, 0.006, n - up.shape[0])))
    return np.concatenate((up, chop))


def test_fill_in_puts_numbers_and_text_in_place() -> None:
    doc = fill_in(TEMPLATE, {"fast": 5, "slow": 21, "sl": 2.5})
    assert doc["buy"] == {"cross_above": ["sma(5)", "sma(21)"]} and doc["exit"] == {"stopLossPct": 2.5}
    with pytest.raises(StrategyError, match=r"uses \$slow"):
        fill_in(TEMPLATE, {"fast": 5, "sl": 1})


def test_sweep_ranks_in_sample_and_warns_when_the_winner_fails_out_of_sample() -> None:
    seen: list[tuple[int, int]] = []
    report = sweep(TEMPLATE, _candles(_trend_then_chop()), SPACE, metric="totalReturn",
                   check_operand=check_operand, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)] and not report.cancelled
    scores = [c.score("totalReturn") for c in report.ranked]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6
    best = report.ranked[0]
    assert best.in_sample["totalReturn"] > 0 > best.out_of_sample["totalReturn"]  # type: ignore[index]
    assert report.warning is not None and "loses out of sample" in report.warning
    assert f"fast={best.params['fast']}" in report.warning


def test_no_warning_when_the_winner_holds_up() -> None:
    t = np.arange(4000)
    steady = 100 * np.exp(0.0008 * t) * (1 + 0.01 * np.sin(t / 9))  # one regime throughout
    report = sweep(TEMPLATE, _candles(steady), SPACE, metric="totalReturn", check_operand=check_operand)
    assert report.ranked[0].out_of_sample["totalReturn"] > 0  # type: ignore[index]
    assert report.warning is None


def test_cancel_stops_between_grid_points_and_keeps_what_was_done() -> None:
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    report = sweep(TEMPLATE, _candles(_trend_then_chop(1000)), SPACE, cancelled=cancelled, check_operand=check_operand)
    assert report.cancelled and len(report.ranked) == 2 and report.total == 6


def test_a_bad_grid_point_is_refused_before_any_work() -> None:
    with pytest.raises(StrategyError, match="with fast=1"):
        sweep(TEMPLATE, _candles(_trend_then_chop(500)), {"fast": [1], "slow": [5], "sl": [2]},
              check_operand=check_operand)
