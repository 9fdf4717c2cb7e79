"""The paper strategy runner in the split deployment, in one process on real parts (a served `SKEET_ROLE=api`
app, two worker apps, SQLite files shared through one path, the in-process bus, a feed the test drives): a
strategy switched on through the API is picked up by the worker holding the `strategies` lease and buys on
its signal; when that worker stops, the standby takes over, resumes the position from the store, finishes
an order written down as pending under the same clientOrderId (no second buy) and trades on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from backend_stub.brokers.paper import PaperBroker
from backend_stub.bus.memory import MemoryBus
from backend_stub.settings import Settings
from backend_stub.store.base import ORDERS, STRATEGIES, Put
from backend_stub.store.sqlite import SqliteStore
from backend_stub.strategies import StrategyBook, StrategyIn
from backend_stub.worker import create_worker_app
from backend_stub.workers import StrategyWorker
from tests.backend.conftest import Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.backend.test_strategy_runner import BREAKOUT, MINUTE, T0

DEADLINE_S = 10.0


async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def worker(settings: Settings, name: str, feed: ListFeed, bus: MemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    """A worker app's lifespan (its workers running) and a client for its `/healthz`."""
    app = create_worker_app(replace(settings, role="worker", worker_id=name), feed=feed, bus=bus)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as http:
            yield http


async def holds_strategies(http: httpx.AsyncClient) -> bool:
    return bool((await http.get("/healthz")).json()["strategies"])


async def orders(api: Running) -> list[dict[str, Any]]:
    return sorted((await api.get("alice", "/v1/orders")).json(), key=lambda o: o["timestamp"])


async def run_state(api: Running) -> dict[str, Any]:
    return (await api.get("alice", "/v1/strategies/bo")).json()["run"]


async def test_a_worker_runs_a_strategy_switched_on_in_the_api_and_a_successor_never_doubles_it(
    tmp_path: Path,
) -> None:
    # Events carry every change here: re-reading the store would only hide a lost one.
    settings = make_settings(tmp_path, role="api", bus="pubsub", lease_ttl_s=3.0, reconcile_s=3600.0)
    feed, bus = ListFeed({"BTC/USDT": 30_000.0}), MemoryBus()
    async with serve(settings, feed, bus=bus) as api, AsyncExitStack() as stack:
        w1 = AsyncExitStack()
        stack.push_async_callback(w1.aclose)  # stopped by the test below; on a failure, here
        first = await w1.enter_async_context(worker(settings, "w1", feed, bus))
        standby = await stack.enter_async_context(worker(settings, "w2", feed, bus))
        assert await holds_strategies(first) and not await holds_strategies(standby)  # one lease, one runner

        r = await api.http.put("/v1/strategies/bo", json={"symbol": "BTC/USDT", "strategy": BREAKOUT,
                                                          "enabled": True}, headers=auth("alice"))
        assert r.status_code == 201, r.text  # role api switches it on (no runner here: the worker's)
        await feed.until_followed("BTC/USDT", 2)  # w1's matching and w1's runner, told by the bus

        async def running() -> bool:
            return (await run_state(api))["status"] == "running"

        await until("the worker writes the strategy's state", running)
        await feed.trade("BTC/USDT", 30_000, at_ms=T0 + 1_000)
        await feed.trade("BTC/USDT", 30_200, at_ms=T0 + MINUTE + 1_000)
        assert await orders(api) == []
        await feed.trade("BTC/USDT", 30_250, at_ms=T0 + 2 * MINUTE + 1_000)
        [buy] = await orders(api)
        assert (buy["side"], buy["status"], buy["clientOrderId"]) == ("buy", "closed", f"st-bo-buy-{T0 + MINUTE}")
        assert (await run_state(api))["position"]["amount"] == buy["filled"]

        # w1 dies having placed the buy but before writing it down: its state still says "pending".
        async with SqliteStore(tmp_path / "state.db") as store:
            doc = await store.get("alice", STRATEGIES, "bo")
            assert doc is not None
            doc["run"] = {**doc["run"], "position": None, "lastSignal": None, "lastFill": None,
                          "pending": {"side": "buy", "amount": str(buy["filled"]), "key": f"buy-{T0 + MINUTE}"}}
            await store.transact("alice", [Put(STRATEGIES, "bo", doc)])
        await w1.aclose()
        # w1 stopped (its leases released): the standby takes the strategies over and resumes.
        await until("w2 takes the strategies over", lambda: holds_strategies(standby))
        await feed.until_followed("BTC/USDT", 2)  # w2's matching and w2's runner

        async def resumed() -> bool:
            run = await run_state(api)
            return run["pending"] is None and run["position"] is not None

        await until("w2 finishes the pending buy", resumed)
        assert await orders(api) == [buy]  # the same clientOrderId: the desk returned the first order
        assert (await run_state(api))["position"]["amount"] == buy["filled"]
        # The same candle again: held already, nothing more. Take-profit: w2 sells what w1 bought, once.
        await feed.trade("BTC/USDT", 30_260, at_ms=T0 + 2 * MINUTE + 2_000)
        assert len(await orders(api)) == 1
        await feed.trade("BTC/USDT", round(buy["average"] * 1.05 + 1, 2), at_ms=T0 + 2 * MINUTE + 3_000)
        first_buy, sell = await orders(api)
        assert first_buy == buy and (sell["side"], sell["filled"], sell["status"]) == ("sell", buy["filled"], "closed")
        balance = (await api.get("alice", "/v1/balance")).json()
        assert balance["total"]["USDT"] > 100_000 and not balance["total"].get("BTC")

        # Deleted through the API: the worker stops following the symbol for it.
        assert (await api.http.delete("/v1/strategies/bo", headers=auth("alice"))).status_code == 200
        await feed.until_followed("BTC/USDT", 1)  # w2's matching alone


