"""Benchmark: tick-to-screen latency of Skeet's web UI under load, against named baselines in one run.

    python bench/ui_latency.py                 # 50 symbols × 20 trades/s, 6 s measured per scenario (~60 s)
    python bench/ui_latency.py --seconds 5     # quicker
    python bench/ui_latency.py --only skeet    # one scenario

Four scenarios are served by one Flet web app (a child process of this script, on a free loopback port,
no CDN) and opened one after the other in Debian's headless Chromium (Playwright; never a downloaded
browser), so they do not compete for the machine's cores:

- `floor`: one price Text updated every 50 ms (`control.update()`), the least a screen update costs here.
- `naive`: the real watchlist rows (`views.watchlist.WatchlistRow`) for 50 symbols, `row.update()` on every
  tick, no coalescing.
- `coalesced`: the same 50 rows, the latest trade per row kept and the watchlist panel flushed every
  50 ms (`WatchlistView.render` + `control.update()` on that panel only): the design target.
- `skeet`: the real app — `client.app.SkeetSession` with the real `SignalEngine(default_rules())`, fed by
  `LoadFeed` (below) at the app's own feed pacing (`FEED_BATCH_S`, 25 ms, and hurried by each repaint: `PacedFeed`; the baselines ~4 ms), repainting as `client.repaint.RepaintScheduler` decides (a change wakes it; at most one
  repaint per gap, the chart's candle at most every `SLOW_GAP_S`, none while the browser's answer to an
  earlier repaint is late). Printed with it: how many of its repaints the browser answered, how fast.

`LoadFeed` is a synthetic `MarketFeed`: N symbols × R trades a second, evenly spread. Each trade's price
encodes its sequence number (symbol i's k-th trade is `100 + 10·i + 0.01·(k + 1)`), so the page can tell
which trade it is showing. The page polls the watchlist rows' semantics labels
(`[flt-semantics-identifier="quote-SYMBOL"]`) on every `requestAnimationFrame` and records when each
price first appears, for the rows on the screen (their box inside the 1440×900 viewport: ~17 of 50 in the
app, ~19 in the baselines' own list); a row scrolled out of view is not counted in any scenario (the app
does not repaint it, issue 13). A trade's latency is from its scheduled arrival time to the first frame showing it
or a later trade of the same symbol, so trades overwritten before a repaint are counted too (their
latency is the wait for the frame that superseded them). A trade not on screen when the recording stops
(1 s after the measured window) is "unseen": it enters the percentiles with the time it had waited
by then, a lower bound, and the table marks such percentiles with ">=". The page's times
(`performance.timeOrigin + performance.now()`, a monotonic clock) are put on the server's `time.time()` by
two clock readings around each recording (offset and drift between them; the wall clock here was once seen
slewed 5 ms a second away from the monotonic one, which had put the floor's p50 at 0 ms).

Where the time goes (`coalesced` and `skeet`): the app server logs each repaint's (flush's) start and end, and
each measured trade's latency is cut into feed lag (scheduled → yielded: the server's event loop behind),
wait (yielded → the start of the first repaint after it), paint (that repaint's start → end: render, Flet's
diff, queueing the messages) and screen (→ the frame showing it: the websocket, the browser's decode and
Flutter's frame). Printed as the median of each part, and their means over the slowest 10% of trades.

Also measured: animation frames per second in the page (requestAnimationFrame rate), frames per second
that changed a price, websocket bytes and messages per second from the server, CPU of the renderer,
the GPU process and the app server (from /proc), and the renderer's own main-thread busy time (CDP
`Performance.getMetrics` TaskDuration). Ratios are printed against the `floor`, `naive` and `coalesced` baselines; the
last line printed is one JSON object with the figures. The API (`SkeetApi` at an address nothing
listens on) is never called, and `QuietLive` is a live-state listener that reports "connected" and
yields no order changes: neither is part of the tick path being measured.

Measuring aids (their figures are not the app's): `--skeet-hide PANEL` hides a desk panel (or the chart's
`chart.plot`, `chart.header`, `chart.live`) in the skeet scenario, to see what the browser's part costs without
it; `--skeet-unpaced` repaints the skeet scenario by the gap alone (not waiting for late answers from the
browser); `--skeet-set NAME=VALUE` sets one of its `RepaintScheduler`'s numbers (`min_gap_s`, `backlog_factor`, ...); `--link KB_PER_S:DELAY_MS` puts the page's socket through a slow link once the page is up
(`bench/slow_link.py`: a loopback proxy; what the link cannot carry yet waits in it), to see what pacing by the
client's answers does for a phone on a slow network; `--trace DIR` writes a Chromium trace of each measured window (the skwasm worker's `HandlePostMessage` events
are its frames' raster, mostly waiting on SwiftShader in the GPU process; the tracing itself slows the renderer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.launcher import free_port  # noqa: E402
from services.live import Change, ConnectionStatus  # noqa: E402
from services.market import TIMEFRAME_MS, Candle, Tick  # noqa: E402
from services.market.pacing import HandOvers  # noqa: E402
from services.market.sources import FEED_BATCH_S  # noqa: E402

CHROMIUM = os.environ.get("SKEET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCENARIOS = ("floor", "naive", "coalesced", "skeet")
COALESCE_S = 0.05
PRICE_STEP = 0.01
TARGET_P95_MS = 250.0


def base_price(index: int) -> float:
    return 100.0 + 10.0 * index


def trade_price(index: int, seq: int) -> float:
    """The price of symbol `index`'s trade number `seq` (0-based): it encodes the sequence number."""
    return round(base_price(index) + PRICE_STEP * (seq + 1), 2)


