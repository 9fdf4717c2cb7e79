"""The event-skipping loop gives exactly the fills of the plain per-candle loop, over random candles, random
signals and every kind of exit; and the fill convention holds on hand-made candles."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from services.backtest.candles import Candles, make_candles
from services.backtest.engine import net_signal, run, run_per_candle
from services.backtest.strategy import parse_strategy

CASH = Decimal(10_000)


def random_candles(rng: np.random.Generator, n: int) -> Candles:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    if n > 10:  # some candles exactly as far from high as from low: the tie rule
        k = rng.integers(0, n, n // 10)
        high[k] = open_[k] + (open_[k] - low[k])
        close[k] = np.clip(close[k], low[k], high[k])
    ts = 1_700_000_000_000 + 60_000 * np.arange(n)
    return make_candles(ts, open_, high, low, close)


def _fills(result):  # noqa: ANN001, ANN202
    return [(f.side, f.amount, f.price, f.fee, f.timestamp_ms) for f in result.fills]


@pytest.mark.parametrize("seed", range(120))
def test_event_skipping_equals_per_candle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    candles = random_candles(rng, n)
    density = rng.uniform(0.01, 0.2)
    signal = net_signal(rng.random(n) < density, rng.random(n) < density, n)
    exits: dict[str, object] = {"signal": bool(rng.random() < 0.7)}
    for key, scale in (("takeProfitPct", 4), ("stopLossPct", 3), ("trailingStopPct", 3)):
        if rng.random() < 0.5:
            exits[key] = float(np.round(rng.uniform(0.2, scale), 2))
    if rng.random() < 0.3:
        exits["timeInTrade"] = f"{int(rng.integers(2, 60))}m"
    strategy = parse_strategy({
        "buy": {"gt": ["close", 0]}, "sell": {"lt": ["close", 0]},
        "positions": ["long", "short", "long_short"][seed % 3], "exit": exits,
        "sizing": [{"type": "equityPct", "value": 100}, {"type": "quote", "value": 2500},
                   {"type": "amount", "value": 7}][seed % 3 if seed % 2 else 0],
        "fee": [0, 0.001][seed % 2], "slippage": [0, 0.0005][(seed // 2) % 2],
    })
    fast = run(strategy, candles, signal, cash=CASH)
    slow = run_per_candle(strategy, candles, signal, cash=CASH)
    assert _fills(fast) == _fills(slow)
    assert [t.exit_reason for t in fast.trades] == [t.exit_reason for t in slow.trades]
    assert fast.final_cash == slow.final_cash


def _candles(rows: list[tuple[float, float, float, float]]) -> Candles:
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return make_candles(60_000 * np.arange(len(rows)), o, h, lo, c)


def test_signal_at_a_close_fills_at_the_next_open_and_the_end_closes_at_the_last_close() -> None:
    candles = _candles([(10, 11, 9, 10), (12, 13, 11, 12), (14, 15, 13, 14), (16, 17, 15, 15.5)])
    signal = np.array([1, 0, 0, 0], dtype=np.int8)
    result = run(parse_strategy({"buy": {"gt": ["close", 0]}}), candles, signal, cash=Decimal(1200))
    (trade,) = result.trades
    assert (trade.entry_index, trade.entry_price, trade.amount) == (1, Decimal(12), Decimal(100))
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, Decimal("15.5"), "end")
    assert trade.pnl == Decimal(350)


def test_a_candle_touching_both_levels_exits_at_the_one_its_path_reaches_first() -> None:
    strategy = parse_strategy({"buy": {"gt": ["close", 0]}, "exit": {"takeProfitPct": 10, "stopLossPct": 10}})
    signal = np.array([1, 0, 0], dtype=np.int8)
    # Entry at 100; candle 2 opens at 104, nearer its high (111) than its low (89): take-profit at 110 first.
    up = run(strategy, _candles([(100, 100, 100, 100), (100, 101, 99, 100), (104, 111, 89, 95)]), signal,
             cash=Decimal(1000))
    assert (up.trades[0].exit_reason, up.trades[0].exit_price) == ("takeProfit", Decimal(110))
    # Opens nearer the low: stop at 90 first.
    down = run(strategy, _candles([(100, 100, 100, 100), (100, 101, 99, 100), (96, 111, 89, 95)]), signal,
               cash=Decimal(1000))
    assert (down.trades[0].exit_reason, down.trades[0].exit_price) == ("stopLoss", Decimal(90))
    # Exactly halfway: the high first (the order book's rule).
    tie = run(strategy, _candles([(100, 100, 100, 100), (100, 101, 99, 100), (100, 111, 89, 95)]), signal,
              cash=Decimal(1000))
    assert tie.trades[0].exit_reason == "takeProfit"
    # A gap below the stop fills at the open, not at the level.
    gap = run(strategy, _candles([(100, 100, 100, 100), (100, 101, 99, 100), (80, 85, 79, 84)]), signal,
              cash=Decimal(1000))
    assert (gap.trades[0].exit_reason, gap.trades[0].exit_price) == ("stopLoss", Decimal(80))
