"""Workers in one process, on real parts (two SQLite stores on one file, the in-process bus, a feed the
test drives): the stateless API's resting order is announced and filled by the worker owning its symbol;
a worker that stopped renewing loses the symbol to another, which rebuilds the book from the store and
fills the order once; the stale worker's fill is refused (fenced) and leaves nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import pytest

from backend_stub.alerts import AlertBook
from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.paper import PaperBroker
from backend_stub.bus.memory import MemoryBus
from backend_stub.store.base import ALERTS, ORDERS, LeaseLost, StateStore
from backend_stub.store.sqlite import SqliteStore
from backend_stub.workers import AlertWorker, MatchingWorker
from services.market.types import Tick
from tests.backend.listfeed import ListFeed

DEADLINE_S = 10.0


async def until(what: str, check: Callable[[], bool | Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        await asyncio.sleep(0.01)


class Parts:
    def __init__(self, stack: AsyncExitStack, path: Path) -> None:
        self.stack = stack
        self.path = path
        self.bus = MemoryBus()
        self.feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})

    async def store(self) -> StateStore:
        return await self.stack.enter_async_context(SqliteStore(self.path))

    async def api(self) -> PaperBroker:
        broker = PaperBroker(store=await self.store(), feed=self.feed, role="api", publish=self.bus.publish)
        await broker.start()
        return broker

    async def worker(self, name: str, *, ttl_s: float = 30.0, reconcile_s: float = 60.0) -> MatchingWorker:
        store = await self.store()
        worker = MatchingWorker(
            broker=PaperBroker(store=store, feed=self.feed, role="worker"), store=store, feed=self.feed,
            bus=self.bus, worker_id=name, lease_ttl_s=ttl_s, reconcile_s=reconcile_s,
        )  # fmt: skip
        await worker.start()
        self.stack.push_async_callback(worker.aclose)
        return worker


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    async with AsyncExitStack() as stack:
        yield Parts(stack, tmp_path / "state.db")


def buy(price: str, key: str) -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.01"),
                        client_order_id=key, price=Decimal(price))  # fmt: skip


async def test_the_api_announces_a_resting_order_and_the_owning_worker_fills_it(parts: Parts) -> None:
    worker = await parts.worker("w1")
    assert worker.symbols == ["BTC/USDT", "ETH/USDT"]  # free leases: all taken
    api = await parts.api()
    placed = await api.create_order("alice", buy("49000", "k1"))
    assert placed["status"] == "open"
    await until("the worker books the order", lambda: worker.broker._books["BTC/USDT"].get(placed["id"]) is not None)
    await parts.feed.trade("BTC/USDT", 48_990.0)
    filled = await api.fetch_order("alice", placed["id"])
    assert filled["status"] == "closed" and filled["trades"][0]["takerOrMaker"] == "maker"
    # The API saw the fill through the store alone: the balance reserves nothing any more.
    balance = await api.fetch_balance("alice")
    assert balance["BTC"]["total"] == 0.01 and balance["USDT"]["used"] == 0
    # A market order fills at once in the API (nothing for a worker to do).
    market = OrderRequest(symbol="BTC/USDT", side="sell", type="market", amount=Decimal("0.01"), client_order_id="k2")
    assert (await api.create_order("alice", market))["status"] == "closed"


async def test_a_worker_that_stops_renewing_is_taken_over_and_its_stale_fill_refused(parts: Parts) -> None:
    stale = await parts.worker("w1", ttl_s=0.3)
    api = await parts.api()
    placed = await api.create_order("alice", buy("49000", "k1"))
    await until("w1 books the order", lambda: stale.broker._books["BTC/USDT"].get(placed["id"]) is not None)
    # w1 freezes (its lease loop and feed stop: a paused or dying process); w2 takes over once it expires.
    for task in stale._tasks:
        task.cancel()
    await asyncio.gather(*stale._tasks, return_exceptions=True)
    successor = await parts.worker("w2", ttl_s=0.3)

    async def taken() -> bool:
        await successor.keeper.once()  # type: ignore[union-attr]
        return "BTC/USDT" in successor.symbols

    await until("w2 takes BTC/USDT over", taken)
    assert successor.broker._books["BTC/USDT"].get(placed["id"]) is not None  # rebuilt from the store
    # The stale worker still thinks it owns the symbol: its fill is refused by the fence, nothing written.
    store = await parts.store()
    version = await store.latest_version("alice")
    with pytest.raises(LeaseLost):
        await stale.broker.on_tick(Tick("BTC/USDT", 1_700_000_000_500, 48_990.0, 1000.0))
    assert await store.latest_version("alice") == version
    assert (await store.get("alice", ORDERS, placed["id"]))["status"] == "open"  # type: ignore[index]
    # The new owner fills it, once.
    await parts.feed.trade("BTC/USDT", 48_990.0)
    await parts.feed.trade("BTC/USDT", 48_980.0)
    order = await api.fetch_order("alice", placed["id"])
    assert order["status"] == "closed" and len(order["trades"]) == 1
    assert (await api.fetch_balance("alice"))["BTC"]["total"] == 0.01


async def test_a_cancel_through_the_api_takes_the_order_out_of_the_workers_book(parts: Parts) -> None:
    worker = await parts.worker("w1")
    api = await parts.api()
    placed = await api.create_order("alice", buy("49000", "k1"))
    book = worker.broker._books["BTC/USDT"]
    await until("booked", lambda: book.get(placed["id"]) is not None)
    canceled = await api.cancel_order("alice", placed["id"])
    assert canceled["status"] == "canceled"
    await until("out of the book", lambda: book.get(placed["id"]) is None)
    await parts.feed.trade("BTC/USDT", 48_990.0)
    assert (await api.fetch_order("alice", placed["id"]))["status"] == "canceled"


async def test_an_alert_made_through_the_api_is_fired_by_the_one_alert_worker(parts: Parts) -> None:
    store = await parts.store()
    api_alerts = AlertBook(store=await parts.store(), feed=parts.feed)  # the API's: it does not watch
    worker = AlertWorker(store=store, feed=parts.feed, worker_id="w1", lease_ttl_s=30.0, reconcile_s=0.05)
    await worker.start()
    parts.stack.push_async_callback(worker.aclose)
    standby = AlertWorker(store=await parts.store(), feed=parts.feed, worker_id="w2", lease_ttl_s=30.0,
                          reconcile_s=0.05)  # fmt: skip
    await standby.start()
    parts.stack.push_async_callback(standby.aclose)
    assert worker.book is not None and standby.book is None  # one lease, one watcher
    alert, created = await api_alerts.create("alice", symbol="BTC/USDT", price=Decimal("51000"), client_alert_id="a1")
    assert created and alert["condition"] == "above"
    await parts.feed.until_followed("BTC/USDT", count=1)  # the worker re-read the alerts and follows it
    await parts.feed.trade("BTC/USDT", 51_000.0)
    fired = await store.get("alice", ALERTS, "a1")
    assert fired is not None and fired["status"] == "triggered" and fired["triggerPrice"] == 51_000


async def test_an_alert_event_from_the_api_reaches_the_alert_worker_without_waiting_for_a_reload(
    parts: Parts,
) -> None:
    store = await parts.store()
    api_alerts = AlertBook(store=await parts.store(), feed=parts.feed, publish=parts.bus.publish)
    worker = AlertWorker(store=store, feed=parts.feed, worker_id="w1", lease_ttl_s=30.0, reconcile_s=3600.0,
                         bus=parts.bus)  # fmt: skip
    await worker.start()
    parts.stack.push_async_callback(worker.aclose)
    await api_alerts.create("alice", symbol="ETH/USDT", price=Decimal("2900"), client_alert_id="a1")
    await parts.feed.until_followed("ETH/USDT", count=1)
    await parts.feed.trade("ETH/USDT", 2_899.0)
    fired = await store.get("alice", ALERTS, "a1")
    assert fired is not None and fired["status"] == "triggered"
    # Removed through the API: the worker stops following the symbol.
    await api_alerts.create("alice", symbol="BTC/USDT", price=Decimal("52000"), client_alert_id="a2")
    await parts.feed.until_followed("BTC/USDT", count=1)
    await api_alerts.delete("alice", "a2")
    await parts.feed.until_followed("BTC/USDT", count=0)


async def test_reconciling_brings_in_an_order_whose_event_was_lost(parts: Parts) -> None:
    worker = await parts.worker("w1")
    api = PaperBroker(store=await parts.store(), feed=parts.feed, role="api", publish=None)  # publishes nothing
    await api.start()
    placed = await api.create_order("alice", buy("49000", "k1"))
    book = worker.broker._books["BTC/USDT"]
    assert book.get(placed["id"]) is None  # no event: the worker does not know it yet
    await worker.broker.reconcile(worker.symbols)
    assert book.get(placed["id"]) is not None
    await parts.feed.trade("BTC/USDT", 48_990.0)
    assert (await api.fetch_order("alice", placed["id"]))["status"] == "closed"


async def test_a_worker_that_stops_cleanly_hands_its_symbols_over_at_once(parts: Parts) -> None:
    first = await parts.worker("w1", ttl_s=3600.0)  # were its leases not released, w2 would wait an hour
    second = await parts.worker("w2", ttl_s=3600.0)

    async def shared() -> bool:  # w1 gives one back on its membership round, w2 takes it on its own
        await first.keeper.once()  # type: ignore[union-attr]
        await second.keeper.once()  # type: ignore[union-attr]
        return len(first.symbols) == 1 and len(second.symbols) == 1

    await until("the two share the symbols", shared)
    await first.aclose()
    await second.keeper.once()  # type: ignore[union-attr]
    assert second.symbols == ["BTC/USDT", "ETH/USDT"]


async def test_workers_share_the_symbols_and_a_dead_ones_go_to_the_survivor(parts: Parts) -> None:
    first = await parts.worker("w1", ttl_s=0.6)
    await until("w1, alone, takes every symbol", lambda: first.symbols == ["BTC/USDT", "ETH/USDT"])
    second = await parts.worker("w2", ttl_s=0.6)
    # The first gives one back on its next round; the second takes it: one each, never both owners.
    await until("each worker matches one symbol",
                lambda: len(first.symbols) == 1 and len(second.symbols) == 1)  # fmt: skip
    assert set(first.symbols) | set(second.symbols) == {"BTC/USDT", "ETH/USDT"}
    api = await parts.api()
    placed = await api.create_order("alice", buy("49000", "k1"))
    owner = first if "BTC/USDT" in first.symbols else second
    await until("the owner books the order", lambda: owner.broker._books["BTC/USDT"].get(placed["id"]) is not None)
    # The owner of BTC/USDT dies without a word (its tasks stop, nothing released): the survivor takes its
    # symbol once the membership and the lease expire, rebuilds the book and fills the order once.
    survivor = second if owner is first else first
    for task in owner._tasks:
        task.cancel()
    await asyncio.gather(*owner._tasks, return_exceptions=True)
    await until("the survivor matches both symbols", lambda: survivor.symbols == ["BTC/USDT", "ETH/USDT"])
    await parts.feed.until_followed("BTC/USDT", 1)  # its trade follower has moved to the new set
    await parts.feed.trade("BTC/USDT", 48_990.0)
    await until("the order is filled", lambda: _status(api, placed["id"], "closed"))
    assert len((await api.fetch_order("alice", placed["id"]))["trades"]) == 1


async def _status(api: PaperBroker, order_id: str, status: str) -> bool:
    return (await api.fetch_order("alice", order_id))["status"] == status


async def test_a_trailing_stops_trigger_is_written_as_it_moves_and_survives_its_workers_death(parts: Parts) -> None:
    first = await parts.worker("w1", ttl_s=0.6, reconcile_s=0.2)
    api = await parts.api()
    trail = OrderRequest(symbol="BTC/USDT", side="sell", type="trailing_stop", amount=Decimal("0.01"),
                         client_order_id="t1", trailing_percent=Decimal("2"))  # fmt: skip
    await api.create_order("alice", OrderRequest(symbol="BTC/USDT", side="buy", type="market",
                                                 amount=Decimal("0.01"), client_order_id="b1"))  # fmt: skip
    placed = await api.create_order("alice", trail)
    assert placed["stopPrice"] == 49_000  # 2 % under the last trade, 50,000
    await until("w1 books the stop", lambda: first.broker._books["BTC/USDT"].get(placed["id"]) is not None)
    await parts.feed.trade("BTC/USDT", 52_000.0)  # the peak moves up: the trigger to 50,960
    # The API instance shows what the store holds: the worker writes the moved trigger within a round.
    await until("the API shows the moved trigger",
                lambda: _stop_price(api, placed["id"], 50_960))  # fmt: skip
    # The worker dies; the next one resumes from the written peak, not from the placement.
    for task in first._tasks:
        task.cancel()
    await asyncio.gather(*first._tasks, return_exceptions=True)
    second = await parts.worker("w2", ttl_s=0.6, reconcile_s=0.2)
    await until("w2 takes BTC/USDT over", lambda: "BTC/USDT" in second.symbols)
    await parts.feed.until_followed("BTC/USDT", 1)
    await parts.feed.trade("BTC/USDT", 51_000.0)  # above 50,960: nothing
    assert (await api.fetch_order("alice", placed["id"]))["status"] == "open"
    await parts.feed.trade("BTC/USDT", 50_900.0)  # under it: fired (from the placement's 49,000 it would not)
    await until("the stop fires", lambda: _status(api, placed["id"], "closed"))


async def _stop_price(api: PaperBroker, order_id: str, price: float) -> bool:
    return (await api.fetch_order("alice", order_id))["stopPrice"] == price