def symbols_for(count: int) -> list[str]:
    return [f"L{i:02d}/USDT" for i in range(count)]


# -- the load ----------------------------------------------------------------------------------------
class LoadFeed:
    """A synthetic `MarketFeed`: `len(symbols)` × `rate_hz` trades a second, evenly spread in time.

    Trades carry their scheduled arrival time as `timestamp_ms`; when the app's event loop falls behind,
    trades are yielded late but keep that time, so queueing inside the app counts as latency. The feed
    stops when `stop_path` appears (or after `max_s`) and writes every trade it yielded to `log_path`.
    """

    def __init__(self, symbols: list[str], *, rate_hz: float, log_path: Path | None, stop_path: Path,
                 max_s: float = 90.0, batch_s: float = 0.004) -> None:
        self.symbols = list(symbols)
        self._hand_overs = HandOvers()  # as the app's paced feeds: a session about to repaint hurries it
        self._batch_s = batch_s  # the least it sleeps: trades due meanwhile come together (bench/sessions.py)
        self._rate_hz = rate_hz
        self._log_path = log_path
        self._stop_path = stop_path
        self._max_s = max_s

    @property
    def mode(self) -> str:
        return f"Load test · {len(self.symbols)} × {self._rate_hz:g}/s"

    async def markets(self) -> dict[str, dict[str, Any]]:
        return {s: {"id": s.replace("/", ""), "symbol": s, "base": s.split("/")[0], "quote": "USDT",
                    "active": True, "precision": {"price": PRICE_STEP, "amount": 0.0001},
                    "limits": {"amount": {"min": 0.0001}}} for s in self.symbols}

    async def candles(self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None,
                      limit: int = 200) -> list[Candle]:
        price = base_price(self.symbols.index(symbol))
        bar_ms = TIMEFRAME_MS[timeframe]
        now_bar = int(time.time() * 1000) // bar_ms * bar_ms
        return [Candle(now_bar - (limit - 1 - i) * bar_ms, price, price, price, price, 1.0) for i in range(limit)]

    async def ticker(self, symbol: str) -> dict[str, Any]:
        price = base_price(self.symbols.index(symbol))
        return {"symbol": symbol, "open": price, "last": price}

    async def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        index = {s: self.symbols.index(s) for s in symbols}
        order = list(symbols)
        per_second = self._rate_hz * len(order)
        log: list[tuple[int, int, float, float]] = []  # symbol index, seq, scheduled at, yielded at (s)
        seq = dict.fromkeys(order, 0)
        start = time.time() + 0.05
        n = 0
        try:
            with self._hand_overs.stream() as pause:
                while True:
                    now = time.time()
                    if now - start > self._max_s or (n % 50 == 0 and self._stop_path.exists()):
                        return
                    due = start + n / per_second
                    if due > now:
                        await pause(max(due - now, self._batch_s))  # batches: 1,000 sleeps/s would cost more
                        continue
                    symbol = order[n % len(order)]
                    k = seq[symbol]
                    seq[symbol] = k + 1
                    n += 1
                    if self._log_path is not None:  # None: no log (bench/sessions.py; it grew ~9 MB a minute)
                        log.append((index[symbol], k, due, now))
                    yield Tick(symbol, int(due * 1000), trade_price(index[symbol], k), 0.01, "buy")
        finally:
            if self._log_path is not None:
                partial = self._log_path.with_suffix(".partial")  # renamed when complete: the reader never
                partial.write_text(json.dumps({"start": start, "rate_hz": self._rate_hz, "trades": log}))
                partial.replace(self._log_path)  # sees half a file

    def hurry(self) -> asyncio.Future[Any] | None:
        """`PacedFeed`: what is due now, handed over at once (the baselines never ask)."""
        return self._hand_overs.hurry()

    async def aclose(self) -> None:
        return None


