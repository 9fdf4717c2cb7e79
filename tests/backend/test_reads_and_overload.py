"""Reads in pages (limit + opaque cursor, from the store's indexes), the per-user read bucket, and
admission control: offered more than it serves at once, the API answers 503 + Retry-After at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from backend_stub.store.base import ACCOUNT, ORDERS, Put
from backend_stub.store.sqlite import SqliteStore
from services.api.client import SkeetApi
from tests.backend.conftest import Running, auth, make_settings, serve, token
from tests.backend.listfeed import ListFeed


async def place_resting(backend: Running, uid: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = await backend.order(uid, symbol="BTC/USDT", side="buy", type="limit", amount="0.01", price=str(1000 + i))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def read_pages(backend: Running, uid: str, path: str, **params: str) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await backend.get(uid, path, params=query)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = r.headers.get("Next-Cursor")
        if cursor is None:
            return pages


async def test_orders_come_in_pages_newest_first_and_filtered(backend: Running) -> None:
    ids = await place_resting(backend, "alice", 45)
    for order_id in ids[:12]:
        assert (await backend.http.delete(f"/v1/orders/{order_id}", headers=auth("alice"))).status_code == 200
    pages = await read_pages(backend, "alice", "/v1/orders", limit="10")
    assert [len(p) for p in pages] == [10, 10, 10, 10, 5]
    listed = [o["id"] for page in pages for o in page]
    assert listed == ids[::-1]  # each once, newest first, across pages
    open_pages = await read_pages(backend, "alice", "/v1/orders", status="open", limit="20")
    assert [o["id"] for p in open_pages for o in p] == ids[12:][::-1]
    closed = await read_pages(backend, "alice", "/v1/orders", status="closed", limit="5")
    assert [o["id"] for p in closed for o in p] == ids[:12][::-1]
    assert all(o["status"] == "canceled" for p in closed for o in p)
    # the default page holds them all here (100), and another user sees none of them
    r = await backend.get("alice", "/v1/orders")
    assert len(r.json()) == 45 and "Next-Cursor" not in r.headers
    assert (await backend.get("bob", "/v1/orders", params={"limit": "1"})).json() == []


async def test_bad_page_requests_get_422(backend: Running) -> None:
    for params in ({"limit": "501"}, {"limit": "0"}, {"cursor": "not-a-cursor"}, {"cursor": "W10"}):
        r = await backend.get("alice", "/v1/orders", params=params)
        assert r.status_code == 422, (params, r.text)
    assert "cursor" in (await backend.get("alice", "/v1/alerts", params={"cursor": "e30"})).json()["error"]


async def test_alerts_come_in_pages(backend: Running) -> None:
    created = []
    for i in range(7):
        r = await backend.alert("alice", symbol="BTC/USDT", price=str(60_000 + i))
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
    pages = await read_pages(backend, "alice", "/v1/alerts", limit="3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(a["id"] for p in pages for a in p) == sorted(created)
    assert len((await backend.get("alice", "/v1/alerts", params={"status": "active"})).json()) == 7
    assert (await backend.get("alice", "/v1/alerts", params={"status": "triggered"})).json() == []


async def test_the_app_client_reads_every_page(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_open_orders=600)  # the default cap is 200 open orders
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:
        ids = await place_resting(backend, "alice", 520)  # more than the largest page (500)

        async def alice_token() -> str:
            return token("alice")

        async with SkeetApi(base_url=backend.base_url, token=alice_token) as api:
            orders = await api.orders()
            assert [o["id"] for o in orders] == ids[::-1]
            assert len(await api.orders("open")) == 520


async def test_pages_are_read_from_indexes(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        db = store._db  # noqa: SLF001 (the query plan is the behaviour under test)
        cases = (
            ("orders_open", "status='open'", ()),
            ("documents_by_time", "ts IS NOT NULL AND status IN (?,?)", ("closed", "canceled")),
        )
        for index, where, status in cases:
            plan = " ".join(
                str(row[-1])
                for row in db.execute(
                    f"EXPLAIN QUERY PLAN SELECT doc FROM documents INDEXED BY {index} WHERE uid=? "
                    f"AND collection='orders' AND {where} AND (ts, doc_id) < (?, ?) "
                    "ORDER BY ts DESC, doc_id DESC LIMIT 11",
                    ("u", *status, 5, "x"),
                )
            )
            assert index in plan and "TEMP B-TREE" not in plan, plan
        # the partial indexes hold what they page: other writes, and orders that do not rest, skip them
        await store.transact("u", [
            Put(ACCOUNT, "paper", {"USDT": "1"}),
            Put(ORDERS, "o1", {"timestamp": 1, "status": "open"}),
            Put(ORDERS, "o2", {"timestamp": 2, "status": "closed"}),
        ])
        counted = db.execute("SELECT COUNT(*) FROM documents INDEXED BY documents_by_time WHERE ts IS NOT NULL")
        assert counted.fetchone()[0] == 2
        counted = db.execute(
            "SELECT doc_id FROM documents INDEXED BY orders_open WHERE collection='orders' AND status='open'"
        )
        assert counted.fetchall() == [("o1",)]


async def test_reads_are_rate_limited_per_user(tmp_path: Path) -> None:
    settings = replace(make_settings(tmp_path), read_rate_per_s=0.5, read_burst=5)
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:
        codes = [(await backend.get("alice", "/v1/orders")).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = await backend.get("alice", "/v1/balance")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        assert r.json()["error"].startswith("Too many requests")
        assert (await backend.get("bob", "/v1/orders")).status_code == 200  # bob has his own bucket
        assert (await backend.http.get("/healthz")).status_code == 200


async def test_more_than_the_limit_at_once_gets_503_with_retry_after(tmp_path: Path) -> None:
    settings = replace(
        make_settings(tmp_path), max_in_flight=1, max_queued=1, queue_wait_s=8, read_timeout_s=30
    )
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:
        # A POST whose body is held back occupies the one slot until we finish it.
        port = int(backend.base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "1000", "clientOrderId": "held"}'
        writer.write(
            b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nAuthorization: {auth('alice')['Authorization']}\r\n\r\n".encode()
            + body[:10]
        )
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (r := await backend.get("bob", "/v1/balance")).status_code != 503:  # until the slot is held
            assert loop.time() < deadline, "the held request never took the slot"
        assert r.headers["Retry-After"] == "1"
        assert r.json() == {"error": "The server is busy; try again in a moment"}

        # Offered 20 at once: one may wait in the queue (for up to 8 s), the other 19 are refused while the
        # slot is still held, i.e. at once, not after a wait (no timing threshold: a queued one could not return).
        async def offer() -> int:
            r = await backend.order("bob", symbol="BTC/USDT", side="buy", type="limit", amount="0.01", price="1000")
            return r.status_code

        offered = [asyncio.create_task(offer()) for _ in range(20)]
        deadline = loop.time() + 6  # inside the queue's 8 s wait
        while sum(t.done() for t in offered) < 19:
            assert loop.time() < deadline, "requests beyond the queue were not refused while the slot was held"
            await asyncio.sleep(0.01)
        refused = [t.result() for t in offered if t.done()]
        assert refused == [503] * len(refused)
        assert (await backend.http.get("/healthz")).status_code == 200  # liveness is not counted

        writer.write(body[10:])  # the held order completes, and the slot is free again
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 201")
        writer.close()
        queued = [await t for t in offered if not t.done()]
        assert queued in ([], [201])  # the one that waited in the queue got the slot once it was free
        r = await backend.order("bob", symbol="BTC/USDT", side="buy", type="limit", amount="0.01", price="1000")
        assert r.status_code == 201
