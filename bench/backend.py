"""Benchmark: the backend's HTTP API and change feed over loopback, against `/healthz` in the same run.

    python bench/backend.py            # 1 and 8 concurrent requests, 3 rounds (~30-50 s on 2 cores)
    python bench/backend.py --quick    # a few seconds

The real backend (`python -m backend_stub`: uvicorn, the paper broker on the replay feed, SQLite in WAL
with synchronous=FULL in a temporary SKEET_DATA_DIR on this machine's disk) runs as a child process on a
free loopback port; this process drives it with one httpx.AsyncClient (keep-alive, a connection per
concurrent request) and dev tokens minted with the SKEET_DEV_KEY it gave the server. Routes:

- `GET /healthz`, the baseline: no auth, no I/O, so the floor of the HTTP stack (uvicorn, Starlette's
  middleware, FastAPI's routing and JSON) plus httpx on this side.
- `GET /v1/orders` for a user holding `--book` orders (seeded first, so the answer does not grow).
- `POST /v1/orders`: market buys of 0.001 BTC/USDT, a new clientOrderId each; request k is sent as writer
  user k mod `--users`, so the paper broker's per-user lock is not what is measured but the store is.
- the same POST retried with an earlier clientOrderId and body: the idempotent replay (200, no write).

Order writes are rate-limited per user (20/s, burst 40 by default); the bench raises SKEET_RATE_PER_S and
SKEET_RATE_BURST to 1e6 and the paper balance (SKEET_PAPER_BALANCE) to 1e9 USDT so that neither the
limiter nor the funds answer instead of the route. Every answer's status is checked.

Each (route, concurrency) pair is measured in `--rounds` rounds that cycle through all routes, so load
drift from other work on the machine hits the baseline and the routes alike. Latency is per request,
from send to the whole body read (nearest-rank percentiles); req/s is requests over the phases' wall time.
Ratios are against `/healthz` at the same concurrency. Also shown: CPU milliseconds per request of the
server process (all its threads, from /proc) and of this client process (time.process_time). Both share
the cores, and httpx costs several times the CPU of the server's whole /healthz, so req/s at
concurrency 8 is bounded by the client as much as by the server: the server-CPU ratio is the one that
compares routes without the client in it.

Write → change feed: one user listens to `/v1/stream` through the app's own `StreamLive`; `--feed`
orders are placed one at a time and each is timed from the POST being sent to its "added" change
arriving in `StreamLive.changes()`, with the POST's own round trip as the baseline. Both arrive on this
one event loop, so which came first is resolved no finer than one turn of it.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from ui_latency import cpu_seconds, percentile  # noqa: E402  (this folder: one percentile, one /proc reader)

from services.auth import devtoken  # noqa: E402
from services.live.stream import StreamLive  # noqa: E402
from tests.support import free_port, start_backend, stop  # noqa: E402

DEV_KEY = "bench-dev-key-not-a-secret-long-enough"
SERVER_ENV = {
    "SKEET_RATE_PER_S": "1000000",
    "SKEET_RATE_BURST": "1000000",
    "SKEET_READ_RATE_PER_S": "1000000",
    "SKEET_READ_BURST": "1000000",
    "SKEET_MAX_IN_FLIGHT": "1000",
    "SKEET_MAX_QUEUED": "1000",
    "SKEET_PAPER_BALANCE": "1000000000",
}
SYMBOL, AMOUNT = "BTC/USDT", "0.001"
ROUTES = ("GET /healthz", "GET /v1/orders", "POST /v1/orders", "POST /v1/orders retry")
BASELINE = ROUTES[0]

Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def auth(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {devtoken.mint(uid, key=DEV_KEY.encode())}"}


def market_buy(client_order_id: str) -> dict[str, Any]:
    return {"symbol": SYMBOL, "side": "buy", "type": "market", "amount": AMOUNT, "clientOrderId": client_order_id}


@dataclass
class Figures:
    """One (route, concurrency): every round's latencies, wall time and CPU added up."""

    route: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        n = len(lat)
        return {
            "route": self.route, "concurrency": self.concurrency, "requests": n,
            "p50_ms": round(percentile(lat, 0.50), 3), "p95_ms": round(percentile(lat, 0.95), 3),
            "p99_ms": round(percentile(lat, 0.99), 3), "req_per_s": round(n / self.wall_s, 1),
            "server_cpu_ms_per_req": round(self.server_cpu_s / n * 1000, 3),
            "client_cpu_ms_per_req": round(self.client_cpu_s / n * 1000, 3),
        }