class QuietLive:
    """A `LiveState` that is connected and never has an order change: the benchmark places no orders."""

    mode = "Local state · quiet (benchmark)"
    status: ConnectionStatus = "connected"

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    def on_status(self, callback: Callable[[ConnectionStatus], None]) -> None:
        callback("connected")

    async def changes(self) -> AsyncIterator[Change]:
        await self._closed.wait()
        return
        yield  # an async generator that yields nothing until closed

    async def aclose(self) -> None:
        self._closed.set()


# -- the web app under test (child process) ------------------------------------------------------------
class RepaintLog:
    """Each repaint's (started, ended) times, written to `<name>-repaints.json` once `<name>.stop` appears;
    with the session's scheduler, how its client answered (`<name>-answers.json`)."""

    def __init__(self, workdir: Path, name: str, scheduler: Any = None) -> None:
        self._path = workdir / f"{name}-repaints.json"
        self._answers = workdir / f"{name}-answers.json"
        self._stop = workdir / f"{name}.stop"
        self._times: list[tuple[float, float]] = []
        self._scheduler = scheduler

    def painted(self, started: float, ended: float) -> None:
        self._times.append((started, ended))

    async def keep(self) -> None:
        """Write the log when the stop file appears (a task of the scenario)."""
        while not self._stop.exists():  # noqa: ASYNC110  (a file another process makes: nothing to await)
            await asyncio.sleep(0.05)
        if self._scheduler is not None:  # first: the measurement reads it once the repaints' file is there
            r = self._scheduler
            self._answers.write_text(json.dumps({"repaints": r.repaints, "answered": r.answered,
                                                 "unanswered": r.unanswered, "answer_ms": r.answer_s * 1000,
                                                 "backlog_ms": r.backlog_s * 1000,
                                                 "cost_ms": r._cost_s * 1000, "gap_ms": r.gap_s * 1000}))  # noqa: SLF001
        partial = self._path.with_suffix(".partial")
        partial.write_text(json.dumps(self._times))
        partial.replace(self._path)


HIDEABLE = ("chart", "chart.header", "chart.plot", "chart.live", "book", "trades", "ticket", "orders", "positions",
            "account", "signals", "badge")


