"""`LeaseKeeper`: takes free leases of a set of names, renews those it holds, and says when one is gained
or lost. Renewing every third of the TTL, a live owner keeps its leases; a dead one's expire and another
keeper takes them. Losing one only stops work: writes are fenced by the lease, so a keeper that has not
noticed yet cannot do harm.

Keepers of one `group` share the names evenly. Each also holds a membership lease (`member:<group>:<slot>`,
one of `MAX_MEMBERS` slots), counts the live members every round, takes no more than its share
(ceil(names / members)) and gives back what it holds beyond it, so a worker that starts after another
took everything gets half within a round or two, and the survivors of a dead one share its names."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from backend_stub.store.base import Lease, StateStore

log = logging.getLogger(__name__)

MAX_MEMBERS = 16  # membership slots per group: more live workers than this share as if there were 16


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
        group: str | None = None,
    ) -> None:
        self._store = store
        self._owner = owner
        self._names = list(names)
        self._ttl = ttl_s
        self._on_gain, self._on_renew, self._on_lose = on_gain, on_renew, on_lose
        self.held: dict[str, Lease] = {}
        self._group = group
        self._member: Lease | None = None
        self._taking = 0  # acquisitions in flight, counted against the share
        self.share: int | None = None  # how many names this keeper may hold; None: no group, all of them

    async def run(self) -> None:
        """Keep at it until cancelled: one loop per name, so a slow or blocked lease never holds up the
        renewal of the others."""
        rounds = [self._keep(name, self._one) for name in self._names]
        if self._group is not None:
            rounds.append(self._keep("membership", lambda _: self._balance()))
        await asyncio.gather(*rounds)

    async def _keep(self, name: str, step: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                await step(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: our fenced writes fail meanwhile, try again
                log.warning("leases: %s: %s", name, exc)
            await asyncio.sleep(self._ttl / 3)

    async def once(self) -> None:
        """One round over every name, concurrently: a lease whose document is locked (on Firestore, by a
        transaction of an owner killed inside it, until that transaction expires) delays only itself."""
        if self._group is not None:
            await self._balance()
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
        current = await self._store.lease_holder(name)  # a read first: a held lease costs no transaction
        if current is not None and current.owner != self._owner and current.expires_at > time.time():
            return
        if self.share is not None and len(self.held) + self._taking >= self.share:
            return  # our share is full: the name is left to a keeper below its share
        self._taking += 1
        try:
            taken = await self._store.acquire_lease(name, self._owner, self._ttl)
        finally:
            self._taking -= 1
        if taken is not None:
            self.held[name] = taken
            log.info("leases: %s took %s (generation %d)", self._owner, name, taken.generation)
            await self._on_gain(taken)

    async def _balance(self) -> None:
        """Renew (or take) our membership, count the live members, and give back what we hold beyond our
        share: stop working a name first, then release it, so its next owner never overlaps with us."""
        assert self._group is not None
        await self._join()
        slots = [f"member:{self._group}:{slot}" for slot in range(MAX_MEMBERS)]
        holders = await asyncio.gather(*(self._store.lease_holder(slot) for slot in slots))
        now = time.time()
        live = sum(1 for holder in holders if holder is not None and holder.expires_at > now)
        self.share = -(-len(self._names) // max(live, 1))
        for name in sorted(self.held)[self.share:]:
            lease = self.held.pop(name)
            log.info("leases: %s gives %s back (%d live members, share %d)", self._owner, name, live, self.share)
            await self._on_lose(name)
            await self._store.release_lease(lease)

    async def _join(self) -> None:
        if self._member is not None:
            self._member = await self._store.renew_lease(self._member, self._ttl)
        for slot in range(MAX_MEMBERS):
            if self._member is not None:
                return
            self._member = await self._store.acquire_lease(f"member:{self._group}:{slot}", self._owner, self._ttl)
        if self._member is None:
            log.warning("leases: %s found no free membership slot in %s", self._owner, self._group)

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
        if self._member is not None:
            with contextlib.suppress(Exception):  # it expires by itself
                await self._store.release_lease(self._member)
            self._member = None
