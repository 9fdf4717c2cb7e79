"""Benchmark: what one frame of Skeet's desk costs the browser to raster, per variant, interleaved.

    python bench/raster.py                                  # the desk as it is, 3 rounds
    python bench/raster.py --variant base --variant hide:chart --rounds 4
    python bench/raster.py --app-root /tmp/before --app-root .   # two versions of the app, A B A B ...

The real desk (`client.app.SkeetSession`, fed by `bench.ui_latency.LoadFeed` at 50 symbols × 20 trades/s, so it
repaints as often as the session lets it: ~20 times a second) is opened in headless Debian Chromium (the same
flags as `bench/ui_latency.py`: `--disable-gpu`, so WebGL runs on SwiftShader) at 1440×900, once per variant
per round, the variants interleaved (A, B, A, B, ...) so the machine's load hits them alike. Each visit warms
up, then records a Chromium trace for `--seconds`: the skwasm raster worker's `HandlePostMessage` events are
its frames (their wall time is mostly waiting on SwiftShader in the GPU process). Printed per variant: the
median over rounds of each visit's median raster ms a frame, frames/s, the CPU of the renderer and GPU
processes (from /proc), and that CPU per frame (under load a frame's wall time is mostly waiting for a core;
its CPU less so); the load average with them. The machine's other work moves a visit's figures by ±20 %:
only differences seen in most rounds mean anything.

A variant is the app served from an `--app-root` (a checkout of another commit: `git archive REV | tar -x`),
and/or measuring aids applied to the desk (`--variant`, joined with `+`; `AID@VIEW` limits one to the
controls under a view's panel, e.g. `nobg@chart`). Their figures say what a part costs, not what the app costs:
  `base` nothing · `hide:VIEW[.ATTR]` hides a view's panel or one of its controls (`hide:chart.base`) ·
  `nobg`, `noradius`, `noclip`, `noink` strip Containers' bgcolor, border_radius, their anti-aliased clip, ink ·
  `rows:N` only the first N watchlist rows · `chart-noaa` the chart's shapes without anti-aliasing ·
  `chart-drop:KIND[,KIND]` the chart's shapes of these `flet.canvas` kinds left out (`Path`, `Text`, ...) ·
  `chart-nopolyline` no study lines · `dpr:N` a device pixel ratio of N · `dump` the chart's shapes counted
  into $SKEET_RASTER_DUMP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent


def controls_under(root: Any) -> list[Any]:
    """Every control in the tree under `root` (its fields that hold controls or lists of them)."""
    import dataclasses

    import flet as ft

    out, todo, seen = [], [root], set()
    while todo:
        c = todo.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        out.append(c)
        for f in dataclasses.fields(c):
            if f.name.startswith("_") or f.name in ("parent", "page"):
                continue
            value = getattr(c, f.name, None)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, ft.BaseControl) and not isinstance(v, ft.Page):
                    todo.append(v)
    return out


def patch_modules(variant: str) -> None:
    """The aids that change how the app builds its controls (before the session starts)."""
    for aid in filter(None, variant.split("+")):
        if aid == "chart-noaa":  # the chart's shapes drawn without anti-aliasing
            import views.chart_scene as scene

            scene._paint = lambda *a, _paint=scene._paint, **k: dataclasses_replace(_paint(*a, **k), anti_alias=False)
        elif aid == "chart-nopolyline":  # the studies' lines left out
            import views.chart_scene as scene

            scene._polyline = lambda *a, **k: None
        elif aid.startswith("chart-drop:"):  # the chart's base and live shapes of these kinds left out
            import flet.canvas as cv

            import views.chart as chart

            kinds = tuple(getattr(cv, k) for k in aid.split(":", 1)[1].split(","))
            build = chart.build

            def dropping(*a: Any, _build: Any = build, _kinds: Any = kinds, **k: Any) -> Any:
                scene = _build(*a, **k)
                scene.base = [s for s in scene.base if not isinstance(s, _kinds)]
                scene.live = [s for s in scene.live if not isinstance(s, _kinds)]
                return scene

            chart.build = dropping


def dataclasses_replace(obj: Any, **changes: Any) -> Any:
    for k, v in changes.items():
        setattr(obj, k, v)
    return obj


def apply_aids(session: Any, variant: str) -> list[Any]:
    """The aids applied to the desk after its first paint; returns the controls changed."""
    import flet as ft

    changed = []
    for aid in filter(None, variant.split("+")):
        aid, _, scope = aid.partition("@")  # noclip@watchlist: only under that view's control
        everything = controls_under(getattr(session.shell, scope).control if scope else session.shell.root)
        kind, _, arg = aid.partition(":")
        if kind == "rows":  # only the first N watchlist rows shown (the rest of the 50 hidden)
            for row in list(session.shell.watchlist.rows.values())[int(arg):]:
                row.control.visible = False
                changed.append(row.control)
            continue
        if kind == "hide":  # a view's control, or one of its attributes: hide:chart, hide:ticket.side
            view, _, part = arg.partition(".")
            control = getattr(getattr(session.shell, view), part or "control")
            control.visible = False
            changed.append(control)
        elif kind in ("noclip", "noradius", "nobg", "noink"):
            for c in everything:
                if not isinstance(c, ft.Container):
                    continue
                if kind == "noclip" and c.border_radius is not None and c.clip_behavior is None:
                    c.clip_behavior = ft.ClipBehavior.NONE
                elif kind == "noradius" and c.border_radius is not None:
                    c.border_radius = None
                elif kind == "nobg" and c.bgcolor is not None:
                    c.bgcolor = None
                elif kind == "noink" and c.ink:
                    c.ink = False
                else:
                    continue
                changed.append(c)
        elif kind not in ("base", "dpr", "chart-noaa", "chart-drop", "chart-nopolyline", "rows", "dump"):
            raise ValueError(f"unknown variant {aid!r}")
    return changed


def dump_chart(chart: Any) -> None:
    """Append the shapes on the chart's canvases, counted by kind, to $SKEET_RASTER_DUMP."""
    import collections

    with open(os.environ.get("SKEET_RASTER_DUMP", os.devnull), "a") as out:
        for name in ("base", "live", "cursor"):
            kinds = collections.Counter(
                type(x).__name__ + (f"({len(x.elements)})" if hasattr(x, "elements") else "")
                for x in getattr(chart, name).shapes)
            print(name, dict(kinds), file=out)