def serve(port: int, workdir: Path, n_symbols: int, rate_hz: float, hide: tuple[str, ...] = (),
          unpaced: bool = False, tuning: tuple[str, ...] = ()) -> None:
    import flet as ft

    from client.app import SessionServices, SkeetSession
    from client.state import AppState
    from services.api import SkeetApi
    from services.signals import SignalEngine, default_rules
    from views.common import Intents
    from views.watchlist import WatchlistRow, WatchlistView

    async def no_token() -> str:
        return "benchmark"

    def feed_for(name: str, symbols: list[str], batch_s: float = 0.004) -> LoadFeed:
        return LoadFeed(symbols, rate_hz=rate_hz, log_path=workdir / f"{name}.json",
                        stop_path=workdir / f"{name}.stop", batch_s=batch_s)

    async def floor(page: ft.Page) -> None:
        """One Text, one update per trade (every 50 ms at 20/s)."""
        symbol = "L00/USDT"
        feed = feed_for("floor", [symbol])
        price = ft.Text("—", size=14, font_family="monospace")
        label = ft.Semantics(identifier=f"quote-{symbol}", label=f"{symbol} {base_price(0):.2f}, +0.00 percent",
                             content=price)
        page.add(label)
        async for tick in feed.ticks([symbol]):
            price.value = f"{tick.price:,.2f}"
            label.label = f"{symbol} {price.value}, +0.00 percent"
            label.update()

    async def watchlist_page(page: ft.Page, scenario: str) -> tuple[list[str], Any, AppState, WatchlistView]:
        """The real watchlist panel for `n_symbols`, alone on the page, fed by the scenario's feed."""
        symbols = symbols_for(n_symbols)
        feed = feed_for(scenario, symbols)
        state = AppState(watchlist=symbols, selected=symbols[0])
        state.set_markets(await feed.markets())
        watchlist = WatchlistView(Intents())
        watchlist.render(state)
        for row in watchlist.rows.values():  # the baselines as they were written: a patch of the panel
            object.__setattr__(row.control, "_isolated", False)  # reaches every row (the app's rows are isolated)
        page.padding = 0
        page.add(ft.Container(watchlist.control, width=280, expand=True))
        page.update()
        return symbols, feed, state, watchlist

    async def naive(page: ft.Page) -> None:
        """The real watchlist rows; every trade updates its row at once (no coalescing)."""
        symbols, feed, state, watchlist = await watchlist_page(page, "naive")
        async for tick in feed.ticks(symbols):
            state.apply_tick(tick)
            row: WatchlistRow = watchlist.rows[tick.symbol]
            row.render(state)
            row.control.update()

    async def coalesced(page: ft.Page) -> None:
        """The same rows, coalesced: keep the latest trade per row, flush the panel every 50 ms."""
        symbols, feed, state, watchlist = await watchlist_page(page, "coalesced")

        log = RepaintLog(workdir, "coalesced")

        async def flush() -> None:
            painted = state.version
            while True:
                await asyncio.sleep(COALESCE_S)
                if state.version != painted:
                    painted = state.version
                    started = time.time()
                    watchlist.render(state)
                    watchlist.control.update()
                    log.painted(started, time.time())

        flusher = asyncio.create_task(flush())
        keeper = asyncio.create_task(log.keep())
        try:
            async for tick in feed.ticks(symbols):
                state.apply_tick(tick)
        finally:
            flusher.cancel()
            await keeper

    async def skeet(page: ft.Page) -> None:
        symbols = symbols_for(n_symbols)
        # The app's own feed pacing (its feeds hand trades over every FEED_BATCH_S, and at once when a session
        # is about to repaint), so the wait in the feed counts against skeet; the baselines get theirs every ~4 ms.
        feed = feed_for("skeet", symbols, batch_s=FEED_BATCH_S)
        services = SessionServices(
            feed=feed, engine=SignalEngine(rules=default_rules()),
            api=SkeetApi(base_url="http://127.0.0.1:9", token=no_token),  # never called here
            live=QuietLive(),
            modes={"market": feed.mode, "orders": "Paper trading", "live": QuietLive.mode,
                   "insights": "Local analyst", "identity": "Local user"},
            backend_url="http://127.0.0.1:9",
        )
        session = SkeetSession(page, services, watchlist=symbols, timeframe="1m", theme="dark")
        log = RepaintLog(workdir, "skeet", session.repainter)
        session.repainter.on_painted = log.painted
        if unpaced:  # a measuring aid (--skeet-unpaced): repaints paced by the gap alone, not by the client
            session.repainter.ack = None
        for setting in tuning:  # a measuring aid (--skeet-set): one of the scheduler's knobs, e.g. min_gap_s=0.05
            name, _, value = setting.partition("=")
            if not isinstance(getattr(session.repainter, name, None), float):
                raise SystemExit(f"--skeet-set: {name!r} is not one of the repaint scheduler's numbers")
            setattr(session.repainter, name, float(value))
        await session.start()
        if hide:  # a measuring aid (--skeet-hide): what the browser's part costs without these panels
            for name in hide:
                view, _, part = name.partition(".")
                control = getattr(getattr(session.shell, view), part or "control")
                control.visible = False
            page.update()
        await log.keep()

    scenarios = {"floor": floor, "naive": naive, "coalesced": coalesced, "skeet": skeet}

    async def main(page: ft.Page) -> None:
        name = (page.route or "/").strip("/") or "skeet"
        await scenarios[name](page)

    gc.freeze()  # as the hosted app's server does (client.web.serve): imports out of the collector's sight
    ft.run(main, view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port, no_cdn=True)


# -- the measurement (this process) --------------------------------------------------------------------
RECORDER_JS = r"""
([symbols]) => {
  const now = () => performance.timeOrigin + performance.now();
  const nodes = symbols.map(s => document.querySelector(`[flt-semantics-identifier="quote-${s}"]`));
  const label = el => el ? (el.getAttribute('aria-label') || el.textContent || '') : '';
  const priceOf = text => { const m = / ([0-9][0-9,]*\.[0-9]+),/.exec(text); return m ? m[1].replace(/,/g, '') : null; };
  const last = symbols.map(() => null);
  const rec = window.__skeetRec = {shown: [], frames: 0, changedFrames: 0, start: now(), stop: false,
                                   visible: nodes.map(n => !!n)};
  const frame = () => {
    if (rec.stop) return;
    const t = now();
    rec.frames++;
    let changed = false;
    for (let i = 0; i < symbols.length; i++) {
      let el = nodes[i];
      if (!el || !el.isConnected) {
        el = nodes[i] = document.querySelector(`[flt-semantics-identifier="quote-${symbols[i]}"]`);
        if (!el) continue;
      }
      const box = el.getBoundingClientRect();  // a row off the screen shows nothing to anyone: not counted
      if (box.height <= 0 || box.bottom <= 0 || box.top >= window.innerHeight) continue;
      const p = priceOf(label(el));
      if (p !== null && p !== last[i]) { last[i] = p; rec.shown.push([i, p, t]); changed = true; }
    }
    if (changed) rec.changedFrames++;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}
"""



def clock_pair(page: Any, tries: int = 5) -> tuple[float, float]:
    """(the page's clock in ms, this machine's `time.time()` in s) at one instant: of a few reads, the one with
    the shortest round trip, taken at its middle."""
    best: tuple[float, float, float] | None = None
    for _ in range(tries):
        before = time.time()
        browser_ms = float(page.evaluate("performance.timeOrigin + performance.now()"))
        after = time.time()
        if best is None or after - before < best[2]:
            best = (browser_ms, (before + after) / 2, after - before)
    assert best is not None
    return best[0], best[1]


