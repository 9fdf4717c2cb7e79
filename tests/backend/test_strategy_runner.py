"""The paper strategy runner in a served backend: a switched-on strategy's signal becomes a market order
through the API's order path and fills on the paper broker; take-profit and stop-loss close it; a restart
resumes the position and finishes a written-down order under the same clientOrderId, never a second."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from backend_stub.money import ceil_to, dec
from backend_stub.store.base import Put
from backend_stub.store.sqlite import SqliteStore
from tests.backend.conftest import Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.first_signal import first_buy

MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE
BREAKOUT = {  # buys when a 1-minute candle closes above 30,100, sells when one closes below 29,900
    "name": "breakout",
    "timeframe": "1m",
    "buy": {"gt": ["close", 30_100]},
    "sell": {"lt": ["close", 29_900]},
    "exit": {"takeProfitPct": 5, "stopLossPct": 2},
}


async def switch_on(backend: Running, strategy: dict[str, Any], uid: str = "alice", sid: str = "bo") -> dict[str, Any]:
    r = await backend.http.put(f"/v1/strategies/{sid}", json={"symbol": "BTC/USDT", "strategy": strategy,
                                                               "enabled": True}, headers=auth(uid))
    assert r.status_code in (200, 201), r.text
    return r.json()


async def orders(backend: Running, uid: str = "alice") -> list[dict[str, Any]]:
    return sorted((await backend.get(uid, "/v1/orders")).json(), key=lambda o: o["timestamp"])


async def run_state(backend: Running, uid: str = "alice", sid: str = "bo") -> dict[str, Any]:
    return (await backend.get(uid, f"/v1/strategies/{sid}")).json()["run"]


async def buy_on_breakout(backend: Running, feed: ListFeed) -> dict[str, Any]:
    """Candle 0 closes at 30,000, candle 1 at 30,200: the first trade of candle 2 buys."""
    await switch_on(backend, BREAKOUT)
    await feed.until_followed("BTC/USDT", 2)  # the paper broker and the runner
    await feed.trade("BTC/USDT", 30_000, at_ms=T0 + 1_000)
    await feed.trade("BTC/USDT", 30_200, at_ms=T0 + MINUTE + 1_000)
    assert await orders(backend) == []
    await feed.trade("BTC/USDT", 30_250, at_ms=T0 + 2 * MINUTE + 1_000)
    [buy] = await orders(backend)
    return buy


async def test_a_signal_places_a_paper_order_that_fills_and_take_profit_closes_it(backend: Running,
                                                                                 feed: ListFeed) -> None:
    buy = await buy_on_breakout(backend, feed)
    assert (buy["side"], buy["type"], buy["status"]) == ("buy", "market", "closed")
    assert buy["clientOrderId"] == f"st-bo-buy-{T0 + MINUTE}"  # the strategy and the signal candle
    # The last price and the paper broker's slippage, up to the tick.
    assert dec(buy["average"]) == ceil_to(Decimal(30_250) * Decimal("1.0005"), Decimal("0.01"))
    spent = buy["cost"] + buy["fee"]["cost"]
    assert 0.99 * 100_000 < spent <= 100_000  # all in, within the cash
    run = await run_state(backend)
    assert run["status"] == "running" and run["position"]["amount"] == buy["filled"]
    assert run["lastSignal"] == {"timestamp": T0 + MINUTE, "side": "buy"}

    await feed.trade("BTC/USDT", 31_000, at_ms=T0 + 2 * MINUTE + 2_000)  # +2.4%: nothing yet
    assert len(await orders(backend)) == 1
    await feed.trade("BTC/USDT", round(buy["average"] * 1.05 + 1, 2), at_ms=T0 + 2 * MINUTE + 3_000)
    buy_again, sell = await orders(backend)
    assert (sell["side"], sell["filled"], sell["status"]) == ("sell", buy["filled"], "closed")
    run = await run_state(backend)
    assert run["position"] is None and run["lastFill"]["reason"] == "takeProfit"
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["total"]["USDT"] > 100_000 and not balance["total"].get("BTC")


async def test_stop_loss_closes_the_position(backend: Running, feed: ListFeed) -> None:
    buy = await buy_on_breakout(backend, feed)
    await feed.trade("BTC/USDT", round(buy["average"] * 0.985, 2), at_ms=T0 + 2 * MINUTE + 2_000)  # -1.5%
    assert len(await orders(backend)) == 1
    await feed.trade("BTC/USDT", round(buy["average"] * 0.979, 2), at_ms=T0 + 2 * MINUTE + 3_000)  # -2.1%
    sell = (await orders(backend))[-1]
    assert sell["side"] == "sell" and sell["clientOrderId"] == f"st-bo-stopLoss-{T0 + 2 * MINUTE + 3_000}"
    assert (await run_state(backend))["lastFill"]["reason"] == "stopLoss"


async def test_switched_off_it_places_nothing(backend: Running, feed: ListFeed) -> None:
    await switch_on(backend, BREAKOUT)
    r = await backend.http.put("/v1/strategies/bo", json={"symbol": "BTC/USDT", "strategy": BREAKOUT,
                                                          "enabled": False}, headers=auth("alice"))
    assert r.status_code == 200
    await feed.until_followed("BTC/USDT", 1)  # only the paper broker follows it now
    for minute, price in enumerate((30_000, 30_200, 30_250)):
        await feed.trade("BTC/USDT", price, at_ms=T0 + minute * MINUTE + 1_000)
    assert await orders(backend) == []
    assert (await run_state(backend))["status"] == "off"


async def test_a_restart_resumes_and_never_doubles_an_order(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    feed = ListFeed({"BTC/USDT": 30_000.0})
    async with serve(settings, feed) as backend:
        await feed.until_consumers(1)
        buy = await buy_on_breakout(backend, feed)
        amount, key = buy["filled"], f"buy-{T0 + MINUTE}"
    # A crash between placing the order and writing the result: the runner's state says "pending", flat.
    async with SqliteStore(tmp_path / "state.db") as store:
        doc = await store.get("alice", "strategies", "bo")
        assert doc is not None
        doc["run"] = {**doc["run"], "position": None, "lastSignal": None,
                      "pending": {"side": "buy", "amount": str(amount), "key": key}}
        await store.transact("alice", [Put("strategies", "bo", doc)])
    feed = ListFeed({"BTC/USDT": 30_300.0})
    async with serve(settings, feed) as backend:
        await feed.until_followed("BTC/USDT", 2)
        [only] = await orders(backend)  # the pending order was found under its key, not placed again
        assert only["id"] == buy["id"]
        run = await run_state(backend)
        assert run["pending"] is None and run["position"]["amount"] == amount
        # The same candles again (a feed replaying them after the restart): no second entry.
        await feed.trade("BTC/USDT", 30_000, at_ms=T0 + 1_000)
        await feed.trade("BTC/USDT", 30_200, at_ms=T0 + MINUTE + 1_000)
        await feed.trade("BTC/USDT", 30_250, at_ms=T0 + 2 * MINUTE + 1_000)
        assert [o["id"] for o in await orders(backend)] == [buy["id"]]
        # And it still manages the position it resumed: a stop-loss closes it.
        await feed.trade("BTC/USDT", round(buy["average"] * 0.97, 2), at_ms=T0 + 2 * MINUTE + 5_000)
        assert [o["side"] for o in await orders(backend)] == ["buy", "sell"]


async def test_on_the_synthetic_market_a_signal_fills_at_the_market_price(tmp_path: Path) -> None:
    """The default market: the runner warms on the feed's history and acts on the first signal after it
    is switched on, at the price every process computes for that moment."""
    strategy_doc = {"name": "above sma", "timeframe": "1m", "buy": {"gt": ["close", "sma(5)"]},
                    "sell": {"lt": ["close", "sma(5)"]}}
    # Switched on 30 s before that candle closes; the market stands still until then, and runs 10× real
    # time after.
    market = first_buy(strategy_doc)
    first = market.first_ms
    feed = market.feed()
    async with serve(make_settings(tmp_path), feed) as backend:
        await switch_on(backend, strategy_doc)
        market.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a condition with a deadline: the market runs on its clock
            placed = await orders(backend)
            if placed and (await run_state(backend))["position"]:  # the order commits before the state
                break
            await asyncio.sleep(0.05)
        assert placed, await run_state(backend)
        [buy] = placed
        assert buy["clientOrderId"] == f"st-bo-buy-{first}" and buy["status"] == "closed"
        assert abs(buy["average"] / market.next_open() - 1) < 0.002  # at the next candle's open (+ slippage)
        assert (await run_state(backend))["position"]["side"] == "long"


async def test_an_order_the_market_refuses_is_said_in_the_state_and_the_runner_carries_on(
        backend: Running, feed: ListFeed) -> None:
    await switch_on(backend, {**BREAKOUT, "sizing": {"type": "quote", "value": 6}})  # above the 5 USDT minimum
    await feed.until_followed("BTC/USDT", 2)
    for minute, price in enumerate((30_000, 30_200, 30_250)):
        await feed.trade("BTC/USDT", price, at_ms=T0 + minute * MINUTE + 1_000)
    assert await orders(backend) == []
    run = await run_state(backend)
    assert run["status"] == "running" and run["position"] is None and run["pending"] is None
    assert "5" in run["error"] and "USDT" in run["error"], run["error"]  # the minimum order value


async def test_a_size_below_the_markets_smallest_amount_is_said_in_the_state(backend: Running,
                                                                           feed: ListFeed) -> None:
    await switch_on(backend, {**BREAKOUT, "sizing": {"type": "quote", "value": 1}})  # 0.00003 BTC: below 0.0001
    await feed.until_followed("BTC/USDT", 2)
    for minute, price in enumerate((30_000, 30_200, 30_250)):
        await feed.trade("BTC/USDT", price, at_ms=T0 + minute * MINUTE + 1_000)
    assert await orders(backend) == []
    assert "less than the market's smallest amount (0.0001)" in (await run_state(backend))["error"]
