"""`AlertWorker`: the alert watcher as a worker. One lease, `alerts`, for every symbol (alerts are light:
one owner follows them all); its holder runs an `AlertBook` whose writes are fenced by the lease, takes
in the alerts API instances make or remove as their bus events arrive, and re-reads the active alerts
every `reconcile_s` (an event lost costs that much latency)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from backend_stub.alerts import AlertBook
from backend_stub.bus.base import Bus, Delivery
from backend_stub.store.base import Lease, StateStore
from backend_stub.workers.leases import LeaseKeeper
from services.market.types import MarketFeed

log = logging.getLogger(__name__)

LEASE = "alerts"


class AlertWorker:
    def __init__(
        self,
        *,
        store: StateStore,
        feed: MarketFeed,
        worker_id: str,
        lease_ttl_s: float,
        reconcile_s: float,
        bus: Bus | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._worker_id = worker_id
        self._feed = feed
        self._reconcile_s = reconcile_s
        self.book: AlertBook | None = None
        self.keeper = LeaseKeeper(
            store=store, owner=worker_id, names=[LEASE], ttl_s=lease_ttl_s,
            on_gain=self._gained, on_renew=self._renewed, on_lose=self._lost,
        )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await self.keeper.once()
        self._tasks = [
            asyncio.create_task(self.keeper.run(), name="alerts-leases"),
            asyncio.create_task(self._reload(), name="alerts-reload"),
        ]
        if self._bus is not None:
            deliveries = await self._bus.subscribe(f"alerts-{self._worker_id}", temporary=True)
            self._tasks.append(asyncio.create_task(self._events(deliveries), name="alerts-events"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._lost(LEASE)
        await self.keeper.release_all()

    async def _gained(self, lease: Lease) -> None:
        book = AlertBook(store=self._store, feed=self._feed)
        book.fence = lease
        await book.start()
        self.book = book

    def _renewed(self, lease: Lease) -> None:
        if self.book is not None:
            self.book.fence = lease

    async def _lost(self, _name: str) -> None:
        book, self.book = self.book, None
        if book is not None:
            await book.aclose()

    async def _events(self, deliveries: AsyncIterator[Delivery]) -> None:
        async for delivery in deliveries:
            event = delivery.event
            if event.kind == "alert" and self.book is not None:
                try:
                    await self.book.refresh(event.uid, event.doc_id)
                except Exception:  # the next reload brings it in
                    log.exception("alerts: alert event %s failed", event.doc_id)
            await delivery.ack()

    async def _reload(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_s)
            if self.book is not None:
                try:
                    await self.book.reload()
                except Exception as exc:
                    log.warning("alerts: reloading failed (%s)", exc)