def clock_offset(pair: tuple[float, float]) -> float:
    """Seconds to add to the page's clock for this machine's `time.time()`, at a `clock_pair`."""
    browser_ms, server_s = pair
    return server_s - browser_ms / 1000


def to_server_clock(first: tuple[float, float], last: tuple[float, float]) -> Callable[[float], float]:
    """The page's ms as this machine's `time.time()` seconds, from two pairs taken around the recording. The
    two clocks need not agree: the page's runs on a monotonic clock from its start, the wall clock may be
    slewed meanwhile (seen here: 5 ms a second apart, so a 10 s recording would be 50 ms off by its end)."""
    (b0, _), (b1, _) = first, last
    off0, off1 = clock_offset(first), clock_offset(last)

    def convert(browser_ms: float) -> float:
        share = (browser_ms - b0) / (b1 - b0) if b1 != b0 else 0.0
        return browser_ms / 1000 + off0 + (off1 - off0) * share
    return convert


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def chromium_processes() -> dict[str, list[int]]:
    """This script's Chromium processes by role: renderer, gpu, other."""
    roles: dict[str, list[int]] = {"renderer": [], "gpu": [], "other": []}
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            # Chromium's children rewrite their command line into one string (argv[0] with spaces).
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "chrom" not in cmd.split(" ", 1)[0]:
                continue
            kind = cmd.split("--type=", 1)[1].split(" ", 1)[0] if "--type=" in cmd else "browser"
            roles["renderer" if kind == "renderer" else "gpu" if kind == "gpu-process" else "other"].append(pid)
    return roles


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def latencies(trades: list[list[float]], shown: list[list[Any]], window: tuple[float, float],
              stopped: float) -> tuple[list[float], int, int, set[int]]:
    """Per trade scheduled inside `window`: ms until the first frame showing it or a later trade of its
    symbol; for a trade still unseen at `stopped`, the wait until then (a lower bound). Returns (sorted
    latencies, trades counted, trades unseen, symbols seen on screen)."""
    shown_by_symbol: dict[int, tuple[list[int], list[float]]] = {}
    for i, price, t in shown:
        seq = round((float(price) - base_price(i)) / PRICE_STEP) - 1
        if seq < 0:
            continue
        seqs, times = shown_by_symbol.setdefault(i, ([], []))
        if seqs and seq <= seqs[-1]:
            continue  # prices only rise: an older value coming back is not a new frame for a trade
        seqs.append(seq)
        times.append(t / 1000.0)
    lat: list[float] = []
    counted = lost = 0
    start, end = window
    for index, trade_seq, due, _yielded in trades:
        if not (start <= due <= end) or int(index) not in shown_by_symbol:
            continue
        counted += 1
        seqs, times = shown_by_symbol[int(index)]
        j = bisect_left(seqs, int(trade_seq))
        if j == len(seqs):
            lost += 1
            lat.append((stopped - due) * 1000.0)
            continue
        lat.append(max(0.0, times[j] - due) * 1000.0)
    lat.sort()
    return lat, counted, lost, set(shown_by_symbol)


TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "blink",
                    "gpu", "cc", "viz", "toplevel"]