def serve(port: int, workdir: Path, app_root: Path, variant: str) -> None:
    """The desk at `/<visit>` with `variant`'s aids (a child process; `app_root` is first on sys.path)."""
    sys.path.insert(0, str(app_root))
    sys.path.insert(1, str(BENCH))
    import flet as ft

    # These from app_root, before ui_latency (imported by name, after them) puts this checkout first on the path.
    for name in ("client.launcher", "services.live", "services.market.sources"):
        importlib.import_module(name)
    bench = importlib.import_module("ui_latency")
    LoadFeed, QuietLive, symbols_for = bench.LoadFeed, bench.QuietLive, bench.symbols_for

    while str(ROOT) in sys.path:
        sys.path.remove(str(ROOT))
    sys.path.insert(0, str(app_root))

    from client.app import SessionServices, SkeetSession
    from services.api import SkeetApi
    from services.market.sources import FEED_BATCH_S
    from services.signals import SignalEngine, default_rules

    patch_modules(variant)

    async def no_token() -> str:
        return "benchmark"

    async def desk(page: ft.Page) -> None:
        visit = (page.route or "/").strip("/")
        symbols = symbols_for(50)
        feed = LoadFeed(symbols, rate_hz=20.0, log_path=None, stop_path=workdir / f"{visit}.stop",
                        batch_s=FEED_BATCH_S)
        services = SessionServices(
            feed=feed, engine=SignalEngine(rules=default_rules()),
            api=SkeetApi(base_url="http://127.0.0.1:9", token=no_token), live=QuietLive(),
            modes={"market": feed.mode, "orders": "Paper trading", "live": QuietLive.mode,
                   "insights": "Local analyst", "identity": "Local user"},
            backend_url="http://127.0.0.1:9",
        )
        session = SkeetSession(page, services, watchlist=symbols, timeframe="1m", theme="dark")
        assert Path(sys.modules["views.chart_scene"].__file__ or "").is_relative_to(app_root), "served from the wrong checkout"
        await session.start()
        await asyncio.sleep(1.0)  # the rows and the chart's canvas are built and laid out
        for control in apply_aids(session, variant):
            control.update()  # one by one: isolated controls are not reached by a page's update
        stop = workdir / f"{visit}.stop"
        while not stop.exists():  # noqa: ASYNC110  (a file the measuring process makes)
            await asyncio.sleep(0.1)
        if "dump" in variant.split("+"):  # what the chart's canvases hold (a look, not a figure)
            dump_chart(session.shell.chart)
        await session.close()  # not left running (its feed's trades) behind the next visit

    ft.run(desk, view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port, no_cdn=True)