async def test_a_strategy_whose_event_was_lost_is_found_by_the_workers_re_read(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, role="api", bus="pubsub", lease_ttl_s=30.0, reconcile_s=0.05)
    feed = ListFeed({"BTC/USDT": 30_000.0})
    lost, bus = MemoryBus(), MemoryBus()  # the API publishes where no worker listens
    async with serve(settings, feed, bus=lost) as api, worker(settings, "w1", feed, bus) as w1:
        assert await holds_strategies(w1)
        body = {"symbol": "BTC/USDT", "strategy": BREAKOUT, "enabled": True}
        assert (await api.http.put("/v1/strategies/bo", json=body, headers=auth("alice"))).status_code == 201
        await feed.until_followed("BTC/USDT", 2)  # w1's matching and, re-read from the store, its runner

        async def status(expected: str) -> bool:
            return bool((await run_state(api))["status"] == expected)

        await until("running", lambda: status("running"))
        # Switched off, with no event either: the re-read stops it and says so.
        r = await api.http.put("/v1/strategies/bo", json={**body, "enabled": False}, headers=auth("alice"))
        assert r.status_code == 200
        await feed.until_followed("BTC/USDT", 1)
        await until("off", lambda: status("off"))


async def test_a_stale_holder_writes_nothing_and_stops_when_its_successor_trades(tmp_path: Path) -> None:
    path, bus, feed = tmp_path / "state.db", MemoryBus(), ListFeed({"BTC/USDT": 30_000.0})
    async with AsyncExitStack() as stack:

        async def store() -> SqliteStore:
            return await stack.enter_async_context(SqliteStore(path))

        async def strategy_worker(name: str, ttl_s: float) -> StrategyWorker:
            the_store = await store()
            broker = PaperBroker(store=the_store, feed=feed, role="api", publish=bus.publish)
            await broker.start()
            stack.push_async_callback(broker.aclose)
            made = StrategyWorker(store=the_store, feed=feed, broker=broker, bus=bus, worker_id=name,
                                  lease_ttl_s=ttl_s, reconcile_s=3600.0, fee=Decimal("0.001"), slippage=Decimal(0))
            await made.start()
            stack.push_async_callback(made.aclose)
            return made

        book = StrategyBook(store=await store(), markets=feed.markets, publish=bus.publish)  # the API's
        stale = await strategy_worker("w1", 1.0)  # its lease soon expires once it stops renewing
        assert stale.holds
        await book.put("alice", "bo", StrategyIn(symbol="BTC/USDT", strategy=BREAKOUT, enabled=True))
        await feed.until_followed("BTC/USDT", 1)  # w1's runner
        # w1 freezes (its lease loop and events stop; its runner still follows the market); w2 takes over.
        for task in stale._tasks:
            task.cancel()
        await asyncio.gather(*stale._tasks, return_exceptions=True)
        successor = await strategy_worker("w2", 30.0)  # a loaded machine's pauses never lose this one

        async def taken() -> bool:
            await successor.keeper.once()
            return successor.holds

        await until("w2 takes the strategies over", taken)
        await feed.until_followed("BTC/USDT", 2)  # both runners: w1 has not noticed
        # The signal reaches both: w1's first write (the pending order) is refused, so it places nothing.
        await feed.trade("BTC/USDT", 30_000, at_ms=T0 + 1_000)
        await feed.trade("BTC/USDT", 30_200, at_ms=T0 + MINUTE + 1_000)
        await feed.trade("BTC/USDT", 30_250, at_ms=T0 + 2 * MINUTE + 1_000)
        placed = await (await store()).list("alice", ORDERS)
        assert [o["clientOrderId"] for o in placed] == [f"st-bo-buy-{T0 + MINUTE}"]

        async def dropped() -> bool:
            return not stale.holds

        await until("w1 drops the runner", dropped)
        await feed.until_followed("BTC/USDT", 1)
        doc = await (await store()).get("alice", STRATEGIES, "bo")
        assert doc is not None and doc["run"]["position"]["amount"] == placed[0]["filled"] and not doc["run"]["error"]


