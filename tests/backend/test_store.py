"""SqliteStore: atomic transactions, per-user monotonic versions, private collections, change log,
subscriptions, collection-group find."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backend_stub.store.base import (
    ORDERS,
    AlreadyExists,
    ChangesCompacted,
    Create,
    Delete,
    Put,
    StateStore,
    VersionConflict,
)
from backend_stub.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path):
    async with SqliteStore(tmp_path / "state.db") as s:
        yield s


async def test_is_a_state_store(store: SqliteStore) -> None:
    assert isinstance(store, StateStore)


async def test_versions_are_per_user_and_consecutive(store: SqliteStore) -> None:
    assert (
        await store.transact("a", [Put("orders", "1", {"n": 1}), Put("positions", "BTC-USDT", {"q": 1})]) == 2
    )
    assert await store.transact("b", [Put("orders", "1", {"n": 9})]) == 1
    assert await store.transact("a", [Put("orders", "1", {"n": 2}), Delete("orders", "1")]) == 4
    changes = await store.changes_since("a", 0)
    assert [(c.version, c.collection, c.doc_id, c.kind, c.doc) for c in changes] == [
        (1, "orders", "1", "added", {"n": 1}),
        (2, "positions", "BTC-USDT", "added", {"q": 1}),
        (3, "orders", "1", "modified", {"n": 2}),
        (4, "orders", "1", "removed", None),
    ]
    assert [c.version for c in await store.changes_since("a", 2)] == [3, 4]
    assert await store.latest_version("a") == 4 and await store.latest_version("nobody") == 0
    assert await store.get("a", "orders", "1") is None
    assert await store.get("b", "orders", "1") == {"n": 9}


async def test_private_collections_are_stored_but_never_logged(store: SqliteStore) -> None:
    version = await store.transact("a", [Put("_account", "paper", {"USDT": "1"}), Put("orders", "1", {})])
    assert version == 1
    assert await store.get("a", "_account", "paper") == {"USDT": "1"}
    assert [c.collection for c in await store.changes_since("a", 0)] == ["orders"]
    snapshot, latest = await store.snapshot("a")
    assert [c.collection for c in snapshot] == ["orders"] and latest == 1


async def test_create_conflict_rolls_back_the_whole_transaction(store: SqliteStore) -> None:
    await store.transact("a", [Create("_idempotency", "k", {"orderId": "1"}), Put("orders", "1", {"v": 1})])
    with pytest.raises(AlreadyExists):
        await store.transact("a", [Put("orders", "2", {}), Create("_idempotency", "k", {"orderId": "2"})])
    assert await store.get("a", "orders", "2") is None
    assert await store.latest_version("a") == 1
    assert await store.get("a", "_idempotency", "k") == {"orderId": "1"}


async def test_if_version_is_optimistic_concurrency(store: SqliteStore) -> None:
    await store.transact("a", [Put("orders", "1", {})], if_version=0)
    with pytest.raises(VersionConflict):
        await store.transact("a", [Put("orders", "2", {})], if_version=0)
    assert await store.transact("a", [Put("orders", "2", {})], if_version=1) == 2


async def test_non_json_docs_are_refused_without_writing(store: SqliteStore) -> None:
    with pytest.raises(ValueError):
        await store.transact("a", [Put("orders", "1", {"x": float("nan")})])
    assert await store.latest_version("a") == 0


async def test_subscribers_see_their_users_commits_in_order(store: SqliteStore) -> None:
    sub_a, sub_b = store.subscribe("a"), store.subscribe("b")
    await asyncio.gather(*(store.transact("a", [Put("orders", str(i), {"i": i})]) for i in range(50)))
    await store.transact("b", [Put("orders", "x", {})])
    seen = [await asyncio.wait_for(anext(sub_a), 2) for _ in range(50)]
    assert [c.version for c in seen] == list(range(1, 51))
    assert (await asyncio.wait_for(anext(sub_b), 2)).doc_id == "x"
    await sub_a.aclose()  # type: ignore[attr-defined]
    await sub_b.aclose()  # type: ignore[attr-defined]
    assert store._subscribers == {}


async def test_find_is_a_collection_group_query(store: SqliteStore) -> None:
    await store.transact(
        "a", [Put("orders", "1", {"status": "open"}), Put("orders", "2", {"status": "closed"})]
    )
    await store.transact("b", [Put("orders", "3", {"status": "open"})])
    found = await store.find("orders", "status", "open")
    assert [(uid, doc) for uid, doc in found] == [("a", {"status": "open"}), ("b", {"status": "open"})]


async def test_state_survives_reopening(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as first:
        await first.transact("a", [Put("orders", "1", {"v": 1})])
    async with SqliteStore(tmp_path / "s.db") as second:
        assert await second.get("a", "orders", "1") == {"v": 1}
        assert await second.transact("a", [Put("orders", "2", {})]) == 2


async def test_wal_and_full_sync(store: SqliteStore) -> None:
    def pragmas() -> tuple[str, int]:
        db = store._db
        return db.execute("PRAGMA journal_mode").fetchone()[0], db.execute("PRAGMA synchronous").fetchone()[0]

    assert await store._run(pragmas) == ("wal", 2)  # 2 = FULL


async def test_the_change_log_keeps_the_newest_changes_and_says_when_older_ones_are_gone(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db", keep_changes=16) as store:
        for n in range(1, 101):
            await store.transact("a", [Put("orders", str(n % 7), {"n": n})])
        await store.transact("b", [Put("orders", "1", {"n": 1})])
        rows = store._db.execute("SELECT COUNT(*) FROM change_log WHERE uid='a'").fetchone()[0]  # noqa: SLF001
        assert 16 <= rows < 16 + 16 // 8 + 1  # bounded: the newest 16, pruned in batches of 2
        assert [c.version for c in await store.changes_since("a", 90)] == list(range(91, 101))
        assert [c.version for c in await store.changes_since("a", 100)] == []
        with pytest.raises(ChangesCompacted):
            await store.changes_since("a", 10)  # 11.. were pruned: a partial log is never returned
        with pytest.raises(ChangesCompacted):
            await store.changes_since("a", 0)
        # Documents are never pruned: the snapshot still has everything.
        docs, latest = await store.snapshot("a")
        assert latest == 100 and sorted(int(c.doc_id) for c in docs) == list(range(7))
        assert [c.version for c in await store.changes_since("b", 0)] == [1]  # another user's log is theirs


async def check_pages(store: StateStore) -> None:
    """The `page` contract, for every store: newest first by (timestamp, id), filtered, continued."""
    docs = [
        {"id": f"o{i:02d}", "timestamp": 1_000 + i // 2, "status": "open" if i % 3 else "canceled"}
        for i in range(20)
    ]  # two orders per millisecond: the id breaks the tie
    for doc in docs:
        await store.transact("pager", [Put(ORDERS, doc["id"], doc)])
    await store.transact("other", [Put(ORDERS, "x", {"id": "x", "timestamp": 5_000, "status": "open"})])
    newest_first = sorted(docs, key=lambda d: (d["timestamp"], d["id"]), reverse=True)

    async def read_all(**where: Any) -> list[list[dict[str, Any]]]:
        pages, after = [], None
        while True:
            page = await store.page("pager", ORDERS, limit=6, after=after, **where)
            pages.append(page.docs)
            if page.next is None:
                return pages
            after = page.next

    pages = await read_all()
    assert [len(p) for p in pages] == [6, 6, 6, 2]
    assert [d for p in pages for d in p] == newest_first
    opened = [d for p in await read_all(field="status", values=("open",)) for d in p]
    assert opened == [d for d in newest_first if d["status"] == "open"]
    closed = [d for p in await read_all(field="status", values=("closed", "canceled")) for d in p]
    assert closed == [d for d in newest_first if d["status"] == "canceled"]
    exact = await store.page("pager", ORDERS, limit=20)
    assert len(exact.docs) == 20 and exact.next is None


async def test_pages(store: SqliteStore) -> None:
    await check_pages(store)


async def test_concurrent_transactions_share_commits_and_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore(path) as store:
        await store.transact("u0", [Create(ORDERS, "taken", {"n": -1})])
        commits_before = store.commits

        async def write(i: int) -> int | str:
            uid = f"u{i % 10}"
            writes: list[Any] = [Put(ORDERS, f"o{i}", {"n": i})]
            if i % 50 == 0:  # user u0
                writes.append(Create(ORDERS, "taken", {"n": i}))  # u0 has it: this transaction alone fails
            if i % 40 == 1:
                writes.append(Put(ORDERS, f"bad{i}", {"n": float("nan")}))  # not JSON: fails alone
            try:
                return await store.transact(uid, writes)
            except (AlreadyExists, ValueError) as exc:
                return type(exc).__name__

        results = await asyncio.gather(*(write(i) for i in range(200)))
        failed = {i for i, r in enumerate(results) if isinstance(r, str)}
        assert failed == {i for i in range(200) if i % 50 == 0 or i % 40 == 1}
        assert store.commits - commits_before <= 20  # many transactions per commit (one fsync each)
    async with SqliteStore(path) as store:  # what was acknowledged is on disk; what failed left nothing
        for i in range(200):
            doc = await store.get(f"u{i % 10}", ORDERS, f"o{i}")
            assert (doc is None) == (i in failed), i
        for u in range(10):
            versions = [c.version for c in await store.changes_since(f"u{u}", 0)]
            assert versions == list(range(1, len(versions) + 1))  # consecutive, none lost inside a batch