def raster_frames(trace_path: Path) -> list[float]:
    """The raster worker's frames in a trace: the durations (ms) of `HandlePostMessage` on the thread that
    spends the most time in them (skwasm's raster worker)."""
    events = json.loads(trace_path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    by_thread: dict[tuple[int, int], list[float]] = {}
    opened: dict[tuple[int, int], list[float]] = {}
    for e in events:
        if e.get("name") != "HandlePostMessage":
            continue
        key = (e.get("pid", 0), e.get("tid", 0))
        if e.get("ph") == "X":
            by_thread.setdefault(key, []).append(e.get("dur", 0) / 1000.0)
        elif e.get("ph") == "B":
            opened.setdefault(key, []).append(e["ts"])
        elif e.get("ph") == "E" and opened.get(key):
            by_thread.setdefault(key, []).append((e["ts"] - opened[key].pop()) / 1000.0)
    if not by_thread:
        return []
    return max(by_thread.values(), key=sum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="a measuring aid (see above); repeatable")
    parser.add_argument("--app-root", type=Path, action="append", help="serve the app from here; repeatable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="traced seconds per visit")
    parser.add_argument("--warm", type=float, default=3.0, help="seconds after the desk shows, before tracing")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.workdir, args.app_root[0], (args.variant or ["base"])[0])
        return 0

    sys.path.insert(0, str(ROOT))
    sys.path.insert(1, str(BENCH))
    from playwright.sync_api import sync_playwright
    from ui_latency import CHROMIUM, CHROMIUM_FLAGS, chromium_processes, cpu_seconds, wait_http

    from client.launcher import free_port

    roots = [r.resolve() for r in (args.app_root or [ROOT])]
    variants = args.variant or ["base"]
    arms = [(i, v) for i in range(len(roots)) for v in variants]
    label = {arm: (f"{roots[arm[0]].name}:" if len(roots) > 1 else "") + arm[1] for arm in arms}
    results: dict[tuple[int, str], list[dict[str, float]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="skeet-raster-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "FLET_FORCE_WEB_SERVER": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": ""}
        servers, urls = [], []
        for i, (root_index, variant) in enumerate(arms):  # a server per arm: an aid may patch modules
            port = free_port()
            servers.append(subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port), "--workdir", str(workdir), "--app-root",
                 str(roots[root_index]), "--variant", variant], cwd=roots[root_index], env=env,
                stdout=(workdir / f"server{i}.log").open("wb"), stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        try:
            for url, server in zip(urls, servers, strict=True):
                wait_http(url, server)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                visit = 0
                for rnd in range(args.rounds):
                    # Interleaved, and each round starts one arm later: no arm is always first after a rest.
                    order = arms[rnd % len(arms):] + arms[:rnd % len(arms)]
                    for arm in order:
                        visit += 1
                        dpr = next((float(a.split(":")[1]) for a in arm[1].split("+") if a.startswith("dpr:")), 1.0)
                        result = visit_once(browser, f"{urls[arms.index(arm)]}/v{visit}", workdir, f"v{visit}",
                                            args, dpr, chromium_processes, cpu_seconds)
                        results[arm].append(result)
                        print(f"round {rnd + 1} {label[arm]:<28} raster median {result['raster_ms']:6.1f} ms, "
                              f"p90 {result['raster_p90_ms']:6.1f}, {result['frames_per_s']:5.1f} frames/s, "
                              f"renderer {result['renderer']:4.0%}, gpu {result['gpu']:4.0%} ({result['gpu_ms_frame']:.1f} ms/frame), "
                              f"load {os.getloadavg()[0]:.1f}", flush=True)
                browser.close()
        finally:
            for server in servers:
                server.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(timeout=10)
                if server.poll() is None:
                    server.kill()
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"\nRaster per frame of the desk, {args.width}×{args.height}, {args.rounds} rounds × {args.seconds:g} s, "
          f"median over rounds (load average now {load[0]} / {load[1]} / {load[2]})")
    print(f"{'variant':<30} {'raster ms':>9} {'p90 ms':>7} {'frames/s':>8} {'renderer':>8} {'gpu':>5} "
          f"{'gpu ms/frame':>12} {'renderer ms/frame':>17}")
    summary = []
    for arm in arms:
        rs = results[arm]
        row = {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]} if rs else {}
        summary.append({"variant": label[arm], **row, "rounds": [r["raster_ms"] for r in rs]})
        if rs:
            print(f"{label[arm]:<30} {row['raster_ms']:>9.1f} {row['raster_p90_ms']:>7.1f} {row['frames_per_s']:>8.1f} "
                  f"{row['renderer']:>8.0%} {row['gpu']:>5.0%} {row['gpu_ms_frame']:>12.1f} {row['renderer_ms_frame']:>17.1f}"
                  "   rounds: "
                  + ", ".join(f"{r['raster_ms']:.1f}" for r in rs))
    print(json.dumps({"bench": "raster", "load_average": load, "variants": summary}))
    return 0


