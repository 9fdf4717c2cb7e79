"""`LeaseKeeper`: takes free leases of a set of names, renews those it holds, and says when one is gained
or lost. Renewing every third of the TTL, a live owner keeps its leases; a dead one's expire and another
keeper takes them. Losing one only stops work: writes are fenced by the lease, so a keeper that has not
noticed yet cannot do harm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from backend_stub.store.base import Lease, StateStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        *,
        store: StateStore,
        owner: str,
        names: Sequence[str],
        ttl_s: float,
        on_gain: Callable[[Lease], Awaitable[None]],
        on_renew: Callable[[Lease], None],
        on_lose: Callable[[str], Awaitable[None]],
    ) -> None:
        self._store = store
        self._owner = owner
        self._names = list(names)
        self._ttl = ttl_s
        self._on_gain, self._on_renew, self._on_lose = on_gain, on_renew, on_lose
        self.held: dict[str, Lease] = {}

    async def run(self) -> None:
        """Keep at it until cancelled: one loop per name, so a slow or blocked lease never holds up the
        renewal of the others."""
        await asyncio.gather(*(self._keep(name) for name in self._names))

    async def _keep(self, name: str) -> None:
        while True:
            try:
                await self._one(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: our fenced writes fail meanwhile, try again
                log.warning("leases: %s: %s", name, exc)
            await asyncio.sleep(self._ttl / 3)

    async def once(self) -> None:
        """One round over every name, concurrently: a lease whose document is locked (on Firestore, by a
        transaction of an owner killed inside it, until that transaction expires) delays only itself."""
        results = await asyncio.gather(*(self._one(name) for name in self._names), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _one(self, name: str) -> None:
        lease = self.held.get(name)
        if lease is not None:
            renewed = await self._store.renew_lease(lease, self._ttl)
            if renewed is None:
                del self.held[name]
                log.warning("leases: %s lost %s", self._owner, name)
                await self._on_lose(name)
            else:
                self.held[name] = renewed
                self._on_renew(renewed)
            return
        taken = await self._store.acquire_lease(name, self._owner, self._ttl)
        if taken is not None:
            self.held[name] = taken
            log.info("leases: %s took %s (generation %d)", self._owner, name, taken.generation)
            await self._on_gain(taken)

    async def lost(self, name: str) -> None:
        """A fenced write was refused: the lease is gone whatever we thought."""
        if self.held.pop(name, None) is not None:
            await self._on_lose(name)

    async def release_all(self) -> None:
        """A clean stop: give every lease up, so a successor need not wait for them to expire."""
        for lease in list(self.held.values()):
            try:
                await self._store.release_lease(lease)
            except Exception as exc:
                log.warning("leases: could not release %s (%s); it expires by itself", lease.name, exc)
        self.held.clear()
