"""`FirestoreLive` end to end on the emulators: a user signed in on the Auth emulator places a paper order
through the API (`SKEET_STATE=firestore`, `SKEET_AUTH=firebase`) and their listener, which reads with their
ID token under `firestore.rules`, sees it added and then filled; another user sees nothing of it; a dropped
stream loses no change; 1,000 updates arrive in order. Latencies (commit → change yielded by `changes()`)
are printed; run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend_stub.firestore_store import FirestoreStore
from backend_stub.settings import Settings
from backend_stub.store.base import ALERTS, ORDERS, POSITIONS, Delete, Put
from services.live.firestore import FirestoreLive
from services.live.types import Change, ConnectionStatus
from tests.backend.conftest import serve
from tests.backend.listfeed import ListFeed

pytestmark = pytest.mark.emulator


class Collector:
    """Drains a `LiveState` into a list in the background and records when each change arrived."""

    def __init__(self, live: FirestoreLive) -> None:
        self.live = live
        self.changes: list[Change] = []
        self.arrived: list[float] = []
        self.statuses: list[ConnectionStatus] = []
        self._new = asyncio.Event()
        live.on_status(self.statuses.append)
        self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        async for change in self.live.changes():
            self.arrived.append(time.perf_counter())
            self.changes.append(change)
            self._new.set()

    async def until(self, predicate: Any, timeout_s: float) -> Change:
        """The first change (already seen or to come) that satisfies `predicate`."""
        return await self.until_progressing(predicate, timeout_s, timeout_s)

    async def until_progressing(self, predicate: Any, stall_s: float, limit_s: float) -> Change:
        """As `until`, for as long as changes keep coming (at most `limit_s`): fails once none has come for
        `stall_s`. A slow machine's emulator delivers a long run of writes late but steadily."""
        async with asyncio.timeout(limit_s):
            seen = 0
            while True:
                for change in self.changes[seen:]:
                    if predicate(change):
                        return change
                seen = len(self.changes)
                self._new.clear()
                try:
                    async with asyncio.timeout(stall_s):
                        await self._new.wait()
                except TimeoutError:
                    raise AssertionError(f"no change for {stall_s:.0f} s, {seen} arrived") from None

    async def status(self, wanted: ConnectionStatus, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while self.live.status != wanted:  # noqa: ASYNC110 - statuses are also kept in a list
                await asyncio.sleep(0.02)

    def state(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The documents the views would show: every change applied in order."""
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for change in self.changes:
            if change.kind == "removed":
                docs.pop((change.collection, change.doc_id), None)
            else:
                assert change.doc is not None
                docs[(change.collection, change.doc_id)] = change.doc
        return docs

    async def aclose(self) -> None:
        await self.live.aclose()
        try:  # FirestoreLive's changes() ends when closed; StreamLive's waits: cancel it
            await asyncio.wait_for(asyncio.shield(self._task), 1)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def listening(uid: str, token: str, host: str, project: str, **kwargs: Any) -> AsyncIterator[Collector]:
    async def id_token() -> str:
        return token

    live = FirestoreLive(uid, id_token, project=project, emulator_host=host, **kwargs)
    collector = Collector(live)
    try:
        await collector.status("connected", 15)
        yield collector
    finally:
        await collector.aclose()


def report(label: str, samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    line = (
        f"[latency] {label}: n={len(ordered)} p50={statistics.median(ordered):.1f} ms "
        f"p95={p(0.95):.1f} ms p99={p(0.99):.1f} ms max={ordered[-1]:.1f} ms"
    )
    print(line, file=sys.stderr)
    return line


# -- the whole path: Auth emulator → API → FirestoreStore → Firestore emulator → listener ---------------


async def test_an_order_placed_through_the_api_reaches_its_owner_only(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    alice, bob = sign_up("alice@example.com"), sign_up("bob@example.com")
    settings = replace(
        Settings(data_dir=tmp_path, rate_per_s=1000, rate_burst=1000), auth="firebase", state="firestore"
    )
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with (
        serve(settings, feed) as backend,
        listening(alice.uid, alice.id_token, firestore_host, emulators.project) as alices,
        listening(bob.uid, bob.id_token, firestore_host, emulators.project) as bobs,
    ):
        await asyncio.wait_for(feed.consumer_ready.wait(), 5)
        sent = time.perf_counter()
        r = await backend.http.post(
            "/v1/orders",
            json={
                "clientOrderId": "alice-1",
                "symbol": "BTC/USDT",
                "side": "buy",
                "type": "limit",
                "amount": "0.5",
                "price": "49000",
            },
            headers={"Authorization": f"Bearer {alice.id_token}"},
        )
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        added = await alices.until(lambda c: c.collection == ORDERS and c.doc_id == order_id, 1.0)
        seen_added = time.perf_counter()
        assert added.kind == "added" and added.doc is not None
        assert added.doc["status"] == "open" and added.doc["filled"] == 0
        assert "_version" not in added.doc and "_updatedAt" not in added.doc

        crossed = time.perf_counter()
        await feed.trade("BTC/USDT", 48_900.0, amount=5)  # the paper broker fills the resting limit
        filled = await alices.until(
            lambda c: c.doc_id == order_id and c.kind == "modified" and c.doc["status"] == "closed", 1.0
        )
        seen_filled = time.perf_counter()
        assert filled.doc is not None and filled.doc["filled"] == 0.5 and filled.doc["remaining"] == 0
        position = await alices.until(lambda c: c.collection == POSITIONS, 1.0)
        assert position.doc is not None and position.doc["symbol"] == "BTC/USDT"
        print(
            f"\n[latency] API order → listener 'added': {(seen_added - sent) * 1000:.0f} ms; "
            f"fill trade → listener 'modified' (closed): {(seen_filled - crossed) * 1000:.0f} ms",
            file=sys.stderr,
        )

        # The API refuses a forged identity, and bob's listener got nothing of alice's.
        r = await backend.http.get("/v1/orders", headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
        await asyncio.sleep(0.5)
        assert [c for c in bobs.changes if c.collection in (ORDERS, POSITIONS)] == []
        assert (
            await backend.http.get("/v1/orders", headers={"Authorization": f"Bearer {bob.id_token}"})
        ).json() == []


async def test_a_price_alert_fires_through_firestore_and_survives_a_restart(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    alice = sign_up("alice-alerts@example.com")
    settings = replace(
        Settings(data_dir=tmp_path, rate_per_s=1000, rate_burst=1000), auth="firebase", state="firestore"
    )
    headers = {"Authorization": f"Bearer {alice.id_token}"}
    first = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(settings, first) as backend:
        r = await backend.http.post("/v1/alerts", headers=headers,
                                    json={"clientAlertId": "dip", "symbol": "BTC/USDT", "price": "49000"})
        assert r.status_code == 201, r.text
    # A new process: the active alert is found again (a collection-group query) and still watched.
    second = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with (
        serve(settings, second) as backend,
        listening(alice.uid, alice.id_token, firestore_host, emulators.project) as alices,
    ):
        await second.until_followed("BTC/USDT")
        added = await alices.until(lambda c: c.collection == ALERTS and c.doc_id == "dip", 5.0)
        assert added.doc is not None and added.doc["status"] == "active" and added.doc["condition"] == "below"
        await second.trade("BTC/USDT", 48_990.0)
        fired = await alices.until(
            lambda c: c.doc_id == "dip" and c.kind == "modified" and c.doc["status"] == "triggered", 5.0
        )
        assert fired.doc is not None and fired.doc["triggerPrice"] == 48_990
        assert (await backend.http.get("/v1/alerts", headers=headers)).json()[0]["status"] == "triggered"


async def test_a_listener_cannot_open_another_users_collections(
    emulators: Any, firestore_host: str, sign_up: Any
) -> None:
    emulators.need_official_firestore("security rules")
    alice, bob = sign_up("alice@example.com"), sign_up("bob@example.com")
    async with FirestoreStore() as store:
        await store.transact(bob.uid, [Put(ORDERS, "secret", {"id": "secret", "status": "open"})])

    async def alices_token() -> str:
        return alice.id_token

    # Alice's token, bob's uid: the rules refuse every listener; nothing leaks and it never connects.
    live = FirestoreLive(bob.uid, alices_token, project=emulators.project, emulator_host=firestore_host)
    collector = Collector(live)
    try:
        await asyncio.sleep(2.0)
        assert collector.changes == []
        assert live.status in ("connecting", "reconnecting", "offline")
        assert "connected" not in collector.statuses
    finally:
        await collector.aclose()


# -- resilience -------------------------------------------------------------------------------------------


class FlakyLink:
    """A TCP proxy between the listener and the emulator that the test can cut (drop every connection
    and refuse new ones) and restore: what a phone losing its network does to the listener's stream."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.host = ""

    async def __aenter__(self) -> FlakyLink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        self._down = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._down = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_dropped_stream_loses_no_change_and_shows_reconnecting_then_offline(
    emulators: Any, firestore_host: str, sign_up: Any
) -> None:
    alice = sign_up("alice@example.com")
    uid = alice.uid
    async with FirestoreStore() as store, FlakyLink(firestore_host) as link:
        for i in range(5):
            await store.transact(uid, [Put(ORDERS, f"o{i}", {"id": f"o{i}", "status": "open", "n": 0})])
        async with listening(
            uid, alice.id_token, link.host, emulators.project, offline_after_s=1.0, backoff_max_s=0.5
        ) as live:
            await live.until(lambda c: c.doc_id == "o4", 5)
            assert len(live.changes) == 5

            link.cut()
            await live.status("reconnecting", 5)
            shown = live.state()  # what stays on screen while offline
            # While the listener is cut off: new docs, modified docs, a removed doc, a doc added and removed.
            await store.transact(uid, [Put(ORDERS, "o0", {"id": "o0", "status": "closed", "n": 1})])
            await store.transact(uid, [Put(ORDERS, "o1", {"id": "o1", "status": "open", "n": 1})])
            await store.transact(uid, [Put(ORDERS, "o1", {"id": "o1", "status": "closed", "n": 2})])
            await store.transact(uid, [Delete(ORDERS, "o2")])
            await store.transact(uid, [Put(ORDERS, "o9", {"id": "o9", "status": "open", "n": 0})])
            await store.transact(uid, [Put(ORDERS, "tmp", {"id": "tmp"})])
            await store.transact(uid, [Delete(ORDERS, "tmp")])
            await store.transact(uid, [Put(POSITIONS, "BTC-USDT", {"symbol": "BTC/USDT", "amount": 1})])
            await live.status("offline", 5)
            assert live.state() == shown  # the last known state is kept, nothing is cleared
            cpu = time.process_time()
            await asyncio.sleep(1.0)
            assert time.process_time() - cpu < 0.3, "the listener spins while offline"

            before = len(live.changes)
            link.restore()
            await live.status("connected", 10)
            await live.until(lambda c: c.collection == POSITIONS, 5)
            caught_up = live.changes[before:]
            assert sorted((c.collection, c.doc_id, c.kind) for c in caught_up) == [
                ("orders", "o0", "modified"),
                ("orders", "o1", "modified"),  # two writes while away: the latest state, once
                ("orders", "o2", "removed"),
                ("orders", "o9", "added"),
                ("positions", "BTC-USDT", "added"),
            ]
            expected = {("orders", doc["id"]): doc for doc in await store.list(uid, ORDERS)}
            expected.update({("positions", "BTC-USDT"): {"symbol": "BTC/USDT", "amount": 1}})
            assert live.state() == expected

            # And the stream keeps going after the reconnect.
            await store.transact(uid, [Put(ORDERS, "o3", {"id": "o3", "status": "closed", "n": 1})])
            await live.until(lambda c: c.doc_id == "o3" and c.kind == "modified", 2)
            assert live.statuses[:1] == ["connected"]
            assert {"reconnecting", "offline"} <= set(live.statuses)
            assert live.live.resubscriptions >= 1


async def test_one_thousand_updates_arrive_in_order_with_none_missing(
    emulators: Any, firestore_host: str, sign_up: Any
) -> None:
    emulators.need_official_firestore("throughput (its state slows down with every write: minutes for this)")
    alice = sign_up("alice@example.com")
    uid, n_orders, n_updates = alice.uid, 100, 1000
    async with FirestoreStore() as store:
        async with listening(uid, alice.id_token, firestore_host, emulators.project) as live:
            began: dict[int, float] = {}
            committed: dict[int, float] = {}
            started = time.perf_counter()
            for seq in range(n_updates):
                order_id = f"o{seq % n_orders:03d}"
                filled = seq // n_orders  # each order: 10 updates, its fill growing 0 → 9
                doc = {
                    "id": order_id,
                    "status": "closed" if filled == 9 else "open",
                    "filled": filled,
                    "seq": seq,
                }
                began[seq] = time.perf_counter()
                await store.transact(uid, [Put(ORDERS, order_id, doc)])
                committed[seq] = time.perf_counter()
            write_s = time.perf_counter() - started
            await live.until_progressing(lambda c: c.doc is not None and c.doc["seq"] == n_updates - 1, 30, 180)

        seqs = [c.doc["seq"] for c in live.changes if c.doc is not None]
        assert seqs == sorted(seqs), "changes arrived out of commit order"
        missing = sorted(set(range(n_updates)) - set(seqs))
        # Firestore listeners deliver snapshots: two writes to one doc between two snapshots show as one
        # change (its latest state). Writes here are sequential, so every one is its own snapshot.
        assert missing == [], f"{len(missing)} updates never reached the listener: {missing[:20]}"
        assert len(seqs) == n_updates
        assert [c.kind for c in live.changes[:n_orders]] == ["added"] * n_orders
        assert {c.kind for c in live.changes[n_orders:]} == {"modified"}
        assert live.state() == {("orders", d["id"]): d for d in await store.list(uid, ORDERS)}
        arrivals = [(c.doc["seq"], t) for c, t in zip(live.changes, live.arrived, strict=True) if c.doc]
        rate = f"{n_updates} sequential updates, {n_updates / write_s:.0f} writes/s"
        report(f"write started → listener ({rate})", [(t - began[seq]) * 1000 for seq, t in arrivals])
        report(
            f"commit acknowledged → listener ({rate})", [(t - committed[seq]) * 1000 for seq, t in arrivals]
        )


async def test_update_latency_at_a_steady_pace(emulators: Any, firestore_host: str, sign_up: Any) -> None:
    """Write → listener latency when the listener is not behind: 100 updates, one every 50 ms."""
    alice = sign_up("alice@example.com")
    async with FirestoreStore() as store:
        await store.transact(alice.uid, [Put(ORDERS, "o1", {"id": "o1", "seq": -1})])
        async with listening(alice.uid, alice.id_token, firestore_host, emulators.project) as live:
            await live.until(lambda c: c.doc_id == "o1", 5)
            began: dict[int, float] = {}
            for seq in range(100):
                began[seq] = time.perf_counter()
                await store.transact(alice.uid, [Put(ORDERS, "o1", {"id": "o1", "seq": seq})])
                await asyncio.sleep(0.05)
            await live.until(lambda c: c.doc is not None and c.doc["seq"] == 99, 10)
        arrivals = [(c.doc["seq"], t) for c, t in zip(live.changes, live.arrived, strict=True) if c.doc]
        latencies = [(t - began[seq]) * 1000 for seq, t in arrivals if seq >= 0]
        assert len(latencies) == 100
        report("write started → listener (100 updates of one order, 20/s)", latencies)
        assert statistics.median(latencies) < 1000


async def test_drop_streams_resubscribes_with_a_fresh_token_and_misses_nothing(
    emulators: Any, firestore_host: str, sign_up: Any
) -> None:
    alice = sign_up("alice@example.com")
    asked: list[float] = []

    async def id_token() -> str:  # the auth service's refreshing provider
        asked.append(time.perf_counter())
        return alice.id_token

    async with FirestoreStore() as store:
        live = FirestoreLive(alice.uid, id_token, project=emulators.project, emulator_host=firestore_host)
        collector = Collector(live)
        try:
            await collector.status("connected", 15)
            calls = len(asked)
            live.drop_streams()
            await collector.status("reconnecting", 10)
            await store.transact(alice.uid, [Put(ORDERS, "o1", {"id": "o1", "status": "open"})])
            await collector.until(lambda c: c.doc_id == "o1" and c.kind == "added", 10)
            await collector.status("connected", 10)
            assert live.resubscriptions == 1
            assert len(asked) > calls  # the token was asked for again before resubscribing
            assert collector.statuses[0] == "connected"
            assert collector.statuses[-2:] == ["reconnecting", "connected"]
            assert [(c.doc_id, c.kind) for c in collector.changes] == [("o1", "added")]
        finally:
            await collector.aclose()


async def test_firestore_listener_and_v1_stream_tell_the_same_story(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    """The embedded default's `/v1/stream` (here served from FirestoreStore's change log) and the Firestore
    listener turn the same trades into the same documents and change kinds."""
    from services.live.stream import StreamLive

    alice = sign_up("alice@example.com")
    settings = replace(
        Settings(data_dir=tmp_path, rate_per_s=1000, rate_burst=1000), auth="firebase", state="firestore"
    )
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})

    async def token() -> str:
        return alice.id_token

    async with serve(settings, feed) as backend:
        streamed = Collector(StreamLive(base_url=backend.base_url, token=token))  # type: ignore[arg-type]
        try:
            async with listening(alice.uid, alice.id_token, firestore_host, emulators.project) as listened:
                await streamed.status("connected", 10)
                await asyncio.wait_for(feed.consumer_ready.wait(), 5)
                ids = []
                for i, (side, kind) in enumerate([("buy", "limit"), ("buy", "market"), ("sell", "limit")]):
                    body = {
                        "clientOrderId": f"c{i}",
                        "symbol": "BTC/USDT",
                        "side": side,
                        "type": kind,
                        "amount": "0.1",
                    }
                    if kind == "limit":
                        body["price"] = "49000" if side == "buy" else "52000"
                    r = await backend.http.post(
                        "/v1/orders", json=body, headers={"Authorization": f"Bearer {alice.id_token}"}
                    )
                    assert r.status_code == 201, r.text
                    ids.append(r.json()["id"])
                await feed.trade("BTC/USDT", 48_900.0, amount=5)  # fills the resting buy
                r = await backend.http.delete(
                    f"/v1/orders/{ids[2]}", headers={"Authorization": f"Bearer {alice.id_token}"}
                )
                assert r.status_code == 200, r.text
                for collector in (streamed, listened):
                    await collector.until(lambda c: c.doc_id == ids[2] and c.doc["status"] == "canceled", 5)
                    await collector.until(lambda c: c.doc_id == ids[0] and c.doc["status"] == "closed", 5)
                await asyncio.sleep(0.3)
                assert listened.state() == streamed.state()
                for collector in (streamed, listened):
                    first_seen = {}
                    for change in collector.changes:
                        first_seen.setdefault(change.doc_id, change.kind)
                    assert set(first_seen.values()) == {"added"}  # every doc starts as "added" in both
        finally:
            await streamed.aclose()