def visit_once(browser: Any, url: str, workdir: Path, visit: str, args: argparse.Namespace, dpr: float,
               chromium_processes: Any, cpu_seconds: Any) -> dict[str, float]:
    context = browser.new_context(viewport={"width": args.width, "height": args.height}, device_scale_factor=dpr)
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("flt-semantics-placeholder", state="attached", timeout=90_000)
        page.evaluate("document.querySelector('flt-semantics-placeholder').click()")
        page.locator('[flt-semantics-identifier="watchlist"]').wait_for(state="attached", timeout=90_000)
        time.sleep(args.warm)
        procs = chromium_processes()
        before = {role: sum(cpu_seconds(p) for p in pids) for role, pids in procs.items()}
        trace = workdir / f"{visit}.trace.json"
        browser.start_tracing(page=page, path=str(trace), categories=["toplevel", "devtools.timeline", "blink"])
        t0 = time.time()
        time.sleep(args.seconds)
        browser.stop_tracing()
        elapsed = time.time() - t0
        cpu = {role: (sum(cpu_seconds(p) for p in pids) - before[role]) / elapsed for role, pids in procs.items()}
    finally:
        (workdir / f"{visit}.stop").touch()
        context.close()
    frames = sorted(raster_frames(trace))
    trace.unlink(missing_ok=True)
    if not frames:
        return {"raster_ms": float("nan"), "raster_p90_ms": float("nan"), "frames_per_s": 0.0,
                "renderer": cpu["renderer"], "gpu": cpu["gpu"], "gpu_ms_frame": float("nan"),
                "renderer_ms_frame": float("nan")}
    n = len(frames)
    return {"raster_ms": statistics.median(frames), "raster_p90_ms": frames[int(n * 0.9)],
            "frames_per_s": n / elapsed, "renderer": cpu["renderer"], "gpu": cpu["gpu"],
            # CPU per frame: under load a frame's wall time is mostly waiting for a core, its CPU much less so
            "gpu_ms_frame": cpu["gpu"] * elapsed / n * 1000, "renderer_ms_frame": cpu["renderer"] * elapsed / n * 1000}


if __name__ == "__main__":
    sys.exit(main())
