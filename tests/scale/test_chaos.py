"""Many instances, correct: 3 API processes (`SKEET_ROLE=api`) and 2 workers (`python -m backend_stub.worker`)
on one store and the Pub/Sub emulator. Traders race orders through different instances (the same
clientOrderId through two at once, too), each listening on a third; the worker matching BTC/USDT is
SIGKILLed while orders stream in. Then: no acknowledged order is lost or doubled, no fill is applied twice
(every position and balance equals the sum of its trades), the other worker took the symbols over and
filled resting orders after the kill, and every order's last state reached its trader's listener.

Runs on the Firestore emulator (the deployment's store) and on the embedded SQLite file shared by the
processes. Bounded: every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from services.auth import devtoken
from services.market import open_feed
from tests.support import ROOT, free_port, wait_http

pytestmark = pytest.mark.emulator

KEY = "chaos-test-dev-key-0123456789abcdef"
SYMBOL = "BTC/USDT"
START_USDT = Decimal("100000")
TRADERS = 4
ORDERS_EACH = 12  # after the opening market buy; a third of them before the kill
DEADLINE_S = 150.0  # generous for a loaded machine; a healthy run takes 10-70 s
LEASE_TTL_S = 3.0
MARKET = open_feed("synthetic")


@dataclass
class Cluster:
    apis: list[str]  # base URLs
    workers: dict[str, tuple[subprocess.Popen[bytes], str]]  # worker id → (process, base URL)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = Path(".")

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.logs.glob("*.log")))


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(params=["firestore", "sqlite"])
def cluster(request: pytest.FixtureRequest, pubsub: str, tmp_path: Path) -> Any:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1",
        "SKEET_DEV_KEY": KEY,
        "SKEET_DATA_DIR": str(tmp_path / "state"),
        "SKEET_BUS": "pubsub",
        "SKEET_PUBSUB_TOPIC": f"chaos-{uuid.uuid4().hex[:8]}",
        "SKEET_FEED": "synthetic",
        "SKEET_LEASE_TTL_S": str(LEASE_TTL_S),
        "SKEET_RECONCILE_S": "2",
        "SKEET_RATE_PER_S": "1000",
        "SKEET_RATE_BURST": "1000",
        "SKEET_READ_RATE_PER_S": "1000",
        "SKEET_READ_BURST": "1000",
    }
    if request.param == "firestore":
        env.update(SKEET_STATE="firestore", FIRESTORE_EMULATOR_HOST=request.getfixturevalue("firestore"))
    else:
        env["SKEET_STATE"] = "sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        workers = {}
        for n in range(2):
            port, wid = free_port(), f"worker-{n}"
            proc = start(["-m", "backend_stub.worker"], {**env, "PORT": str(port), "SKEET_WORKER_ID": wid},
                         logs / f"{wid}.log")  # fmt: skip
            procs.append(proc)
            workers[wid] = (proc, f"http://127.0.0.1:{port}")
        apis = []
        for n in range(3):
            port = free_port()
            procs.append(start(["-m", "backend_stub"], {**env, "PORT": str(port), "SKEET_ROLE": "api"},
                               logs / f"api-{n}.log"))  # fmt: skip
            apis.append(f"http://127.0.0.1:{port}")
        for proc, url in [*workers.values(), *zip(procs[2:], apis, strict=True)]:
            wait_http(f"{url}/healthz", proc, timeout_s=120)
        yield Cluster(apis=apis, workers=workers, procs=procs, logs=logs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def until(what: str, check: Callable[[], Awaitable[bool]], cluster: Cluster, deadline: float) -> None:
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within the deadline: {what}\n{cluster.log_tail()}")
        await asyncio.sleep(0.2)


class Trader:
    """One user: places through the instances in turn, listens on one of them."""

    def __init__(self, n: int, cluster: Cluster, client: httpx.AsyncClient) -> None:
        self.uid = f"trader{n}-{uuid.uuid4().hex[:6]}"
        self.token = devtoken.mint(self.uid, key=KEY.encode(), ttl_s=3600)
        self.cluster = cluster
        self.client = client
        self.listen_on = cluster.apis[n % 3]
        self.acked: dict[str, dict[str, Any]] = {}  # clientOrderId → order as acknowledged
        self.seen: dict[str, tuple[int, dict[str, Any]]] = {}  # order id → (version, doc) from the stream
        self.turn = n

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def next_api(self) -> str:
        self.turn += 1
        api = self.cluster.apis[self.turn % 3]
        return api if api != self.listen_on else self.cluster.apis[(self.turn + 1) % 3]

    async def listen(self, ready: asyncio.Event) -> None:
        url = self.listen_on.replace("http://", "ws://") + f"/v1/stream?token={self.token}"
        async with connect(url, open_timeout=30) as ws:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "synced":
                    ready.set()
                if frame["type"] == "change" and frame["collection"] == "orders" and frame["doc"] is not None:
                    held = self.seen.get(frame["id"])
                    if held is None or held[0] < frame["version"]:
                        self.seen[frame["id"]] = (frame["version"], frame["doc"])

    async def last(self) -> Decimal:
        """The price the instances see now: the synthetic market is the same in every process."""
        return Decimal(str((await MARKET.ticker(SYMBOL))["last"]))

    async def place(self, body: dict[str, Any], *, via: list[str] | None = None) -> dict[str, Any] | None:
        """POST until answered (a retry keeps the clientOrderId); None when the market refused it (400)."""
        for _attempt in range(20):
            targets = via or [self.next_api()]
            try:
                answers = await asyncio.gather(
                    *(self.client.post(f"{api}/v1/orders", json=body, headers=self.headers) for api in targets)
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if any(a.status_code in (429, 503) for a in answers):
                await asyncio.sleep(0.2)
                continue
            if answers[0].status_code == 400:
                return None
            for answer in answers:
                assert answer.status_code in (200, 201), answer.text
            ids = {a.json()["id"] for a in answers}
            assert len(ids) == 1, f"one clientOrderId made {ids}"
            order = answers[0].json()
            self.acked[body["clientOrderId"]] = order
            return order
        raise AssertionError(f"{body['clientOrderId']} never answered")

    async def orders(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params = {"status": "all", "limit": 500, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(f"{self.next_api()}/v1/orders", headers=self.headers, params=params)
            response.raise_for_status()
            out.update((o["id"], o) for o in response.json())
            cursor = response.headers.get("Next-Cursor")
            if not cursor:
                return out


async def trade(trader: Trader, count: int, tag: str, started: asyncio.Event | None = None) -> None:
    """Resting limit buys and sells one tick either side of the last price, a stop above it, and the
    occasional market order, each through another instance."""
    for i in range(count):
        last = await trader.last()
        kind = i % 4
        body: dict[str, Any] = {"symbol": SYMBOL, "clientOrderId": f"{tag}-{i}", "amount": "0.001"}
        if kind == 0:
            body.update(side="buy", type="limit", price=str(last - Decimal("0.01")))
        elif kind == 1:
            body.update(side="sell", type="limit", price=str(last + Decimal("0.01")))
        elif kind == 2:
            body.update(side="buy", type="stop_market", stopPrice=str(last + Decimal("0.05")))
        else:
            body.update(side="sell", type="market")
        await trader.place(body)
        if started is not None and i == 1:
            started.set()  # orders are streaming: the kill lands among them
        await asyncio.sleep(random.uniform(0, 0.1))


async def workers_holding(cluster: Cluster, client: httpx.AsyncClient) -> dict[str, list[str]]:
    held = {}
    for wid, (proc, url) in cluster.workers.items():
        if proc.poll() is not None:
            continue
        try:
            response = await client.get(f"{url}/healthz")
            held[wid] = response.json()["symbols"]
        except httpx.TransportError:
            continue
    return held


async def test_no_order_lost_or_filled_twice_when_a_worker_dies_mid_stream(cluster: Cluster) -> None:
    deadline = time.monotonic() + DEADLINE_S
    async with httpx.AsyncClient(timeout=30) as client:
        async def all_symbols_held() -> bool:
            held = await workers_holding(cluster, client)
            return SYMBOL in {s for symbols in held.values() for s in symbols}

        await until("a worker holds BTC/USDT", all_symbols_held, cluster, deadline)
        traders = [Trader(n, cluster, client) for n in range(TRADERS)]
        readies = [asyncio.Event() for _ in traders]
        listeners = [asyncio.create_task(t.listen(r)) for t, r in zip(traders, readies, strict=True)]
        try:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
            # Each trader's opening buy goes through two instances at once with one clientOrderId.
            await asyncio.gather(*(
                t.place({"symbol": SYMBOL, "side": "buy", "type": "market", "amount": "0.02",
                         "clientOrderId": "open"}, via=cluster.apis[:2])
                for t in traders
            ))  # fmt: skip
            await asyncio.gather(*(trade(t, ORDERS_EACH // 3, f"{t.uid}-a") for t in traders))

            # The worker matching BTC/USDT dies while the next orders stream in.
            held = await workers_holding(cluster, client)
            victim = next(wid for wid, symbols in held.items() if SYMBOL in symbols)
            survivor = next(wid for wid in cluster.workers if wid != victim)
            streaming = asyncio.Event()
            rest = asyncio.gather(
                *(trade(t, ORDERS_EACH - ORDERS_EACH // 3, f"{t.uid}-b", streaming) for t in traders)
            )
            await asyncio.wait_for(streaming.wait(), 60)
            killed_at_ms = int(time.time() * 1000)
            cluster.workers[victim][0].send_signal(signal.SIGKILL)
            phases = {"kill": time.monotonic()}
            await rest
            phases["orders placed"] = time.monotonic()

            async def survivor_took_over() -> bool:
                return SYMBOL in (await workers_holding(cluster, client)).get(survivor, [])

            await until(f"{survivor} takes BTC/USDT over", survivor_took_over, cluster, deadline)
            phases["taken over"] = time.monotonic()

            async def filled_after_kill() -> bool:
                for t in traders:
                    for order in (await t.orders()).values():
                        if any(tr["takerOrMaker"] == "maker" and tr["timestamp"] > killed_at_ms + 1000
                               for tr in order["trades"]):  # fmt: skip
                            return True
                return False

            await until("a resting order fills after the take-over", filled_after_kill, cluster, deadline)
            phases["filled after"] = time.monotonic()

            # Stop the market for these traders: cancel what rests (a fill may win the race: 409).
            for t in traders:
                for order in (await t.orders()).values():
                    if order["status"] == "open":
                        answer = await client.delete(f"{t.next_api()}/v1/orders/{order['id']}", headers=t.headers)
                        assert answer.status_code in (200, 409), answer.text

            async def listeners_caught_up() -> bool:
                for t in traders:
                    stored = await t.orders()
                    if any(o["status"] == "open" for o in stored.values()):
                        return False
                    if {i: t.seen.get(i, (0, None))[1] for i in stored} != stored:
                        return False
                return True

            await until("every order's last state reaches its trader's listener", listeners_caught_up,
                        cluster, deadline)  # fmt: skip
            phases["listeners caught up"] = time.monotonic()
            print("[chaos] after the kill: " + ", ".join(
                f"{name} {at - phases['kill']:.1f} s" for name, at in phases.items() if name != "kill"))  # fmt: skip
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

        makers_after_kill = fills = 0
        for t in traders:
            stored = await t.orders()
            by_client = {o["clientOrderId"]: o for o in stored.values()}
            # Nothing acknowledged is lost, nothing doubled: one order per clientOrderId, each acked one there.
            assert len(by_client) == len(stored)
            assert set(t.acked) <= set(by_client), set(t.acked) - set(by_client)
            for key, acked in t.acked.items():
                assert by_client[key]["id"] == acked["id"]
            base = quote = Decimal(0)
            for order in stored.values():
                trades = order["trades"]
                fills += len(trades)
                assert len({tr["id"] for tr in trades}) == len(trades)
                filled = sum((Decimal(str(tr["amount"])) for tr in trades), Decimal(0))
                assert filled == Decimal(str(order["filled"])) <= Decimal(str(order["amount"])), order
                for tr in trades:
                    signed = Decimal(str(tr["amount"])) * (1 if tr["side"] == "buy" else -1)
                    base += signed
                    quote -= signed * Decimal(str(tr["price"])) + Decimal(str(tr["fee"]["cost"]))
                    makers_after_kill += tr["takerOrMaker"] == "maker" and tr["timestamp"] > killed_at_ms
            # No fill booked twice (or missed): the account is exactly the sum of the trades.
            balance = (await client.get(f"{t.next_api()}/v1/balance", headers=t.headers)).json()
            assert abs(Decimal(str(balance["total"]["BTC"])) - base) < Decimal("1e-9"), (balance, base)
            assert abs(Decimal(str(balance["total"]["USDT"])) - (START_USDT + quote)) < Decimal("1e-6")
        assert makers_after_kill >= 1
        print(f"[chaos] {sum(len(t.acked) for t in traders)} orders acknowledged, "
              f"{fills} fills, "
              f"{makers_after_kill} resting fills after the kill")  # fmt: skip