def measure(browser: Any, url: str, name: str, symbols: list[str], workdir: Path, server_pid: int,
            warm_s: float, seconds: float, trace_dir: Path | None = None, link: Any = None,
            link_spec: tuple[float, float] | None = None) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    ws_bytes = [0, 0]  # bytes, messages received from the server

    def on_websocket(ws: Any) -> None:
        def received(payload: Any) -> None:
            ws_bytes[0] += len(payload)
            ws_bytes[1] += 1
        ws.on("framereceived", received)

    page.on("websocket", on_websocket)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(f"{url}/{name}")
    page.wait_for_selector("flt-semantics-placeholder", state="attached", timeout=90_000)
    page.evaluate("document.querySelector('flt-semantics-placeholder').click()")
    page.locator(f'[flt-semantics-identifier="quote-{symbols[0]}"]').wait_for(state="attached", timeout=90_000)
    page.wait_for_function(  # the first trade reached the screen: the load is running
        """([s, base]) => { const el = document.querySelector(`[flt-semantics-identifier="quote-${s}"]`);
             const t = el ? (el.getAttribute('aria-label') || el.textContent || '') : '';
             const m = / ([0-9][0-9,]*\\.[0-9]+),/.exec(t); return m && parseFloat(m[1].replace(/,/g,'')) > base; }""",
        arg=[symbols[0], base_price(0)], timeout=90_000, polling=100)
    if link is not None and link_spec is not None:  # the page is up: from now on its socket is a slow link
        link.throttle(*link_spec)
    time.sleep(warm_s)

    procs = chromium_processes()
    cpu_before = {role: sum(cpu_seconds(p) for p in pids) for role, pids in procs.items()}
    server_before = cpu_seconds(server_pid)
    task_before = metric(cdp, "TaskDuration")
    ws_before = list(ws_bytes)
    if trace_dir is not None:  # the tracing itself costs the renderer: a look at where time goes, not a figure
        trace_dir.mkdir(parents=True, exist_ok=True)
        browser.start_tracing(page=page, path=str(trace_dir / f"{name}.json"), categories=TRACE_CATEGORIES)
    clock_first = clock_pair(page)
    page.evaluate(RECORDER_JS, [symbols])
    t0 = time.time()
    time.sleep(seconds)
    elapsed = time.time() - t0
    if trace_dir is not None:
        browser.stop_tracing()
    cpu = {role: (sum(cpu_seconds(p) for p in pids) - cpu_before[role]) / elapsed for role, pids in procs.items()}
    server_cpu = (cpu_seconds(server_pid) - server_before) / elapsed
    task = (metric(cdp, "TaskDuration") - task_before) / elapsed
    ws = [(ws_bytes[0] - ws_before[0]) / elapsed, (ws_bytes[1] - ws_before[1]) / elapsed]
    time.sleep(1.0)  # frames showing the last measured trades
    stopped = time.time()
    rec = page.evaluate("() => { window.__skeetRec.stop = true; return window.__skeetRec; }")
    clock_last = clock_pair(page)
    server_s = to_server_clock(clock_first, clock_last)
    rec["shown"] = [[i, price, server_s(t) * 1000] for i, price, t in rec["shown"]]
    offsets = clock_offset(clock_first), clock_offset(clock_last)
    clock = {"offset_ms": round(offsets[0] * 1000, 1),
             "drift_ms_per_s": round((offsets[1] - offsets[0]) / max(1e-9, clock_last[1] - clock_first[1]) * 1000, 2)}
    log_path = workdir / f"{name}.json"
    # A stream the app cancelled and restarted (the shared market restarts it when its symbol set changes)
    # has left its own, older log: only the one written at this stop is the stream being measured.
    log_path.unlink(missing_ok=True)
    (workdir / f"{name}.stop").touch()
    deadline = time.monotonic() + 60  # a swamped server (load 20+) takes a while to see the stop
    while not log_path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not log_path.exists():
        raise RuntimeError(f"the {name} feed wrote no trade log within 60 s of its stop: the app server is stuck")
    log = json.loads(log_path.read_text())
    repaints_path = workdir / f"{name}-repaints.json"
    while name in ("coalesced", "skeet") and not repaints_path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    repaints = json.loads(repaints_path.read_text()) if repaints_path.exists() else []
    answers_path = workdir / f"{name}-answers.json"
    answers = json.loads(answers_path.read_text()) if answers_path.exists() else {}
    context.close()
    queued = None
    if link is not None and link_spec is not None:
        queued = round(link.queued_max / 1024, 1)
        link.throttle(None)

    lat, counted, lost, seen = latencies(log["trades"], rec["shown"], (t0 + 0.2, t0 + elapsed), stopped)
    parts = breakdown(log["trades"], rec["shown"], repaints, (t0 + 0.2, t0 + elapsed)) if repaints else {}
    rec_s = time.time() - server_s(rec["start"])
    return {
        "scenario": name, "symbols": len(symbols), "symbols_on_screen": len(seen),
        "trades_per_s": round(len(log["trades"]) / max(1e-9, log["trades"][-1][2] - log["start"]), 1)
        if log["trades"] else 0.0,
        "trades_measured": counted, "trades_unseen": lost,
        "p50_ms": round(percentile(lat, 0.50), 1), "p95_ms": round(percentile(lat, 0.95), 1),
        "p99_ms": round(percentile(lat, 0.99), 1), "max_ms": round(lat[-1], 1) if lat else math.nan,
        "raf_fps": round(rec["frames"] / rec_s, 1), "changed_fps": round(rec["changedFrames"] / rec_s, 1),
        "ws_kb_per_s": round(ws[0] / 1024, 1), "ws_msgs_per_s": round(ws[1], 1),
        "renderer_cpu": round(cpu["renderer"], 2), "gpu_cpu": round(cpu["gpu"], 2),
        "renderer_busy": round(task, 2), "server_cpu": round(server_cpu, 2),
        "repaints_per_s": round(sum(1 for a, _b in repaints if t0 <= a <= t0 + elapsed) / elapsed, 1),
        **parts, **({"client_answers": answers} if answers else {}),
        **({"link_queued_max_kb": queued} if queued is not None else {}),
        "clock": clock,
    }


