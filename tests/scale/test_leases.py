"""Leases in the store: what lets workers own symbols safely. One owner at a time; a dead owner's lease is
taken over once it expires; a stale owner's write is refused (fenced by the lease's generation) and
leaves nothing behind. Each test runs on the embedded SQLite store (two stores on one file: two
connections, as two processes) and on the Firestore emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from backend_stub.store.base import ORDERS, Lease, LeaseLost, Put, StateStore
from backend_stub.store.sqlite import SqliteStore

TTL_S = 0.5
DEADLINE_S = 20.0

OpenStore = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """`await open_store()` opens another store on the same state (a second instance's view)."""
    async with AsyncExitStack() as stack:
        if request.param == "firestore":
            request.getfixturevalue("firestore")
            from backend_stub.firestore_store import FirestoreStore

            async def opener() -> StateStore:
                return await stack.enter_async_context(FirestoreStore())
        else:

            async def opener() -> StateStore:
                return await stack.enter_async_context(SqliteStore(tmp_path / "state.db"))

        yield opener


async def take_over(store: StateStore, name: str, owner: str) -> Lease:
    """Poll until `owner` gets the lease (it is someone else's until it expires)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        lease = await store.acquire_lease(name, owner, TTL_S)
        if lease is not None:
            return lease
        await asyncio.sleep(0.05)
    raise AssertionError(f"{owner} never got {name}")


async def test_one_owner_at_a_time_and_a_dead_owners_lease_is_taken_over(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    first = await a.acquire_lease("match:BTC/USDT", "worker-a", TTL_S)
    assert first is not None and first.owner == "worker-a"
    assert await b.acquire_lease("match:BTC/USDT", "worker-b", TTL_S) is None  # held
    again = await a.acquire_lease("match:BTC/USDT", "worker-a", TTL_S)  # the owner renews
    assert again is not None and again.generation == first.generation
    # worker-a dies (stops renewing): worker-b gets the lease once it has expired, a new generation.
    second = await take_over(b, "match:BTC/USDT", "worker-b")
    assert second.generation == first.generation + 1
    assert time.time() >= again.expires_at
    assert await a.renew_lease(again, TTL_S) is None  # the old owner learns it lost it
    holder = await a.lease_holder("match:BTC/USDT")
    assert holder is not None and (holder.owner, holder.generation) == ("worker-b", second.generation)
    # Another lease is independent.
    assert await a.acquire_lease("match:ETH/USDT", "worker-a", TTL_S) is not None


async def test_a_stale_owners_write_is_refused_and_the_new_owners_is_kept(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    old = await a.acquire_lease("match:BTC/USDT", "worker-a", TTL_S)
    assert old is not None
    await a.transact("alice", [Put(ORDERS, "o1", {"id": "o1", "filled": 1})], fence=old)
    new = await take_over(b, "match:BTC/USDT", "worker-b")
    version = await b.latest_version("alice")
    with pytest.raises(LeaseLost):
        await a.transact("alice", [Put(ORDERS, "o1", {"id": "o1", "filled": 2})], fence=old)
    assert await b.get("alice", ORDERS, "o1") == {"id": "o1", "filled": 1}
    assert await b.latest_version("alice") == version  # nothing logged either
    await b.transact("alice", [Put(ORDERS, "o1", {"id": "o1", "filled": 3})], fence=new)
    assert await a.get("alice", ORDERS, "o1") == {"id": "o1", "filled": 3}


async def test_a_released_lease_is_free_at_once_and_renewing_keeps_it(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    lease = await a.acquire_lease("alerts", "worker-a", 30.0)
    assert lease is not None
    renewed = await a.renew_lease(lease, 30.0)
    assert renewed is not None and renewed.expires_at >= lease.expires_at
    assert await b.acquire_lease("alerts", "worker-b", 30.0) is None
    await a.release_lease(renewed)
    taken = await b.acquire_lease("alerts", "worker-b", 30.0)
    assert taken is not None and taken.generation == lease.generation + 1
    await a.release_lease(renewed)  # no longer a's: a no-op
    assert await b.renew_lease(taken, 30.0) is not None


async def test_contenders_racing_for_a_free_lease_get_exactly_one_winner(open_store: OpenStore) -> None:
    stores = [await open_store() for _ in range(3)]
    results = await asyncio.gather(
        *(store.acquire_lease("match:SOL/USDT", f"worker-{i}-{j}", 30.0)
          for i, store in enumerate(stores) for j in range(3))
    )  # fmt: skip
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1 and winners[0].generation == 1