class Routes:
    """The four requests, each a function of the request number; remembers the orders it placed."""

    def __init__(self, *, reader: str, writers: list[str]) -> None:
        self._reader = auth(reader)
        self._writers = [(uid, auth(uid)) for uid in writers]
        self._placed: list[tuple[int, str]] = []  # (writer index, clientOrderId)
        self._serial = 0
        self.expected = {ROUTES[0]: 200, ROUTES[1]: 200, ROUTES[2]: 201, ROUTES[3]: 200}

    def calls(self) -> dict[str, Call]:
        return {ROUTES[0]: self.healthz, ROUTES[1]: self.list_orders, ROUTES[2]: self.place, ROUTES[3]: self.retry}

    async def healthz(self, client: httpx.AsyncClient, k: int) -> httpx.Response:
        return await client.get("/healthz")

    async def list_orders(self, client: httpx.AsyncClient, k: int) -> httpx.Response:
        return await client.get("/v1/orders", headers=self._reader)

    async def place(self, client: httpx.AsyncClient, k: int) -> httpx.Response:
        self._serial += 1
        writer = k % len(self._writers)
        client_order_id = f"bench-{self._serial}"
        response = await client.post("/v1/orders", json=market_buy(client_order_id),
                                     headers=self._writers[writer][1])
        self._placed.append((writer, client_order_id))
        return response

    async def retry(self, client: httpx.AsyncClient, k: int) -> httpx.Response:
        writer, client_order_id = self._placed[k % len(self._placed)]
        return await client.post("/v1/orders", json=market_buy(client_order_id), headers=self._writers[writer][1])


async def measure(client: httpx.AsyncClient, call: Call, expected: int, n: int, concurrency: int,
                  figures: Figures, server_pid: int) -> None:
    """`n` requests, `concurrency` in flight at once, added to `figures`."""
    numbers = iter(range(n))  # shared: each worker takes the next request number

    async def worker() -> None:
        for k in numbers:
            started = time.perf_counter()
            response = await call(client, k)
            figures.latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != expected:
                raise RuntimeError(f"{figures.route}: HTTP {response.status_code}, expected {expected}: "
                                   f"{response.text[:300]}")

    server_cpu, client_cpu, wall = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    figures.wall_s += time.perf_counter() - wall
    figures.client_cpu_s += time.process_time() - client_cpu
    figures.server_cpu_s += cpu_seconds(server_pid) - server_cpu