PARTS = ("feed", "wait", "paint", "screen")


def breakdown(trades: list[list[float]], shown: list[list[Any]], repaints: list[list[float]],
              window: tuple[float, float]) -> dict[str, Any]:
    """Each seen trade's latency cut at the server's repaint times (see the module's docstring): the median
    of each part in ms, and their means over the slowest 10% of trades."""
    best: dict[int, tuple[list[int], list[float]]] = {}
    for i, price, t in shown:
        seq = round((float(price) - base_price(i)) / PRICE_STEP) - 1
        seqs, times = best.setdefault(i, ([], []))
        if seq >= 0 and (not seqs or seq > seqs[-1]):
            seqs.append(seq)
            times.append(t / 1000.0)
    starts = [a for a, _b in repaints]
    rows: list[tuple[float, ...]] = []
    for index, trade_seq, due, yielded in trades:
        if not (window[0] <= due <= window[1]) or int(index) not in best:
            continue
        seqs, times = best[int(index)]
        j = bisect_left(seqs, int(trade_seq))
        r = bisect_left(starts, yielded)
        if j == len(seqs) or r == len(starts):
            continue
        start, end = repaints[r]
        screen_at = max(times[j], end)
        rows.append(((times[j] - due) * 1000, (yielded - due) * 1000, (start - yielded) * 1000,
                     (end - start) * 1000, (screen_at - end) * 1000))
    if not rows:
        return {}
    rows.sort()
    slow = rows[int(len(rows) * 0.9):]
    out: dict[str, Any] = {}
    for k, part in enumerate(PARTS, start=1):
        column = sorted(row[k] for row in rows)
        out[f"{part}_p50_ms"] = round(column[len(column) // 2], 1)
        out[f"{part}_slow_ms"] = round(sum(row[k] for row in slow) / len(slow), 1)
    return out


def metric(cdp: Any, name: str) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next((m["value"] for m in metrics if m["name"] == name), math.nan)


def bound(result: dict[str, Any], key: str) -> str:
    """A percentile as printed: ">=" when unseen trades (lower bounds) could be in it."""
    return f"{'>=' if result['trades_unseen'] else ''}{result[key]}"


def report(results: list[dict[str, Any]], n_symbols: int, rate_hz: float) -> dict[str, Any]:
    print(f"\nTick → screen, {n_symbols} symbols × {rate_hz:g} trades/s, headless Chromium 1440×900, "
          f"{os.cpu_count()} cores")
    head = (f"{'scenario':<8} {'on screen':>9} {'trades':>7} {'unseen':>6} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'p99 ms':>7} {'rAF fps':>8} {'chg fps':>8} {'ws KB/s':>8} {'msg/s':>6} {'renderer':>8} "
            f"{'busy':>5} {'gpu':>5} {'server':>6}")
    print(head)
    for r in results:
        print(f"{r['scenario']:<8} {r['symbols_on_screen']:>4}/{r['symbols']:<4} {r['trades_measured']:>7} "
              f"{r['trades_unseen']:>6} {bound(r, 'p50_ms'):>7} {bound(r, 'p95_ms'):>7} {bound(r, 'p99_ms'):>7} "
              f"{r['raf_fps']:>8} "
              f"{r['changed_fps']:>8} {r['ws_kb_per_s']:>8} {r['ws_msgs_per_s']:>6} "
              f"{r['renderer_cpu']:>7.0%} {r['renderer_busy']:>5.0%} {r['gpu_cpu']:>5.0%} {r['server_cpu']:>6.0%}")
    for r in results:
        if "wait_p50_ms" in r:
            print(f"{r['scenario']:<9} {r['repaints_per_s']:>5} repaints/s; median ms " + ", ".join(
                f"{p} {r[p + '_p50_ms']}" for p in PARTS) + "; slowest 10% mean ms " + ", ".join(
                f"{p} {r[p + '_slow_ms']}" for p in PARTS))
        if "client_answers" in r:  # what paces the session's repaints (client.repaint: `ack`)
            a = r["client_answers"]
            print(f"{r['scenario']:<9} client answers {a['answered']} of {a['repaints']} repaints "
                  f"({a['unanswered']} went ahead unanswered), smoothed answer {a['answer_ms']:.1f} ms "
                  f"(backlog {a.get('backlog_ms', 0):.1f}); "
                  f"a repaint's cost {a['cost_ms']:.2f} ms (smoothed), gap {a['gap_ms']:.1f} ms at the end")
        if "link_queued_max_kb" in r:  # --link: what waited for the slow link at its deepest
            print(f"{r['scenario']:<9} through the slow link: at most {r['link_queued_max_kb']} KB waiting for it")
    drifts = [r["clock"]["drift_ms_per_s"] for r in results if "clock" in r]
    if drifts:
        print(f"the page's clock against the server's: drift {min(drifts)} to {max(drifts)} ms a second (corrected)")
    by = {r["scenario"]: r for r in results}
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average now {load[0]} / {load[1]} / {load[2]} (1/5/15 min): other work on the machine "
          "inflates every figure alike")
    summary: dict[str, Any] = {"bench": "ui_latency", "symbols": n_symbols, "rate_hz": rate_hz,
                               "target_p95_ms": TARGET_P95_MS, "cores": os.cpu_count(), "load_average": load,
                               "scenarios": results}
    if "skeet" in by:
        skeet = by["skeet"]
        for base in ("floor", "naive", "coalesced"):
            if base in by:
                ratios = {k: round(skeet[k] / by[base][k], 2) if by[base][k] else math.nan
                          for k in ("p95_ms", "renderer_cpu", "ws_msgs_per_s")}
                summary[f"skeet_vs_{base}"] = ratios
                print(f"skeet / {base}: p95 ×{ratios['p95_ms']}, renderer CPU ×{ratios['renderer_cpu']}, "
                      f"websocket messages ×{ratios['ws_msgs_per_s']}")
        summary["skeet_p95_within_target"] = skeet["p95_ms"] < TARGET_P95_MS
        print(f"skeet p95 {skeet['p95_ms']} ms: {'within' if summary['skeet_p95_within_target'] else 'OVER'} "
              f"the {TARGET_P95_MS:g} ms target")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="trades per second per symbol")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scenario")
    parser.add_argument("--warm", type=float, default=1.5, help="seconds of load before measuring")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--skeet-hide", choices=HIDEABLE, action="append", default=[], metavar="PANEL",
                        help="a measuring aid: hide this desk panel in the skeet scenario (repeatable; "
                             f"{', '.join(HIDEABLE)}); the figures are then not the app's")
    parser.add_argument("--trace", type=Path, metavar="DIR",
                        help="write a Chromium trace of each scenario's measured window to DIR/<scenario>.json")
    parser.add_argument("--link", metavar="KB_PER_S:DELAY_MS",
                        type=lambda v: tuple(float(x) for x in v.split(":", 1)) if ":" in v else (float(v), 0.0),
                        help="the page's socket through a slow link once the page is up (bench/slow_link.py): "
                             "KB_PER_S kilobytes a second to the browser, DELAY_MS each way")
    parser.add_argument("--skeet-unpaced", action="store_true",
                        help="a measuring aid: the session's repaints paced by the gap alone, not by the "
                             "client's answers (client.repaint); the figures are then not the app's")
    parser.add_argument("--skeet-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a measuring aid: set one of the skeet session's RepaintScheduler numbers "
                             "(min_gap_s=0.05, backlog_factor=0, ...; repeatable); the figures are then not the app's")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.workdir, args.symbols, args.rate, tuple(args.skeet_hide), args.skeet_unpaced,
              tuple(args.skeet_set))
        return 0

    from playwright.sync_api import sync_playwright

    scenarios = args.only or list(SCENARIOS)
    symbols = symbols_for(args.symbols)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="skeet-ui-bench-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "FLET_FORCE_WEB_SERVER": "1", "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--workdir", str(workdir), "--symbols",
             str(args.symbols), "--rate", str(args.rate), *(f"--skeet-hide={h}" for h in args.skeet_hide),
             *(["--skeet-unpaced"] if args.skeet_unpaced else []), *(f"--skeet-set={s}" for s in args.skeet_set)],
            cwd=ROOT, env=env, stdout=(workdir / "server.log").open("wb"), stderr=subprocess.STDOUT,
        )
        results = []
        link = None
        try:
            wait_http(url, server)
            if args.link:
                from bench.slow_link import SlowLink

                link = SlowLink(port).start()
                url = f"http://127.0.0.1:{link.port}"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                try:
                    for name in scenarios:
                        started = time.monotonic()
                        result = measure(browser, url, name, symbols[:1] if name == "floor" else symbols,
                                         workdir, server.pid, args.warm, args.seconds, args.trace, link,
                                         args.link)
                        print(f"{name}: p95 {result['p95_ms']} ms over {result['trades_measured']} trades "
                              f"({time.monotonic() - started:.0f} s)", flush=True)
                        results.append(result)
                finally:
                    browser.close()
        except Exception:
            print((workdir / "server.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            if any(r["trades_unseen"] > r["trades_measured"] // 10 for r in results):
                print("the app server's log (many trades never reached the screen):\n"
                      + (workdir / "server.log").read_text()[-3000:], file=sys.stderr)
            if link is not None:
                link.close()
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    summary = report(results, args.symbols, args.rate)
    print(json.dumps(summary))
    return 0


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the benchmark's web app exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


if __name__ == "__main__":
    sys.exit(main())
