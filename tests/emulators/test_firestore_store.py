"""`FirestoreStore` against the Firestore emulator: the `StateStore` contract the embedded store keeps
(versions, change kinds, atomic transactions, resume with `changes_since`, `subscribe`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import pytest

from backend_stub.firestore_store import FirestoreStore
from backend_stub.store.base import (
    ACCOUNT,
    IDEMPOTENCY,
    ORDERS,
    POSITIONS,
    AlreadyExists,
    Change,
    ChangesCompacted,
    Create,
    Delete,
    Put,
    VersionConflict,
)

pytestmark = pytest.mark.emulator


@pytest.fixture
async def store(firestore_host: str):
    async with FirestoreStore() as s:  # project and emulator host from the environment, as in production
        yield s


def order(order_id: str, status: str = "open", filled: float = 0.0) -> dict:
    return {
        "id": order_id,
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "limit",
        "price": 50_000.0,
        "amount": 0.1,
        "filled": filled,
        "remaining": 0.1 - filled,
        "status": status,
        "fee": {"cost": 0.5, "currency": "USDT"},
        "trades": [],
    }


async def test_transact_versions_kinds_and_reads(store: FirestoreStore) -> None:
    assert await store.latest_version("u1") == 0
    v = await store.transact("u1", [Put(ORDERS, "o1", order("o1")), Put(ORDERS, "o2", order("o2"))])
    assert v == 2
    v = await store.transact("u1", [Put(ORDERS, "o1", order("o1", "closed", 0.1)), Delete(ORDERS, "o2")])
    assert v == 4
    assert await store.get("u1", ORDERS, "o1") == order("o1", "closed", 0.1)  # no store metadata leaks
    assert await store.get("u1", ORDERS, "o2") is None
    assert await store.list("u1", ORDERS) == [order("o1", "closed", 0.1)]
    assert [(c.version, c.doc_id, c.kind) for c in await store.changes_since("u1", 0)] == [
        (1, "o1", "added"),
        (2, "o2", "added"),
        (3, "o1", "modified"),
        (4, "o2", "removed"),
    ]
    assert [c.version for c in await store.changes_since("u1", 2)] == [3, 4]
    # Deleting what does not exist logs nothing; other users are untouched.
    assert await store.transact("u1", [Delete(ORDERS, "nope")]) == 4
    assert await store.latest_version("u2") == 0


async def test_log_entries_expire_and_a_resume_past_them_is_told_so(store: FirestoreStore) -> None:
    for n in range(1, 6):
        await store.transact("u1", [Put(ORDERS, f"o{n}", order(f"o{n}"))])
    log = store._user("u1").collection("_changes")  # noqa: SLF001  (what a TTL policy deletes)
    first = (await log.document(f"{1:012d}").get()).to_dict()
    expires = first["expireAt"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=6, hours=23) < expires <= dt.timedelta(days=7)
    for version in (1, 2):  # Firestore's TTL deleting the oldest entries
        await log.document(f"{version:012d}").delete()
    assert [c.version for c in await store.changes_since("u1", 2)] == [3, 4, 5]
    for since in (0, 1):
        with pytest.raises(ChangesCompacted):
            await store.changes_since("u1", since)
    for version in (3, 4, 5):
        await log.document(f"{version:012d}").delete()
    with pytest.raises(ChangesCompacted):  # an empty log while the head is at 5
        await store.changes_since("u1", 3)
    assert await store.changes_since("u1", 5) == []


async def test_order_and_position_commit_together_or_not_at_all(store: FirestoreStore) -> None:
    await store.transact("u1", [Create(IDEMPOTENCY, "k1", {"orderId": "o1"}), Put(ORDERS, "o1", order("o1"))])
    with pytest.raises(AlreadyExists):
        await store.transact(
            "u1",
            [
                Put(ORDERS, "o9", order("o9", "closed", 0.1)),
                Put(POSITIONS, "BTC-USDT", {"symbol": "BTC/USDT", "amount": 0.1}),
                Create(IDEMPOTENCY, "k1", {"orderId": "o9"}),
            ],
        )
    assert await store.get("u1", ORDERS, "o9") is None
    assert await store.get("u1", POSITIONS, "BTC-USDT") is None
    assert await store.latest_version("u1") == 1  # private collections are not logged

    v = await store.transact(
        "u1",
        [
            Put(ORDERS, "o1", order("o1", "closed", 0.1)),
            Put(POSITIONS, "BTC-USDT", {"symbol": "BTC/USDT", "amount": 0.1}),
            Put(ACCOUNT, "paper", {"balances": {"USDT": "95000"}}),
        ],
    )
    assert v == 3
    changes, latest = await store.snapshot("u1")
    assert latest == 3
    assert [(c.collection, c.doc_id, c.kind, c.version) for c in changes] == [
        ("orders", "o1", "added", 2),
        ("positions", "BTC-USDT", "added", 3),
    ]


async def test_if_version_guards_against_concurrent_writers(store: FirestoreStore) -> None:
    await store.transact("u1", [Put(ORDERS, "o1", order("o1"))])
    with pytest.raises(VersionConflict):
        await store.transact("u1", [Put(ORDERS, "o1", order("o1", "canceled"))], if_version=0)
    assert await store.transact("u1", [Put(ORDERS, "o1", order("o1", "canceled"))], if_version=1) == 2


async def test_concurrent_transactions_get_distinct_consecutive_versions(store: FirestoreStore) -> None:
    results = await asyncio.gather(
        *(store.transact("u1", [Put(ORDERS, f"o{i}", order(f"o{i}"))]) for i in range(12))
    )
    assert sorted(results) == list(range(1, 13))
    assert [c.version for c in await store.changes_since("u1", 0)] == list(range(1, 13))


async def test_json_values_round_trip_and_bad_values_fail_before_writing(
    store: FirestoreStore, emulators: Any
) -> None:
    emulators.need_official_firestore("64-bit integers")
    doc = {"ohlcv": [[1, 2.5, 3], [4, 5, 6]], "nested": {"a": [1, {"b": None}]}, "big": 2**53, "t": True}
    await store.transact("u1", [Put("insights", "i1", doc)])
    assert await store.get("u1", "insights", "i1") == doc
    assert (await store.changes_since("u1", 0))[0].doc == doc
    with pytest.raises(ValueError):
        await store.transact("u1", [Put("insights", "i2", {"x": math.nan})])
    assert await store.latest_version("u1") == 1


async def test_find_is_a_collection_group_query_over_users(store: FirestoreStore, emulators: Any) -> None:
    emulators.need_official_firestore("collection-group queries")
    await store.transact("u2", [Put(ORDERS, "b", order("b")), Put(ORDERS, "c", order("c", "closed"))])
    await store.transact("u1", [Put(ORDERS, "a", order("a"))])
    found = await store.find(ORDERS, "status", "open")
    assert [(uid, doc["id"]) for uid, doc in found] == [("u1", "a"), ("u2", "b")]


async def test_subscribe_sees_later_commits_in_order_and_resumes(store: FirestoreStore) -> None:
    await store.transact("u1", [Put(ORDERS, "old", order("old"))])
    stream = store.subscribe("u1")
    seen_version = await store.latest_version("u1")  # read after subscribing, as /v1/stream does
    writer = asyncio.create_task(_write_orders(store, "u1", 20))
    got: list[Change] = []
    async with asyncio.timeout(15):
        async for change in stream:
            if change.version <= seen_version:
                continue
            got.append(change)
            if len(got) == 20:
                break
    await writer
    assert [c.version for c in got] == list(range(seen_version + 1, seen_version + 21))
    assert [c.doc_id for c in got] == [f"n{i}" for i in range(20)]
    await stream.aclose()  # type: ignore[attr-defined]


async def _write_orders(store: FirestoreStore, uid: str, n: int) -> None:
    for i in range(n):
        await store.transact(uid, [Put(ORDERS, f"n{i}", order(f"n{i}"))])


async def test_two_instances_writing_for_one_user_never_share_a_version(
    store: FirestoreStore, emulators: Any
) -> None:
    """Two Cloud Run instances (two stores, no shared lock) contend on the user's log head: Firestore
    aborts one transaction, which is retried; every commit still gets its own consecutive version."""
    emulators.need_official_firestore("transaction isolation (there, both contending transactions commit)")
    async with FirestoreStore() as other:
        results = await asyncio.gather(
            *(
                s.transact("u1", [Put(ORDERS, f"o{i}", order(f"o{i}"))])
                for i, s in enumerate([store, other] * 3)
            )
        )
    assert sorted(results) == list(range(1, 7))
    assert [c.doc_id for c in await store.changes_since("u1", 0)] == sorted(
        (f"o{i}" for i in range(6)), key=lambda d: results[int(d[1:])]
    )


async def test_pages(store: FirestoreStore) -> None:
    from tests.backend.test_store import check_pages

    await check_pages(store)
