"""App server CPU and memory per session for 1, 5, 10 and 20 concurrent sessions, against one session.

One hosted Skeet web app (`client.web.web_app`, the real `SkeetSession`, one shared `MarketHub`) is served
in a child process, its market `LoadFeed` (bench/ui_latency.py): `--symbols` × `--rate` trades a second,
every session watching all of them. Sessions are Flet web clients speaking Flet's own websocket protocol
(register, then receive every patch the server sends, as a tab's socket does) rather than Chromium tabs:
the server does the same work per session, and 20 Chromium renderers would swamp 2 cores and the figures.
For each count: open the sessions, wait until the server has them all, let them run `--warm` s, then take
the server's CPU time (user + system, /proc) over `--seconds` s and its RSS; close them and wait until the
server has ended them all. Per session: CPU share of one core divided by the count, RSS above the RSS
with no session divided by the count; that baseline is taken after one warm-up session has opened and
ended (the shared market open and warm, as after a hosted server's first trader), and after each count the
RSS once its sessions have ended is printed too (what the server keeps). Last line: JSON.

Count 0 is the shared market alone: a bench-only route in the server joins the hub with a listener that
does nothing, watching every symbol with the default rules (as a session's subscription does), so the feed,
the engine, the rules and the hub's routing run and no session does; the same route reports the objects the
market keeps reachable, by type, per symbol (`market_objects` in the JSON).

    python bench/sessions.py                 # the market alone, then 1, 5, 10, 20 sessions, 50 symbols × 20/s
    python bench/sessions.py --counts 0,1,5 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from client.launcher import free_port, wait_serving  # noqa: E402
from client.sessions import returning_allocator_env  # noqa: E402
from services.market.sources import FEED_BATCH_S  # noqa: E402

TARGET_CPU_PER_SESSION = 0.15  # issue 13: ≤ 15 % of a core per session
HEALTH = "/_skeet/health"
HOLD = "/_bench/market"  # POST: hold the shared market open with no session; DELETE: let it go; GET: objects
LIVE_AFTER_MESSAGES = 20  # the first screen, the market joined, then repaints of ticks
REGISTER = 1  # flet.messaging.protocol.MessageAction.REGISTER_CLIENT
CONTROL_EVENT = 3  # MessageAction.CONTROL_EVENT
INVOKE_METHOD = 5  # MessageAction.INVOKE_METHOD: the session asks for an answer after a repaint
# A message is b"\x00" + msgpack([action, body]): a 2-array (0x92), then the action as a positive fixint.
PATCH_HEAD = b"\x00\x92\x02"  # MessageAction.PATCH_CONTROL: a repaint is one (bench/patches.py)
INVOKE_HEAD = b"\x00\x92\x05"
STARVED_BELOW = 8.0  # repaints a second per session: under this the server did not get the CPU it asked for
ROW_PX = 46.0  # a watchlist row's height in Chromium at 1440×900


# -- the server (child process) ----------------------------------------------------------------------
def serve(port: int, workdir: Path, n_symbols: int, rate_hz: float, batch_s: float) -> None:
    import flet as ft
    from ui_latency import LoadFeed, QuietLive, symbols_for

    from client.app import SessionServices, make_main
    from client.hub import MarketHub
    from client.sessions import SessionRegistry
    from client.web import serve as serve_web
    from client.web import web_app
    from services.api import SkeetApi
    from services.signals import SignalEngine, default_rules

    symbols = symbols_for(n_symbols)

    def open_feed(source: str) -> tuple[LoadFeed, str]:
        # Trades come as the app's own feeds hand them over (FEED_BATCH_S, `--feed-batch-ms`); no trade log:
        # nothing here reads it, and at 1,000 trades/s it grew the server ~9 MB a minute.
        feed = LoadFeed(symbols, rate_hz=rate_hz, log_path=None, stop_path=workdir / "stop",
                        max_s=24 * 3600, batch_s=batch_s)
        return feed, feed.mode

    async def no_token() -> str:
        return "benchmark"

    registry = SessionRegistry()
    hub = MarketHub(open_feed, engine=lambda: SignalEngine(rules=default_rules()))

    async def build(_identity: Any) -> SessionServices:
        return SessionServices(
            market=hub, market_source="load",
            api=SkeetApi(base_url="http://127.0.0.1:9", token=no_token),  # never called here
            live=QuietLive(),
            modes={"orders": "Paper trading", "live": QuietLive.mode, "insights": "Local analyst",
                   "identity": "Local user"},
            backend_url="http://127.0.0.1:9")

    async def identify(_page: ft.Page) -> str:
        return "benchmark"

    main = make_main(build, identify, watchlist=symbols, timeframe="1m", theme="dark", registry=registry)
    app = web_app(main, registry=registry, hub=hub, assets_dir=str(ROOT / "assets"), cache_dir=workdir / "web-cache")
    add_hold_routes(app, hub, symbols)
    serve_web(app, host="127.0.0.1", port=port, on_ready=lambda url: print(f"serving {url}", flush=True))


class NoSession:
    """A `MarketListener` that takes every tick and does nothing: the market's own cost, no session's."""

    def on_tick(self, tick: Any, snapshot: dict[str, float], signals: list[Any]) -> None:
        return None

    def on_feed_error(self, error: Any) -> None:
        return None


def add_hold_routes(app: Any, hub: Any, symbols: list[str]) -> None:
    """The bench's own routes, ahead of Flet's catch-all mount: hold the market open without a session, and
    count what it keeps."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    held: list[Any] = []

    async def hold(request: Request) -> JSONResponse:
        if request.method == "POST" and not held:
            sub = await hub.join("load", NoSession())
            sub.set_rules(sub.default_rules)
            await sub.watch(symbols)
            held.append(sub)
        elif request.method == "DELETE" and held:
            await held.pop().aclose()
        elif request.method == "GET":
            return JSONResponse(market_objects(hub, len(symbols)))
        return JSONResponse({"held": bool(held)})

    app.router.routes.insert(0, Route(HOLD, hold, methods=["GET", "POST", "DELETE"]))