async def test_a_runner_that_has_not_heard_of_a_switch_off_places_no_order(tmp_path: Path) -> None:
    path, bus, lost, feed = tmp_path / "state.db", MemoryBus(), MemoryBus(), ListFeed({"BTC/USDT": 30_000.0})
    async with AsyncExitStack() as stack:
        the_store = await stack.enter_async_context(SqliteStore(path))
        broker = PaperBroker(store=the_store, feed=feed, role="api", publish=bus.publish)
        await broker.start()
        stack.push_async_callback(broker.aclose)
        worker = StrategyWorker(store=the_store, feed=feed, broker=broker, bus=bus, worker_id="w1", lease_ttl_s=30.0,
                                reconcile_s=3600.0, fee=Decimal("0.001"), slippage=Decimal(0))  # fmt: skip
        await worker.start()
        stack.push_async_callback(worker.aclose)
        api_store = await stack.enter_async_context(SqliteStore(path))
        heard = StrategyBook(store=api_store, markets=feed.markets, publish=bus.publish)
        unheard = StrategyBook(store=api_store, markets=feed.markets, publish=lost.publish)  # its event is lost
        body = StrategyIn(symbol="BTC/USDT", strategy=BREAKOUT, enabled=True)
        await heard.put("alice", "bo", body)
        await feed.until_followed("BTC/USDT", 1)
        await unheard.put("alice", "bo", body.model_copy(update={"enabled": False}))
        for minute, price in enumerate((30_000, 30_200, 30_250)):  # the buy signal
            await feed.trade("BTC/USDT", price, at_ms=T0 + minute * MINUTE + 1_000)
        assert await the_store.list("alice", ORDERS) == []
        doc = await the_store.get("alice", STRATEGIES, "bo")
        assert doc is not None and not doc["enabled"] and "switched off" in doc["run"]["error"]
