"""/v1/stream: snapshot then synced, resume from a version without loss or repetition, live changes,
reset when the client is ahead of the server, pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.backend.conftest import Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed


async def until_synced(ws: ClientConnection) -> tuple[list[dict[str, Any]], int]:
    changes: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] == "synced":
            return changes, message["version"]
        assert message["type"] == "change", message
        changes.append(message)


async def activity(backend: Running, uid: str = "alice") -> None:
    """Six changes: market buy (order + position), limit (order), cancel (order), sell (order + position)."""
    await backend.order(uid, symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    resting = (
        await backend.order(uid, symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="40000")
    ).json()
    await backend.http.delete(f"/v1/orders/{resting['id']}", headers=auth(uid))
    await backend.order(uid, symbol="BTC/USDT", side="sell", type="market", amount="0.05")


async def test_empty_user_gets_synced_at_zero(backend: Running) -> None:
    async with connect(backend.ws_url, additional_headers=auth("alice")) as ws:
        assert await until_synced(ws) == ([], 0)


async def test_snapshot_is_current_docs_each_with_its_last_version(backend: Running) -> None:
    await activity(backend)
    async with connect(backend.ws_url, additional_headers=auth("alice")) as ws:
        changes, version = await until_synced(ws)
    assert version == 6
    assert all(c["kind"] == "added" for c in changes)
    assert [c["version"] for c in changes] == sorted(c["version"] for c in changes)
    by_collection: dict[str, list[dict]] = {}
    for c in changes:
        by_collection.setdefault(c["collection"], []).append(c)
    assert len(by_collection["orders"]) == 3 and len(by_collection["positions"]) == 1
    assert by_collection["positions"][0]["version"] == 6
    assert by_collection["positions"][0]["id"] == "BTC-USDT"
    canceled = [c for c in by_collection["orders"] if c["doc"]["status"] == "canceled"]
    assert canceled[0]["version"] == 4
    orders = (await backend.get("alice", "/v1/orders")).json()
    assert sorted(o["id"] for o in orders) == sorted(c["id"] for c in by_collection["orders"])


async def test_resume_from_every_version_loses_and_repeats_nothing(backend: Running) -> None:
    await activity(backend)
    logs: dict[int, list[dict]] = {}
    for since in range(1, 7):
        async with connect(f"{backend.ws_url}?since={since}", additional_headers=auth("alice")) as ws:
            changes, version = await until_synced(ws)
        assert [c["version"] for c in changes] == list(range(since + 1, 7))
        assert version == 6
        logs[since] = changes
    for since in range(2, 7):  # every resume is a suffix of the same log
        assert logs[since] == logs[1][since - 1 :]
    full = logs[1]
    kinds = [(c["collection"], c["kind"]) for c in full]
    assert kinds == [
        ("positions", "added"),
        ("orders", "added"),
        ("orders", "modified"),
        ("orders", "added"),
        ("positions", "modified"),
    ]
    assert full[2]["doc"]["status"] == "canceled"


async def test_live_changes_follow_the_catch_up_in_order(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    async with connect(f"{backend.ws_url}?since=1", additional_headers=auth("alice")) as ws:
        changes, version = await until_synced(ws)
        assert [c["version"] for c in changes] == [2] and version == 2
        resting = (
            await backend.order(
                "alice", symbol="BTC/USDT", side="sell", type="limit", amount="0.1", price="50500"
            )
        ).json()
        await backend.feed.trade("BTC/USDT", 50_600.0, amount=0.04)
        seen = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [m["version"] for m in seen] == [3, 4, 5]
    assert [(m["collection"], m["kind"]) for m in seen] == [
        ("orders", "added"),
        ("orders", "modified"),
        ("positions", "modified"),
    ]
    assert seen[1]["id"] == resting["id"] and seen[1]["doc"]["filled"] == 0.04


async def test_writes_during_catch_up_are_neither_lost_nor_repeated(backend: Running) -> None:
    async def writer() -> None:
        for i in range(20):
            await backend.order(
                "alice",
                symbol="BTC/USDT",
                side="buy",
                type="limit",
                amount="0.001",
                price=str(40000 + i),
                clientOrderId=f"w{i}",
            )

    task = asyncio.create_task(writer())
    versions: list[int] = []
    await asyncio.sleep(0.02)
    async with connect(f"{backend.ws_url}?since=0", additional_headers=auth("alice")) as ws:
        changes, synced = await until_synced(ws)
        versions += [c["version"] for c in changes]
        await task
        while len(set(versions)) < 20:
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "change" and m["version"] > synced
            versions.append(m["version"])
    assert sorted(versions) == list(range(1, 21))
    assert len(versions) == 20


async def test_since_ahead_of_the_server_resets_to_a_snapshot(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    async with connect(f"{backend.ws_url}?since=99", additional_headers=auth("alice")) as ws:
        assert json.loads(await ws.recv()) == {"type": "reset"}
        changes, version = await until_synced(ws)
    assert version == 2 and len(changes) == 2


async def test_since_older_than_the_kept_log_resets_to_a_snapshot(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(replace(make_settings(tmp_path), change_log_keep=4), feed) as backend:
        for _ in range(5):  # each market buy: an order and the position, two changes
            await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
        async with connect(f"{backend.ws_url}?since=2", additional_headers=auth("alice")) as ws:
            assert json.loads(await ws.recv()) == {"type": "reset"}
            changes, version = await until_synced(ws)
        assert version == 10
        assert sorted(c["collection"] for c in changes) == ["orders"] * 5 + ["positions"]
        async with connect(f"{backend.ws_url}?since=7", additional_headers=auth("alice")) as ws:
            changes, version = await until_synced(ws)  # still in the log: the changes themselves
        assert [c["version"] for c in changes] == [8, 9, 10] and version == 10


async def test_bad_since_is_refused(backend: Running) -> None:
    for since in ("-1", "abc"):
        async with connect(f"{backend.ws_url}?since={since}", additional_headers=auth("alice")) as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4400


async def test_pings_carry_the_version(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0})
    settings = replace(make_settings(tmp_path), stream_ping_s=0.1)
    async with serve(settings, feed) as backend:
        await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
        async with connect(backend.ws_url, additional_headers=auth("alice")) as ws:
            await until_synced(ws)
            assert json.loads(await asyncio.wait_for(ws.recv(), 2)) == {"type": "ping", "version": 2}


async def test_a_subscriber_far_behind_is_dropped_and_can_resume(tmp_path: Path, monkeypatch) -> None:
    from backend_stub.store import sqlite
    from backend_stub.store.base import Put, SubscriberTooSlow

    monkeypatch.setattr(sqlite, "_QUEUE_LIMIT", 5)
    async with sqlite.SqliteStore(tmp_path / "s.db") as store:
        live = store.subscribe("a")
        for i in range(8):
            await store.transact("a", [Put("orders", str(i), {})])
        await asyncio.sleep(0.05)  # let the notifications land
        seen = []
        try:
            async for change in live:
                seen.append(change.version)
        except SubscriberTooSlow:
            pass
        else:
            raise AssertionError("expected SubscriberTooSlow")
        assert seen == [1, 2, 3, 4, 5]
        assert [c.version for c in await store.changes_since("a", seen[-1])] == [6, 7, 8]