def market_objects(hub: Any, n_symbols: int) -> dict[str, Any]:
    """Every object reachable from the shared markets (their engine, overlay series and recent signals;
    not the feed, a bench fixture), by type, per symbol: floats and ints included, which the gc's own list
    (`/_skeet/health/memory`) leaves out. Functions are followed into their closure cells, not their module."""
    import gc
    import types

    roots: list[Any] = []
    for market in hub._markets.values():  # the bench's look inside: no product code reads this
        roots += [market.engine, market.indicator, market.recent]
    seen: set[int] = set()
    by_type: dict[str, int] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.CodeType, str)):
            continue
        seen.add(id(obj))
        name = type(obj).__qualname__
        by_type[name] = by_type.get(name, 0) + 1
        if isinstance(obj, types.FunctionType):
            stack += [c for c in (obj.__closure__ or ())] + list(obj.__defaults__ or ())
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        else:
            stack += gc.get_referents(obj)
    total = sum(by_type.values())
    top = dict(sorted(by_type.items(), key=lambda kv: -kv[1])[:12])
    return {"objects": total, "per_symbol": round(total / max(n_symbols, 1)),
            "per_symbol_by_type": {k: round(v / max(n_symbols, 1)) for k, v in top.items()}}


# -- the sessions (this process) -----------------------------------------------------------------------
def sized_list(node: Any) -> int | None:
    """The id of the control in a patch that asks for its laid-out size (the watchlist's list), if any."""
    if isinstance(node, dict):
        if node.get("on_size_change") is True and "_i" in node:
            return int(node["_i"])
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = sized_list(child)
            if found is not None:
                return found
    return None


