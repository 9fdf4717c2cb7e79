"""`StrategyWorker`: the paper strategy runner as a worker, for `SKEET_ROLE=api` deployments. One lease,
`strategies`, for every user's strategies (like alerts: one owner runs them all); its holder runs a
`StrategyRunner` whose state writes are fenced by the lease and whose orders go through the API's own
stateless order path (an `OrderDesk` over an api-role paper broker: resting orders are announced on the
bus to matching). It takes in the strategies API instances save or delete as their bus events arrive
(`kind: strategy`) and re-reads the enabled ones every `reconcile_s`. On losing the lease it stops its
runner; a new holder resumes each strategy from its stored state (the runner's clientOrderIds and
`run.pending` make the order a stale holder may still place the same one, never a second)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from backend_stub.brokers.base import Broker
from backend_stub.bus.base import Bus, Delivery
from backend_stub.orders import OrderDesk
from backend_stub.store.base import STRATEGIES, Lease, LeaseLost, StateStore
from backend_stub.strategies import StrategyBook
from backend_stub.strategies_runner import StrategyRunner
from backend_stub.workers.leases import LeaseKeeper
from services.market.types import MarketFeed

log = logging.getLogger(__name__)

LEASE = "strategies"


class _FencedBook(StrategyBook):
    """The worker's book: a state write refused by the fence means the lease is gone; stop at once."""

    def __init__(self, worker: StrategyWorker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._worker = worker

    async def write_run(self, uid: str, strategy_id: str, run: dict[str, Any], *, if_enabled: bool = False) -> bool:
        try:
            return await super().write_run(uid, strategy_id, run, if_enabled=if_enabled)
        except LeaseLost:
            self._worker.fence_refused()
            raise


class StrategyWorker:
    """`await worker.start()` … `await worker.aclose()` (a clean stop releases the lease)."""

    def __init__(
        self,
        *,
        store: StateStore,
        feed: MarketFeed,
        broker: Broker,
        bus: Bus,
        worker_id: str,
        lease_ttl_s: float,
        reconcile_s: float,
        fee: Decimal,
        slippage: Decimal,
    ) -> None:
        self._store, self._feed, self._broker, self._bus = store, feed, broker, bus
        self._worker_id = worker_id
        self._reconcile_s = reconcile_s
        self._fee, self._slippage = fee, slippage
        self.runner: StrategyRunner | None = None
        self._book: StrategyBook | None = None
        self._applied: dict[tuple[str, str], Any] = {}  # (uid, id) → the `updatedAt` the runner runs
        self._lock = asyncio.Lock()  # events, re-reads and the lease's coming and going, one at a time
        self.keeper = LeaseKeeper(
            store=store, owner=worker_id, names=[LEASE], ttl_s=lease_ttl_s,
            on_gain=self._gained, on_renew=self._renewed, on_lose=self._lost,
        )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()

    @property
    def holds(self) -> bool:
        return self.runner is not None

    async def start(self) -> None:
        # Subscribed before the lease is taken: a change saved after the runner read the store is announced
        # on a subscription that already exists.
        deliveries = await self._bus.subscribe(f"strategies-{self._worker_id}", temporary=True)
        with contextlib.suppress(Exception):  # the store is down: `run` keeps trying
            await self.keeper.once()
        self._tasks = [
            asyncio.create_task(self.keeper.run(), name="strategies-leases"),
            asyncio.create_task(self._reload(), name="strategies-reload"),
            asyncio.create_task(self._events(deliveries), name="strategies-events"),
        ]

    async def aclose(self) -> None:
        for task in [*self._tasks, *self._side_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._side_tasks, return_exceptions=True)
        self._tasks.clear()
        await self._lost(LEASE)
        await self.keeper.release_all()

    # -- lease ---------------------------------------------------------------------------------------

    async def _gained(self, lease: Lease) -> None:
        async with self._lock:
            book = _FencedBook(self, store=self._store, markets=self._broker.markets)
            book.fence = lease
            desk = OrderDesk(broker=self._broker, store=self._store)
            runner = StrategyRunner(store=self._store, feed=self._feed, desk=desk, broker=self._broker, book=book,
                                    fee=self._fee, slippage=self._slippage)
            enabled = await self._store.find(STRATEGIES, "enabled", True)
            await runner.start()  # resumes every enabled strategy from its stored state
            self._applied = {(uid, doc["id"]): doc.get("updatedAt") for uid, doc in enabled}
            self._book, self.runner = book, runner
            log.info("strategies: %s runs %d strategies", self._worker_id, len(enabled))

    def _renewed(self, lease: Lease) -> None:
        if self._book is not None:
            self._book.fence = lease

    async def _lost(self, _name: str) -> None:
        async with self._lock:
            runner, self.runner, self._book = self.runner, None, None
            self._applied.clear()
        if runner is not None:
            await runner.aclose()

    def fence_refused(self) -> None:
        """A fenced write was refused: drop the lease now, not at the next renewal (from a task: the
        write is inside the runner being stopped)."""
        task = asyncio.create_task(self.keeper.lost(LEASE))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- work ----------------------------------------------------------------------------------------

    async def _apply(self, uid: str, strategy_id: str) -> None:
        """The strategy as stored now, into the runner: started, restarted, stopped or forgotten."""
        async with self._lock:
            if self.runner is None:
                return
            doc = await self._store.get(uid, STRATEGIES, strategy_id)
            await self.runner.apply(uid, doc, strategy_id)
            if doc is not None and doc.get("enabled"):
                self._applied[(uid, strategy_id)] = doc.get("updatedAt")
            else:
                self._applied.pop((uid, strategy_id), None)

    async def _events(self, deliveries: AsyncIterator[Delivery]) -> None:
        async for delivery in deliveries:
            event = delivery.event
            if event.kind == "strategy":  # (without the lease, `_apply` does nothing; taking it reads all)
                try:
                    await self._apply(event.uid, event.doc_id)
                except Exception:  # the next re-read brings it in
                    log.exception("strategies: strategy event %s failed", event.doc_id)
            await delivery.ack()

    async def reconcile(self) -> None:
        """Start what is enabled but not running (or changed since), stop what runs but is not enabled."""
        if self.runner is None:
            return
        enabled = {(uid, doc["id"]): doc.get("updatedAt") for uid, doc in
                   await self._store.find(STRATEGIES, "enabled", True)}
        for key in set(enabled) | set(self._applied):
            if key not in enabled or key not in self._applied or enabled[key] != self._applied[key]:
                await self._apply(*key)

    async def _reload(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_s)
            try:
                await self.reconcile()
            except Exception as exc:
                log.warning("strategies: re-reading failed (%s)", exc)