async def bench_routes(url: str, server_pid: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    routes = Routes(reader="bench-reader", writers=[f"bench-writer-{i}" for i in range(args.users)])
    counts = {ROUTES[0]: args.requests, ROUTES[1]: args.requests, ROUTES[2]: args.orders,
              ROUTES[3]: args.requests}
    limits = httpx.Limits(max_connections=max(args.concurrency), max_keepalive_connections=max(args.concurrency))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        reader_book = auth("bench-reader")
        for i in range(args.book):
            response = await client.post("/v1/orders", json=market_buy(f"book-{i}"), headers=reader_book)
            response.raise_for_status()
        calls = routes.calls()
        scratch = Figures("warm-up", 0)
        for route, call in calls.items():  # connections open, first-call caches filled
            await measure(client, call, routes.expected[route], 100, max(args.concurrency), scratch, server_pid)
        figures = {(r, c): Figures(r, c) for c in args.concurrency for r in ROUTES}
        for round_no in range(args.rounds):
            for concurrency in args.concurrency:
                for route, call in calls.items():
                    n = max(1, counts[route] // args.rounds)
                    await measure(client, call, routes.expected[route], n, concurrency,
                                  figures[route, concurrency], server_pid)
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return [f.summary() for f in figures.values()]


async def bench_feed(url: str, n: int) -> dict[str, Any]:
    """POST → "added" change on /v1/stream, one order at a time, through the client's StreamLive."""
    uid = "bench-feed"
    headers = auth(uid)

    async def token() -> str:
        return headers["Authorization"].removeprefix("Bearer ")

    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    connected = asyncio.Event()
    post_ms: list[float] = []
    feed_ms: list[float] = []
    before_response = 0
    async with StreamLive(base_url=url, token=token) as live, httpx.AsyncClient(base_url=url, timeout=30) as http:
        live.on_status(lambda status: connected.set() if status == "connected" else None)

        async def listen() -> None:
            async for change in live.changes():
                doc = change.doc or {}
                if change.collection == "orders" and change.kind == "added" and "clientOrderId" in doc:
                    arrived[doc["clientOrderId"]] = time.perf_counter()
                    if event := waiting.get(doc["clientOrderId"]):
                        event.set()

        listener = asyncio.create_task(listen(), name="bench-feed-listener")
        try:
            await asyncio.wait_for(connected.wait(), 30)
            for i in range(n + 10):  # the first 10 warm up
                client_order_id = f"feed-{i}"
                waiting[client_order_id] = event = asyncio.Event()
                started = time.perf_counter()
                response = await http.post("/v1/orders", json=market_buy(client_order_id), headers=headers)
                answered = time.perf_counter()
                if response.status_code != 201:
                    raise RuntimeError(f"feed order: HTTP {response.status_code}: {response.text[:300]}")
                await asyncio.wait_for(event.wait(), 10)
                if i >= 10:
                    post_ms.append((answered - started) * 1000)
                    feed_ms.append((arrived[client_order_id] - started) * 1000)
                    before_response += arrived[client_order_id] < answered
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    post_ms.sort()
    feed_ms.sort()
    return {
        "orders": n, "post_p50_ms": round(percentile(post_ms, 0.5), 3),
        "post_p95_ms": round(percentile(post_ms, 0.95), 3), "feed_p50_ms": round(percentile(feed_ms, 0.5), 3),
        "feed_p95_ms": round(percentile(feed_ms, 0.95), 3), "feed_p99_ms": round(percentile(feed_ms, 0.99), 3),
        "change_before_response": before_response,
    }


def report(routes: list[dict[str, Any]], feed: dict[str, Any], idle_cpu: float,
           args: argparse.Namespace) -> dict[str, Any]:
    base = {r["concurrency"]: r for r in routes if r["route"] == BASELINE}
    print(f"\nBackend over loopback HTTP, {os.cpu_count()} cores, {args.rounds} rounds, "
          f"GET /v1/orders on a book of {args.book}, POST as {args.users} users")
    print(f"{'route':<22} {'conc':>4} {'n':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7} "
          f"{'p50 ×hz':>8} {'req/s ×hz':>9} {'server ms':>9} {'×hz':>5} {'client ms':>9}")
    for r in routes:
        b = base[r["concurrency"]]
        r["p50_vs_healthz"] = round(r["p50_ms"] / b["p50_ms"], 2)
        r["req_per_s_vs_healthz"] = round(r["req_per_s"] / b["req_per_s"], 2)
        r["server_cpu_vs_healthz"] = round(r["server_cpu_ms_per_req"] / b["server_cpu_ms_per_req"], 2)
        print(f"{r['route']:<22} {r['concurrency']:>4} {r['requests']:>6} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['req_per_s']:>7.0f} {r['p50_vs_healthz']:>8.2f} "
              f"{r['req_per_s_vs_healthz']:>9.2f} {r['server_cpu_ms_per_req']:>9.3f} {r['server_cpu_vs_healthz']:>5.1f} "
              f"{r['client_cpu_ms_per_req']:>9.3f}")
    print("server / client ms: CPU per request of the backend process and of this client (same 2 cores); "
          f"the idle backend (replay feed, matching) uses {idle_cpu:.0%} of a core")
    feed["feed_p50_vs_post"] = round(feed["feed_p50_ms"] / feed["post_p50_ms"], 2)
    print(f"\nWrite → change feed, {feed['orders']} market orders one at a time, StreamLive on /v1/stream")
    print(f"{'':<24} {'p50 ms':>7} {'p95 ms':>7}")
    print(f"{'POST answered':<24} {feed['post_p50_ms']:>7.2f} {feed['post_p95_ms']:>7.2f}")
    print(f"{'added change arrived':<24} {feed['feed_p50_ms']:>7.2f} {feed['feed_p95_ms']:>7.2f}")
    print(f"change before the POST's answer: {feed['change_before_response']} of {feed['orders']}; "
          f"feed p50 / POST p50 ×{feed['feed_p50_vs_post']}")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average now {load[0]} / {load[1]} / {load[2]} (1/5/15 min)")
    return {"bench": "backend", "cores": os.cpu_count(), "load_average": load, "rounds": args.rounds,
            "book": args.book, "users": args.users, "server_env": SERVER_ENV, "baseline": BASELINE,
            "idle_server_cpu": round(idle_cpu, 3), "routes": routes, "feed": feed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run: a few seconds")
    parser.add_argument("--requests", type=int, help="GET and retry requests per route and concurrency")
    parser.add_argument("--orders", type=int, help="new orders per concurrency")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8],
                        help="requests in flight, comma-separated (default 1,8)")
    parser.add_argument("--rounds", type=int, help="rounds cycling through the routes")
    parser.add_argument("--book", type=int, default=50, help="orders the GET /v1/orders user holds")
    parser.add_argument("--users", type=int, default=8, help="writer users the new orders rotate over")
    parser.add_argument("--feed", type=int, help="orders timed through the change feed")
    args = parser.parse_args(argv)
    defaults = (300, 150, 2, 30) if args.quick else (2400, 900, 3, 200)
    for name, value in zip(("requests", "orders", "rounds", "feed"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)

    with tempfile.TemporaryDirectory(prefix="skeet-backend-bench-") as tmp:
        log = Path(tmp) / "backend.log"
        env = {"SKEET_DATA_DIR": tmp, "SKEET_DEV_KEY": DEV_KEY, "PYTHONUNBUFFERED": "1", **SERVER_ENV}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        server = start_backend(env, port, log)
        try:
            before = cpu_seconds(server.pid)
            time.sleep(1.0)
            idle_cpu = cpu_seconds(server.pid) - before
            routes = asyncio.run(bench_routes(url, server.pid, args))
            feed = asyncio.run(bench_feed(url, args.feed))
        except Exception:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop(server)
    summary = report(routes, feed, idle_cpu, args)
    print(f"({time.monotonic() - started:.0f} s)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
