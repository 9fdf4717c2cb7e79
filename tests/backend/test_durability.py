"""Kill -9 the real server (`python -m backend_stub`) while orders are in flight: after a restart every
acknowledged order is there and the stream resumes from a version with nothing lost or repeated.
Also: resting orders are back in the paper broker's book after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.backend.conftest import TEST_KEY, auth, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.backend.test_stream import until_synced
from tests.support import free_port


@asynccontextmanager
async def server_process(data_dir: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "SKEET_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "SKEET_DEV_KEY": TEST_KEY.decode(),
        "SKEET_RATE_PER_S": "10000",
        "SKEET_RATE_BURST": "10000",
        "SKEET_READ_RATE_PER_S": "10000",
        "SKEET_READ_BURST": "10000",
    }
    log_path = data_dir / f"server-{port}.log"
    log = await asyncio.to_thread(log_path.open, "ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backend_stub", env=env, stdout=log, stderr=log
    )
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(300):
                if proc.returncode is not None:
                    raise RuntimeError(log_path.read_text())
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise TimeoutError("server did not start")
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
        log.close()


async def test_acknowledged_orders_survive_kill_9_and_the_stream_resumes(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    acknowledged: dict[str, dict] = {}
    enough = asyncio.Event()
    async with server_process(tmp_path, port) as proc:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            ticker_amount = "0.01"  # on the recording's BTC step; 10+ USDT at the prices below
            first = await http.post(
                "/v1/orders",
                headers=auth("alice"),
                json={
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "type": "market",
                    "amount": ticker_amount,
                    "clientOrderId": "first",
                },
            )
            assert first.status_code == 201, first.text
            acknowledged["first"] = first.json()
            async with connect(f"ws://127.0.0.1:{port}/v1/stream", additional_headers=auth("alice")) as ws:
                _, version_before = await until_synced(ws)

            async def place(i: int) -> None:
                key = f"o{i}"
                body = {
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "type": "limit",
                    "amount": ticker_amount,
                    "price": 1000 + i,
                    "clientOrderId": key,
                }
                try:
                    r = await http.post("/v1/orders", headers=auth("alice"), json=body)
                except httpx.TransportError:
                    return  # not acknowledged: may or may not exist
                if r.status_code == 201:
                    acknowledged[key] = r.json()
                    if len(acknowledged) >= 15:
                        enough.set()

            async def killer() -> None:
                await enough.wait()
                os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no flush: as a power cut would

            kill = asyncio.create_task(killer())
            await asyncio.wait_for(asyncio.gather(*(place(i) for i in range(60))), 30)
            assert kill.done(), f"only {len(acknowledged)} orders acknowledged"
            await asyncio.wait_for(proc.wait(), 10)
            assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 15

    async with server_process(tmp_path, port):
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            orders = {
                o["clientOrderId"]: o for o in (await http.get("/v1/orders", headers=auth("alice"))).json()
            }
            for key, order in acknowledged.items():
                assert key in orders, f"acknowledged order {key} lost"
                assert orders[key]["id"] == order["id"]
                assert orders[key]["amount"] == order["amount"]
            # A retry of an acknowledged order after the crash is still the same order.
            retry = (
                await http.post(
                    "/v1/orders",
                    headers=auth("alice"),
                    json={
                        "symbol": "BTC/USDT",
                        "side": "buy",
                        "type": "limit",
                        "amount": ticker_amount,
                        "price": 1000,
                        "clientOrderId": "o0",
                    },
                )
                if "o0" in acknowledged
                else None
            )
            if retry is not None:
                assert retry.status_code == 200 and retry.json()["id"] == acknowledged["o0"]["id"]
            async with connect(
                f"ws://127.0.0.1:{port}/v1/stream?since={version_before}", additional_headers=auth("alice")
            ) as ws:
                changes, version = await until_synced(ws)
            versions = [c["version"] for c in changes]
            assert versions == list(range(version_before + 1, version + 1))
            assert {c["id"] for c in changes} == {o["id"] for o in orders.values() if o["type"] == "limit"}
            assert all(c["kind"] == "added" for c in changes)


async def test_resting_orders_are_matched_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    feed = ListFeed({"BTC/USDT": 50_000.0})
    async with serve(settings, feed) as backend:
        order = (
            await backend.order(
                "alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.2", price="49000"
            )
        ).json()
    feed = ListFeed({"BTC/USDT": 50_000.0})
    async with serve(settings, feed) as backend:
        balance = (await backend.get("alice", "/v1/balance")).json()
        assert balance["used"]["USDT"] > 0
        await feed.trade("BTC/USDT", 48_000.0)
        filled = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
        assert filled["status"] == "closed"
        assert json.dumps(filled)


async def test_concurrent_writers_are_all_durable_after_kill_9_mid_burst(tmp_path: Path) -> None:
    """Group commit: many users' orders share an fsync; every one acknowledged before the kill is there."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    users = [f"trader{i}" for i in range(8)]
    acknowledged: dict[str, list[dict]] = {uid: [] for uid in users}
    enough = asyncio.Event()
    async with server_process(tmp_path, port) as proc:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=5, limits=limits) as http:

            async def writer(uid: str, lane: int) -> None:
                for i in range(40):
                    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01",
                            "price": 1000 + i, "clientOrderId": f"{uid}-{lane}-{i}"}
                    try:
                        r = await http.post("/v1/orders", headers=auth(uid), json=body)
                    except httpx.TransportError:
                        return  # the server is gone: this one is not acknowledged
                    if r.status_code == 201:
                        acknowledged[uid].append(r.json())
                        if sum(map(len, acknowledged.values())) >= 120:
                            enough.set()

            async def killer() -> None:
                await enough.wait()
                os.kill(proc.pid, signal.SIGKILL)

            kill = asyncio.create_task(killer())
            # 8 users x 4 lanes: 32 requests in flight at once, so commits carry several transactions
            await asyncio.wait_for(asyncio.gather(*(writer(u, lane) for u in users for lane in range(4))), 60)
            assert kill.done(), f"only {sum(map(len, acknowledged.values()))} orders acknowledged"
            await asyncio.wait_for(proc.wait(), 10)

    async with server_process(tmp_path, port):
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            for uid in users:
                r = await http.get("/v1/orders", headers=auth(uid), params={"limit": "500"})
                stored = {o["clientOrderId"]: o for o in r.json()}
                for order in acknowledged[uid]:
                    assert order["clientOrderId"] in stored, f"acknowledged order {order['clientOrderId']} lost"
                    assert stored[order["clientOrderId"]]["id"] == order["id"]
                async with connect(f"ws://127.0.0.1:{port}/v1/stream?since=0", additional_headers=auth(uid)) as ws:
                    changes, version = await until_synced(ws)
                assert {c["id"] for c in changes if c["collection"] == "orders"} == {o["id"] for o in stored.values()}