async def tab(url: str, stop: asyncio.Event, received: list[int], live: asyncio.Semaphore, n_rows: int,
              frames: list[int]) -> None:
    """A Flet web client: registers a 1440×900 page, then takes every message until `stop`; releases
    `live` once its screen is up and repainting (its first screen and then a repaint after it). Like
    Flutter, it reports the laid-out height of the control that asks for it (the watchlist: `ROW_PX` a row,
    as Chromium lays it out at 1440×900), so the server knows which rows are on the 900 px screen, and it
    answers the calls the session makes after repaints (`get_capture` of an empty canvas: null) as soon as
    it has them, as a browser that keeps up does (`client.repaint`); `frames` counts the patch messages."""
    async with websockets.connect(url.replace("http", "ws", 1) + "/ws", max_size=None, ping_interval=None,
                                  open_timeout=120) as ws:
        page = {"route": "/", "width": 1440.0, "height": 900.0, "web": True, "platform": "linux",
                "media": {}, "window": {"width": 1440.0, "height": 900.0}}
        await ws.send(b"\x00" + msgpack.packb([REGISTER, {"session_id": None, "page_name": "", "page": page}]))
        slot = len(received)
        received.append(0)
        frames.append(0)
        messages = 0
        sized: int | None = None
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            received[slot] += len(message)
            messages += 1
            head = message[:3] if isinstance(message, bytes) else b""
            if head == PATCH_HEAD:
                frames[slot] += 1
            elif head == INVOKE_HEAD:
                _action, body = msgpack.unpackb(message[1:], raw=False, strict_map_key=False)
                await ws.send(b"\x00" + msgpack.packb([INVOKE_METHOD, {
                    "control_id": body["control_id"], "call_id": body["call_id"], "result": None,
                    "error": None if body["name"] == "get_capture" else "Unknown method"}]))
            if sized is None and isinstance(message, bytes) and message[:1] == b"\x00":
                sized = sized_list(msgpack.unpackb(message[1:], raw=False, strict_map_key=False))
                if sized is not None:  # what Flutter reports once it has laid the watchlist out
                    await ws.send(b"\x00" + msgpack.packb([CONTROL_EVENT, {
                        "target": sized, "name": "size_change", "data": {"w": 246.0, "h": ROW_PX * n_rows}}]))
            if messages == LIVE_AFTER_MESSAGES:
                live.release()


def health(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + HEALTH, timeout=30).json())


async def until(condition: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            h = await asyncio.to_thread(health, ARGS_URL[0])
        except httpx.HTTPError as exc:  # a server this busy answers late: ask again until the deadline
            h = {"error": str(exc)}
        else:
            if condition(h):
                return h
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout_s:.0f} s: {h}")
        await asyncio.sleep(0.5)


ARGS_URL: list[str] = []


async def measure_market(url: str, server: psutil.Process, warm_s: float, seconds: float) -> dict[str, Any]:
    """The shared market alone: held open by the bench's route, no session; its CPU over `seconds`."""
    idle_times, idle_started = server.cpu_times(), time.monotonic()
    await asyncio.sleep(seconds / 2)  # the server with no session and no tick flowing: its floor
    idle_after, idle_elapsed = server.cpu_times(), time.monotonic() - idle_started
    idle = (idle_after.user + idle_after.system - idle_times.user - idle_times.system) / idle_elapsed
    async with httpx.AsyncClient(timeout=180) as http:
        (await http.post(url + HOLD)).raise_for_status()
        await asyncio.sleep(warm_s)
        times, started = server.cpu_times(), time.monotonic()
        await asyncio.sleep(seconds)
        after, elapsed = server.cpu_times(), time.monotonic() - started
        objects = (await http.get(url + HOLD)).json()
        (await http.delete(url + HOLD)).raise_for_status()
    cpu = (after.user + after.system - times.user - times.system) / elapsed
    return {"sessions": 0, "cpu_cores": round(cpu, 3), "idle_cpu_cores": round(idle, 3),
            "rss_mb": round(server.memory_info().rss / 2**20, 1),
            "market_objects": objects}


async def measure(url: str, server: psutil.Process, count: int, warm_s: float, seconds: float,
                  n_symbols: int) -> dict[str, float]:
    stop, live = asyncio.Event(), asyncio.Semaphore(0)
    received: list[int] = []
    frames: list[int] = []
    tabs = [asyncio.create_task(tab(url, stop, received, live, n_symbols, frames)) for _ in range(count)]
    # Ready once the server runs every session and each one's screen is up and repainting.
    await until(lambda h: h["sessions"] >= count, 180, f"{count} sessions opening")
    for _ in range(count):
        await asyncio.wait_for(live.acquire(), 180)
    await asyncio.sleep(warm_s)  # the load runs; the measurement window follows
    times, started, bytes_before, frames_before = server.cpu_times(), time.monotonic(), sum(received), sum(frames)
    await asyncio.sleep(seconds)
    after, elapsed = server.cpu_times(), time.monotonic() - started
    rss = server.memory_info().rss
    traffic = (sum(received) - bytes_before) / elapsed
    repaints = (sum(frames) - frames_before) / elapsed / count
    stop.set()
    await asyncio.gather(*tabs, return_exceptions=True)
    await until(lambda h: h["sessions"] == 0 and h["session_tasks"] == 0, 60, "every session ending")
    cpu = (after.user + after.system - times.user - times.system) / elapsed
    return {"sessions": count, "cpu_cores": round(cpu, 3), "cpu_per_session": round(cpu / count, 3),
            "rss_mb": round(rss / 2**20, 1), "kb_per_s_per_session": round(traffic / count / 1024, 1),
            "repaints_per_s_per_session": round(repaints, 1)}


