"""A `state.db` written by the schema-version-1 store (`data/state_v1.sql`, made by main at 6d1ce3b with
`data/make_state_v1.py`) opens with today's store with nothing lost: every document (orders, fills,
positions, balances, alerts, idempotency claims) as it was, the change log and versions as they were (a
stream resumes from an old version; a resume from before what was kept still gets a reset), and the
trader carries on: a retried clientOrderId gets its first order, a resting order is in the book again,
new orders take the next versions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from backend_stub.store.base import ChangesCompacted
from backend_stub.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.backend.conftest import auth, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.backend.test_stream import until_synced

V1_DUMP = Path(__file__).parent / "data" / "state_v1.sql"


def v1_file(data_dir: Path) -> tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The version-1 file in `data_dir`, with its docs and change-log rows as the old schema holds them."""
    path = data_dir / "state.db"
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP.read_text())
    db.execute("PRAGMA journal_mode=WAL")
    docs = db.execute("SELECT uid, collection, doc_id, doc, version FROM docs ORDER BY uid, collection, doc_id").fetchall()
    changes = db.execute("SELECT uid, version, collection, doc_id, kind, doc FROM changes ORDER BY uid, version").fetchall()
    db.close()
    return path, docs, changes


async def test_a_version_1_file_keeps_every_document_and_the_change_log(tmp_path: Path) -> None:
    path, docs, changes = v1_file(tmp_path)
    assert len(docs) == 17 and len(changes) == 10
    async with SqliteStore(path, keep_changes=8) as store:
        for uid, collection, doc_id, text, _ in docs:
            assert await store.get(uid, collection, doc_id) == json.loads(text), (collection, doc_id)
        assert await store.latest_version("alice") == 13 and await store.latest_version("bob") == 2
        logged = await store.changes_since("alice", 5)
        assert [(c.version, c.collection, c.doc_id, c.kind, c.doc) for c in logged] == [
            (v, c, d, k, json.loads(doc) if doc else None) for uid, v, c, d, k, doc in changes if uid == "alice"
        ]
        with pytest.raises(ChangesCompacted):  # versions 1-5 were pruned by the old store
            await store.changes_since("alice", 2)
        snapshot, version = await store.snapshot("alice")
        public = {(c, d): v for uid, c, d, _, v in docs if uid == "alice" and not c.startswith("_")}
        assert version == 13 and {(c.collection, c.doc_id): c.version for c in snapshot} == public
        # the paged reads and the book's rebuild find the same orders and alerts through the new columns
        open_orders = await store.page("alice", "orders", limit=10, field="status", values=("open",))
        assert [o["clientOrderId"] for o in open_orders.docs] == ["alice-limit-rests"]
        every = await store.page("alice", "orders", limit=10)
        assert [o["id"] for o in every.docs] == sorted((d for u, c, d, _, _ in docs if u == "alice" and c == "orders"),
                                                       reverse=True)
        assert [uid for uid, _ in await store.find("orders", "status", "open")] == ["alice"]
        assert [a["id"] for _, a in await store.find("alerts", "status", "active")] == ["alice-alert-1"]
        db = store._db  # noqa: SLF001 (the file's layout is what is under test)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"documents", "change_log", "leases"}
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    async with SqliteStore(path, keep_changes=8) as store:  # opened again: nothing migrated twice
        assert await store.latest_version("alice") == 13
        assert len(await store.list("alice", "orders")) == 5


async def test_a_trader_carries_on_after_the_migration(tmp_path: Path) -> None:
    path, docs, _ = v1_file(tmp_path)
    by_key = {(u, c, d): json.loads(t) for u, c, d, t, _ in docs}
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(make_settings(tmp_path), feed) as backend:
        await feed.until_consumers(1)
        first = by_key[("alice", "orders", by_key[("alice", "_idempotency", "alice-market-1")]["orderId"])]
        retried = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1",
                                      clientOrderId="alice-market-1")
        assert retried.status_code == 200 and retried.json()["id"] == first["id"]
        positions = (await backend.get("alice", "/v1/positions")).json()
        assert [p["amount"] for p in positions] == [by_key[("alice", "positions", "BTC-USDT")]["amount"]]
        balances = by_key[("alice", "_account", "paper")]["balances"]
        assert str((await backend.get("alice", "/v1/balance")).json()["total"]["USDT"]) == balances["USDT"]
        async with connect(backend.ws_url + "?since=13", additional_headers=auth("alice")) as ws:
            assert await until_synced(ws) == ([], 13)
            placed = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.01",
                                         clientOrderId="alice-after-1")
            assert placed.status_code == 201, placed.text
            await feed.trade("BTC/USDT", 39_000.0, 10.0)  # the resting 40,000 buy is back in the book
            seen: list[dict[str, Any]] = []
            while len(seen) < 4:
                message = json.loads(await ws.recv())
                if message["type"] == "change":
                    seen.append(message)
        assert [m["version"] for m in seen] == [14, 15, 16, 17]
        assert (seen[0]["id"], seen[0]["kind"]) == (placed.json()["id"], "added")
        rested = next(m for m in seen[2:] if m["collection"] == "orders")["doc"]
        assert (rested["clientOrderId"], rested["status"]) == ("alice-limit-rests", "closed")
        opened = (await backend.get("alice", "/v1/orders", params={"status": "open"})).json()
        assert opened == []
        assert len((await backend.get("alice", "/v1/orders")).json()) == 6
        assert len((await backend.get("bob", "/v1/orders")).json()) == 1


async def test_stores_opening_a_version_1_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # The API and the workers share one file: whichever takes the write lock first migrates, the others
    # wait for it and find the file done.
    path, docs, _ = v1_file(tmp_path)
    stores = [SqliteStore(path, keep_changes=8) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        for store in stores:
            assert await store.latest_version("alice") == 13
            assert len(await store.list("alice", "orders")) == 5
        db = stores[0]._db  # noqa: SLF001 (the file's layout is what is under test)
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == len(docs)
        assert db.execute("SELECT COUNT(*) FROM change_log").fetchone()[0] == 10
    finally:
        for store in stores:
            await store.aclose()
