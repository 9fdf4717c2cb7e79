"""`OrderDesk`: the API's order entry — idempotency by clientOrderId, market rules, then the broker.

A retry with the same clientOrderId and the same order returns the order it first made (as it stands
now); with a different order it is refused. Requests racing on one key are serialised in-process by a
per-key lock, and across processes by the broker's atomic claim of the key (`store.AlreadyExists`), which
is also how a retry is recognised with the paper broker (its claim is in the placement's one transaction):
the claim is read only when placing fails. A live broker claims before it asks the exchange, so for it the
claim is read first, as a failed placement is recorded under its own claim.
"""

from __future__ import annotations

import asyncio
from typing import Any

from backend_stub.brokers.base import Broker, OrderRequest
from backend_stub.errors import ApiError
from backend_stub.store.base import IDEMPOTENCY, AlreadyExists, StateStore
from backend_stub.validation import check_order


class OrderDesk:
    """Places orders exactly once per (user, clientOrderId)."""

    def __init__(self, *, broker: Broker, store: StateStore) -> None:
        self._broker = broker
        self._store = store
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiters: dict[tuple[str, str], int] = {}

    async def place(self, uid: str, request: OrderRequest) -> tuple[dict[str, Any], bool]:
        """The order and whether this call created it (False: a retry of an earlier request)."""
        key = (uid, request.client_order_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                claims_with_placement = self._broker.claims_with_placement
                if not claims_with_placement:  # claimed before the order goes on: look first
                    existing = await self._replay(uid, request)
                    if existing is not None:
                        return existing, False
                # With the claim in the placement's transaction, a retry never makes a second order: it
                # fails there (AlreadyExists) or earlier (the funds it took are gone, the market moved),
                # and a failed call has claimed nothing. Only then is the claim read, and the order it
                # made returned: a new order, the usual case, costs no read of the claim.
                try:
                    check_order(request, await self._broker.markets())
                    return await self._broker.create_order(uid, request), True
                except AlreadyExists:  # another request claimed the key meanwhile (another process)
                    existing = await self._replay(uid, request)
                    if existing is None:
                        raise
                    return existing, False
                except Exception:
                    if not claims_with_placement:
                        raise  # this call's own claim holds its outcome: the refusal is the answer
                    existing = await self._replay(uid, request)
                    if existing is None:
                        raise  # refused, and the key never used: the refusal is the answer
                    return existing, False
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # forget idle keys so the dict does not grow forever
                del self._waiters[key]
                del self._locks[key]

    async def _replay(self, uid: str, request: OrderRequest) -> dict[str, Any] | None:
        claim = await self._store.get(uid, IDEMPOTENCY, request.client_order_id)
        if claim is None:
            return None
        if claim["fingerprint"] != request.fingerprint():
            raise ApiError(
                409,
                f"clientOrderId {request.client_order_id} was already used for a different order; "
                "use a new clientOrderId for a new order",
            )
        return await self._broker.fetch_order(uid, claim["orderId"])
