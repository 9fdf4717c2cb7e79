"""`MatchingWorker`: the paper broker's matching as a worker. It holds a lease `match:<symbol>` per symbol
it matches, rebuilds that symbol's book from the store when it takes the lease, follows the symbol's
trades, and fills what they reach, every write fenced by the lease (a worker that lost it writes nothing)
and conditional on the trader's version (API instances write for the same trader). Order events from the
bus bring new and canceled orders in at once; every `reconcile_s` the book is checked against the store,
so a lost event costs latency, never an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from backend_stub.brokers.paper import PaperBroker
from backend_stub.bus.base import Bus, Delivery
from backend_stub.store.base import Lease, LeaseLost, StateStore
from backend_stub.trades import follow_changing_trades
from backend_stub.workers.leases import LeaseKeeper
from services.market.types import MarketFeed, Tick

log = logging.getLogger(__name__)

PREFIX = "match:"
_RETRY_FEED_S = 1.0


class MatchingWorker:
    """`await worker.start()` … `await worker.aclose()` (a clean stop releases its leases)."""

    def __init__(
        self,
        *,
        broker: PaperBroker,
        store: StateStore,
        feed: MarketFeed,
        bus: Bus,
        worker_id: str,
        lease_ttl_s: float,
        reconcile_s: float,
    ) -> None:
        self.broker = broker
        self._store = store
        self._feed = feed
        self._bus = bus
        self.worker_id = worker_id
        self._ttl = lease_ttl_s
        self._reconcile_s = reconcile_s
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.keeper: LeaseKeeper | None = None

    @property
    def symbols(self) -> list[str]:
        """The symbols this worker matches now."""
        return sorted(s for s in self.broker.fences if self.broker.owns(s))

    async def start(self) -> None:
        await self.broker.start()
        markets = await self.broker.markets()
        # Subscribed before any lease is taken: an order committed after a book is rebuilt is announced
        # on a subscription that already exists.
        deliveries = await self._bus.subscribe(f"match-{self.worker_id}", temporary=True)
        self.keeper = LeaseKeeper(
            store=self._store, owner=self.worker_id, names=[PREFIX + s for s in sorted(markets)],
            ttl_s=self._ttl, on_gain=self._gained, on_renew=self._renewed, on_lose=self._lost, group="match",
        )  # fmt: skip
        with contextlib.suppress(Exception):  # the store is down: `run` keeps trying
            await self.keeper.once()
        for name, job in (
            ("leases", self.keeper.run()),
            ("events", self._events(deliveries)),
            ("trades", self._follow()),
            ("reconcile", self._reconcile()),
        ):
            self._tasks.append(asyncio.create_task(job, name=f"matching-{name}"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.keeper is not None:
            await self.keeper.release_all()

    # -- leases --------------------------------------------------------------------------------------

    async def _gained(self, lease: Lease) -> None:
        symbol = lease.name.removeprefix(PREFIX)
        self.broker.fences[symbol] = lease
        await self.broker.adopt(symbol)
        self._changed.set()

    def _renewed(self, lease: Lease) -> None:
        self.broker.fences[lease.name.removeprefix(PREFIX)] = lease

    async def _lost(self, name: str) -> None:
        symbol = name.removeprefix(PREFIX)
        try:  # given back while still ours (balancing): the next owner resumes the trailing stops from here
            await self.broker.save_trailing(symbol)
        except Exception as exc:  # the lease is gone already (LeaseLost) or the store is down: from the last save
            log.info("matching: trailing stops of %s not saved at hand-over (%s)", symbol, exc)
        self.broker.forget(symbol)
        self._changed.set()

    # -- work ----------------------------------------------------------------------------------------

    async def _on_tick(self, tick: Tick) -> None:
        if not self.broker.owns(tick.symbol):
            return
        try:
            await self.broker.on_tick(tick)
        except LeaseLost:
            log.warning("matching: %s lost %s to another worker", self.worker_id, tick.symbol)
            if self.keeper is not None:
                await self.keeper.lost(PREFIX + tick.symbol)

    async def _follow(self) -> None:
        """Follow the trades of the owned symbols; start again when that set changes."""
        await follow_changing_trades(self._feed, lambda: self.symbols, self._changed, self._on_tick,
                                     who="matching", retry_s=_RETRY_FEED_S)

    async def _events(self, deliveries: AsyncIterator[Delivery]) -> None:
        async for delivery in deliveries:
            event = delivery.event
            if event.kind == "order" and self.broker.owns(event.symbol):
                try:
                    await self.broker.refresh(event.uid, event.doc_id)
                except Exception:  # the store hiccuped: reconciling brings the order in
                    log.exception("matching: order event %s failed", event.doc_id)
            await delivery.ack()

    async def _reconcile(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_s)
            try:
                await self.broker.reconcile(self.symbols)
                for symbol in self.symbols:
                    await self.broker.save_trailing(symbol)
            except LeaseLost:  # found by the lease loop on its next round
                pass
            except Exception as exc:
                log.warning("matching: reconciling failed (%s)", exc)