async def settled_rss_mb(server: psutil.Process, within_s: float = 15.0) -> float:
    """The server's RSS once it has stopped falling (ended sessions' pages go back within seconds)."""
    deadline, last = time.monotonic() + within_s, server.memory_info().rss
    while time.monotonic() < deadline:
        await asyncio.sleep(1)  # a sampling interval: the loop ends when RSS holds
        now = server.memory_info().rss
        if now >= last - 2**20:
            break
        last = now
    return round(last / 2**20, 1)


async def warm_up(url: str, n_symbols: int) -> None:
    """One session opened until it is live, then closed and ended: the shared market is open and warm (its
    feed, engine, the symbols' history), as after a hosted server's first trader. Memory per session is
    counted over this, not over a server that has never opened its market."""
    stop, live = asyncio.Event(), asyncio.Semaphore(0)
    one = asyncio.create_task(tab(url, stop, [], live, n_symbols, []))
    await asyncio.wait_for(live.acquire(), 180)
    stop.set()
    await one
    await until(lambda h: h["sessions"] == 0 and h["session_tasks"] == 0, 60, "the warm-up session ending")


MARKET: list[dict[str, Any]] = []  # the count-0 row, when asked for


async def run(args: argparse.Namespace, url: str, server: psutil.Process) -> list[dict[str, Any]]:
    await warm_up(url, args.symbols)
    idle_rss = await settled_rss_mb(server)  # no session, the market warm
    print(f"  no session (market warm): RSS {idle_rss:.0f} MB", flush=True)
    rows: list[dict[str, Any]] = []
    for count in args.counts:
        if count == 0:
            market = await measure_market(url, server, args.warm, args.seconds)
            objects = market["market_objects"]
            print(f"  0 sessions (the market alone): server {market['cpu_cores'] * 100:5.1f} % of a core, "
                  f"{market['cpu_cores'] * 1e6 / (args.symbols * args.rate):.0f} µs per trade "
                  f"(the server idle, no tick flowing: {market['idle_cpu_cores'] * 100:.1f} %); "
                  f"RSS {market['rss_mb']:.0f} MB; it keeps {objects['per_symbol']} objects per symbol "
                  f"({objects['per_symbol_by_type']})", flush=True)
            MARKET.append(market)
            continue
        row = await measure(url, server, count, args.warm, args.seconds, args.symbols)
        row["rss_per_session_mb"] = round((row["rss_mb"] - idle_rss) / count, 1)
        row["rss_after_mb"] = await settled_rss_mb(server)  # all of them ended: what the server keeps
        if MARKET:  # over the market alone: what a session itself costs
            row["cpu_per_session_over_market"] = round((row["cpu_cores"] - MARKET[0]["cpu_cores"]) / count, 3)
        if rows and count > rows[0]["sessions"]:  # what one more session costs, over the one-session run
            one = rows[0]
            row["extra_cpu_per_session"] = round((row["cpu_cores"] - one["cpu_cores"]) / (count - one["sessions"]), 3)
            row["extra_rss_per_session_mb"] = round((row["rss_mb"] - one["rss_mb"]) / (count - one["sessions"]), 1)
        rows.append(row)
        extra = (f"; each one more: {row['extra_cpu_per_session'] * 100:.1f} % CPU, "
                 f"{row['extra_rss_per_session_mb']:+.1f} MB" if "extra_cpu_per_session" in row else "")
        print(f"{count:>3} sessions: server {row['cpu_cores'] * 100:5.1f} % of a core "
              f"({row['cpu_per_session'] * 100:.1f} % per session), RSS {row['rss_mb']:.0f} MB "
              f"({row['rss_per_session_mb']:+.1f} MB per session over none){extra}; "
              f"{row['kb_per_s_per_session']:.0f} kB/s and {row['repaints_per_s_per_session']:.1f} repaints/s to each; "
              f"RSS once they ended {row['rss_after_mb']:.0f} MB"
              + (" (STARVED: fewer repaints than the app's 10/s, the CPU figure is low)"
                 if row["repaints_per_s_per_session"] < STARVED_BELOW else ""), flush=True)
    for row in rows:
        row["idle_rss_mb"] = idle_rss
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 5, 10, 20],
                        help="session counts; 0 is the shared market alone (no session)")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="trades per second per symbol")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per count")
    parser.add_argument("--warm", type=float, default=8.0, help="seconds of load before measuring")
    parser.add_argument("--feed-batch-ms", type=float, default=FEED_BATCH_S * 1000,
                        help="the feed hands over due trades this often when no session hurries it (the app's "
                             "feeds: FEED_BATCH_S; 5 until 2026-12-03, 4 in this bench until 2026-12-01)")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.workdir, args.symbols, args.rate, args.feed_batch_ms / 1000)
        return

    with tempfile.TemporaryDirectory(prefix="skeet-sessions-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # The server runs as `python -m client --web` does: on jemalloc where it is installed (client/sessions.py).
        env = {**os.environ, **returning_allocator_env(), "SKEET_DATA_DIR": str(workdir / "data"),
               "PYTHONPATH": str(ROOT)}
        with (workdir / "server.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--workdir", str(workdir),
                                        "--symbols", str(args.symbols), "--rate", str(args.rate),
                                        "--feed-batch-ms", str(args.feed_batch_ms)],
                                       cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_serving(url, process, timeout_s=120)
            ARGS_URL.append(url)
            load = os.getloadavg()[0]
            print(f"{args.symbols} symbols × {args.rate:g} trades/s (handed over every {args.feed_batch_ms:g} ms), "
                  f"{args.seconds:g} s per count, load average {load:.1f}", flush=True)
            rows = asyncio.run(run(args, url, psutil.Process(process.pid)))
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if process.returncode not in (0, -15, None):
            print((workdir / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    base = rows[0] if rows else {"cpu_per_session": 0, "rss_per_session_mb": 0}  # `--counts 0`: the market only
    worst = max((row["cpu_per_session"] for row in rows), default=0.0)
    print(json.dumps({
        "symbols": args.symbols, "rate_hz": args.rate, "feed_batch_ms": args.feed_batch_ms,
        "load_average": round(load, 1),
        "load_average_end": round(os.getloadavg()[0], 1), "rows": rows,
        "market_alone": MARKET[0] if MARKET else None,
        "market_us_per_trade": (round(MARKET[0]["cpu_cores"] * 1e6 / (args.symbols * args.rate), 1)
                                if MARKET else None),
        "cpu_per_session_vs_one": {str(r["sessions"]): round(r["cpu_per_session"] / base["cpu_per_session"], 2)
                                   for r in rows if base["cpu_per_session"]},
        "rss_per_session_vs_one": {str(r["sessions"]): round(r["rss_per_session_mb"] / base["rss_per_session_mb"], 2)
                                   for r in rows if base["rss_per_session_mb"]},
        # RSS with no session left after each count, over RSS with no session before the first (market warm)
        "rss_after_vs_idle": {str(r["sessions"]): round(r["rss_after_mb"] / r["idle_rss_mb"], 3) for r in rows},
        "worst_cpu_per_session": worst, "target_cpu_per_session": TARGET_CPU_PER_SESSION,
        "meets_target": bool(rows) and worst <= TARGET_CPU_PER_SESSION,
        # Counts whose sessions got fewer repaints than the app makes: their CPU is what the server got, not
        # what it needed, and `meets_target` says nothing about them.
        "starved_counts": [r["sessions"] for r in rows if r["repaints_per_s_per_session"] < STARVED_BELOW],
    }))


if __name__ == "__main__":
    main()
