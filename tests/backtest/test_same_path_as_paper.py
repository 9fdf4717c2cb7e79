"""Backtest = paper on the same ticks: one stream of trades goes to the backend's PaperBroker (driven by the
live strategy runner) and, as 1-minute candles, to the backtester. Both give the same fills: candle, side,
amount, price, fee."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import numpy as np

from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.paper import PaperBroker
from backend_stub.store.sqlite import SqliteStore
from services.backtest.candles import make_candles
from services.backtest.drift import drift_report
from services.backtest.engine import MarketSteps
from services.backtest.live import LiveFill, LiveStrategy
from services.backtest.runner import backtest
from services.backtest.strategy import parse_strategy
from services.ledger import dec
from tests.backend.listfeed import ListFeed

ROOT = Path(__file__).resolve().parents[2]
SYMBOL, UID, MINUTE = "BTC/USDT", "alice", 60_000
STEPS = MarketSteps(price_step=Decimal("0.01"), amount_step=Decimal("0.0001"))


def _ticks(minutes: int, seed: int) -> list[tuple[int, float, float]]:
    rng = random.Random(seed)
    start, price, out = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE, 30_000.0, []
    for m in range(minutes):
        drift = 40.0 * (1 if (m // 25) % 2 == 0 else -1)  # swings so SMA 10/20 cross both ways
        for t in sorted(rng.sample(range(1, MINUTE), 6)):
            price = round(max(1000.0, price + drift / 6 + rng.gauss(0, 12)), 2)
            out.append((start + m * MINUTE + t, price, round(rng.uniform(0.01, 2), 4)))
    return out


def _candles(ticks: list[tuple[int, float, float]]):  # noqa: ANN202
    rows: dict[int, list[float]] = {}
    for ts, price, amount in ticks:
        bucket = ts - ts % MINUTE
        row = rows.get(bucket)
        if row is None:
            rows[bucket] = [price, price, price, price, amount]
        else:
            row[1], row[2], row[3], row[4] = max(row[1], price), min(row[2], price), price, row[4] + amount
    stamps = sorted(rows)
    cols = np.array([rows[t] for t in stamps])
    return make_candles(stamps, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], cols[:, 4])


class PaperAccount:
    """The runner's broker: the backend's PaperBroker for one user."""

    def __init__(self, broker: PaperBroker) -> None:
        self.broker, self.n = broker, 0

    async def cash(self) -> Decimal:
        return dec((await self.broker.fetch_balance(UID))["total"]["USDT"])

    async def market_order(self, side: str, amount: Decimal, *, key: str) -> LiveFill:
        self.n += 1
        order = await self.broker.create_order(UID, OrderRequest(symbol=SYMBOL, side=side, type="market",  # type: ignore[arg-type]
                                                                 amount=amount, client_order_id=f"s-{key}"))
        (trade,) = order["trades"]
        return LiveFill(side, dec(trade["amount"]), dec(trade["price"]), dec(trade["fee"]["cost"]),
                        int(trade["timestamp"]))


async def test_backtest_and_paper_session_make_the_same_fills(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "assets/strategies/sma-cross.json").read_text())
    strategy = parse_strategy(doc | {"fee": 0.001, "slippage": 0.0005})  # the paper broker's taker fee and slippage
    ticks = _ticks(300, seed=11)
    now = {"ms": ticks[0][0]}
    feed = ListFeed({SYMBOL: ticks[0][1]})
    async with SqliteStore(tmp_path / "state.db") as store, PaperBroker(
            store=store, feed=feed, starting_balance=Decimal(10_000), taker_fee=Decimal("0.001"),
            slippage=Decimal("0.0005"), clock=lambda: now["ms"] / 1000) as broker:
        runner = LiveStrategy(strategy, symbol=SYMBOL, timeframe="1m", broker=PaperAccount(broker), market=STEPS)
        for ts, price, amount in ticks:
            now["ms"] = ts
            await feed.trade(SYMBOL, price, amount)  # the broker's matching sees the trade first
            await runner.on_trade(ts, price, amount)
    live = runner.fills
    result = backtest(strategy, _candles(ticks), cash=Decimal(10_000), symbol=SYMBOL, market=STEPS)
    tested = list(result.run.fills)
    if result.trades and result.trades[-1].exit_reason == "end":
        tested = tested[:-1]  # the backtest closes what is open at the end; the paper session keeps it
    assert len(live) >= 6, "the ticks should make several round trips"
    assert [(f.side, f.amount, f.price, f.fee, f.timestamp_ms - f.timestamp_ms % MINUTE) for f in live] == \
        [(f.side, f.amount, f.price, f.fee, f.timestamp_ms) for f in tested]
    report = drift_report(live, result, timeframe_ms=MINUTE)
    assert report.matched == len(live) // 2 and not report.unmatched_live and not report.unmatched_backtest
    assert report.max_price_drift_bps == 0 and report.fee_difference == 0


def test_drift_report_shows_a_late_and_dearer_live_session() -> None:
    doc = json.loads((ROOT / "assets/strategies/sma-cross.json").read_text())
    strategy = parse_strategy(doc)
    ticks = _ticks(300, seed=5)
    result = backtest(strategy, _candles(ticks), cash=Decimal(10_000), symbol=SYMBOL)
    closed = [t for t in result.trades if t.exit_reason != "end"]
    assert len(closed) >= 3
    # A live session that filled each order 20 s late at a price 0.1% worse, paying 1 USDT more per fill.
    live = []
    for t in closed:
        live.append(LiveFill("buy", t.amount, t.entry_price * Decimal("1.001"), t.entry_fee + 1, t.entry_ms + 20_000))
        live.append(LiveFill("sell", t.amount, t.exit_price * Decimal("0.999"), t.exit_fee + 1, t.exit_ms + 20_000))
    report = drift_report(live, result, timeframe_ms=MINUTE)
    assert report.matched == len(closed)
    row = report.rows[0]
    assert row.entry_delay_ms == 20_000
    assert abs(row.entry_drift_bps - 10.0) < 1e-9 and abs(row.exit_drift_bps - 10.0) < 1e-9  # type: ignore[operator]
    assert report.fee_difference == 2 * len(closed)
    assert report.pnl_difference < 0
    assert "matched" in report.summary() and report.to_json()["trades"][0]["entryDelayMs"] == 20_000
