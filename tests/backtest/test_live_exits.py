"""The live runner's own exits, at the backtester's levels: take-profit, stop-loss, trailing stop and time
in trade each close the position on the trade that reaches them, with keys that say why and when."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.backtest import parse_strategy
from services.backtest.live import LiveFill, LiveStrategy, Position

MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE


class Broker:
    """Fills every market order at the last trade's price, no fee; remembers the keys."""

    def __init__(self) -> None:
        self.price, self.now = Decimal(0), 0
        self.keys: list[str] = []

    async def cash(self) -> Decimal:
        return Decimal(10_000)

    async def market_order(self, side: str, amount: Decimal, *, key: str) -> LiveFill:
        self.keys.append(key)
        return LiveFill(side, amount, self.price, Decimal(0), self.now)


async def entered(exits: dict[str, Any]) -> tuple[LiveStrategy, Broker]:
    """A long entered at 100 on the first trade of candle 2 (candle 1 closed above 100.5)."""
    doc = {"timeframe": "1m", "buy": {"gt": ["close", 100.5]}, "sell": {"lt": ["close", 50]},
           "exit": {"signal": False, **exits}}
    broker = Broker()
    live = LiveStrategy(parse_strategy(doc), symbol="X/USDT", timeframe="1m", broker=broker)
    for ts, price in ((T0 + 1_000, 100.0), (T0 + MINUTE + 1_000, 101.0), (T0 + 2 * MINUTE + 1_000, 100.0)):
        await trade(live, broker, ts, price)
    assert live.position is not None and live.position.entry_price == 100 and live.position.entry_ms == T0 + 2 * MINUTE
    return live, broker


async def trade(live: LiveStrategy, broker: Broker, ts: int, price: float) -> None:
    broker.price, broker.now = Decimal(str(price)), ts
    await live.on_trade(ts, price, 1.0)


@pytest.mark.parametrize(("exits", "path", "reason"), [
    ({"takeProfitPct": 5}, [104.9, 105.0], "takeProfit"),
    ({"stopLossPct": 2}, [98.1, 98.0], "stopLoss"),
    ({"trailingStopPct": 1}, [104.0, 110.0, 109.0, 108.9], "trailingStop"),  # 1% below the best, 110
])
async def test_a_level_closes_the_position_on_the_trade_that_reaches_it(exits: dict[str, Any], path: list[float],
                                                                        reason: str) -> None:
    live, broker = await entered(exits)
    for i, price in enumerate(path):
        assert live.position is not None, f"closed too early, before {price}"
        await trade(live, broker, T0 + 2 * MINUTE + 2_000 + i, price)
    assert live.position is None and live.fills[-1].reason == reason
    assert broker.keys[-1] == f"{reason}-{T0 + 2 * MINUTE + 2_000 + len(path) - 1}"


async def test_time_in_trade_exits_at_the_first_candle_opening_after_it() -> None:
    live, broker = await entered({"timeInTrade": "2m"})
    await trade(live, broker, T0 + 3 * MINUTE + 59_000, 100.0)  # candle 3: 1 minute in
    assert live.position is not None
    await trade(live, broker, T0 + 4 * MINUTE + 5, 100.0)  # candle 4 opens at entry + 2m
    assert live.position is None and live.fills[-1].reason == "time"


async def test_a_restored_position_keeps_its_levels_and_its_last_signal() -> None:
    doc = {"timeframe": "1m", "buy": {"gt": ["close", 100.5]}, "exit": {"stopLossPct": 2}}
    broker = Broker()
    live = LiveStrategy(parse_strategy(doc), symbol="X/USDT", timeframe="1m", broker=broker)
    live.restore(Position(1, Decimal(1), Decimal(100), T0 + 2 * MINUTE, Decimal(100)), (T0 + MINUTE, 1))
    for ts, price in ((T0 + 1_000, 100.0), (T0 + MINUTE + 1_000, 101.0), (T0 + 2 * MINUTE + 1_000, 100.0)):
        await trade(live, broker, ts, price)  # the same candles again: the signal was acted on already
    assert broker.keys == []
    await trade(live, broker, T0 + 2 * MINUTE + 2_000, 97.9)
    assert broker.keys == [f"stopLoss-{T0 + 2 * MINUTE + 2_000}"]


async def test_the_candle_forming_at_the_start_closes_with_its_whole_range() -> None:
    doc = {"timeframe": "1m", "buy": {"gt": ["high", 105]}}
    broker = Broker()
    live = LiveStrategy(parse_strategy(doc), symbol="X/USDT", timeframe="1m", broker=broker)
    live.warm([(T0, 100, 101, 99, 100, 1.0)])
    live.warm_forming(T0 + MINUTE, 100, 106, 99, 100, 2.0)  # its high was before the runner started
    await trade(live, broker, T0 + MINUTE + 30_000, 100.5)  # the stream carries it on
    await trade(live, broker, T0 + 2 * MINUTE + 1, 100.0)  # it closes with high 106: buy
    assert broker.keys == [f"buy-{T0 + MINUTE}"]
