"""Benchmark: what one chart repaint costs on the server: Python time to build the scene and encode what
changed, and the bytes of it.

    python bench/chart.py               # 500 candles held, 90 shown, 300 repaints per scenario
    python bench/chart.py --repaints 100

The real `views.chart.ChartView` renders from a real `AppState`, the way the app changes it. What goes to
the browser is the layers whose shape lists were replaced (a replaced list is sent whole), the legend and
the semantics label; they are encoded with msgpack and Flet's own encoder, as `flet_web` sends them. Flet's
diff of unchanged controls is not included (it needs a connected page). Scenarios:

- `tick`: a trade inside the forming bar (what happens ~10 times a second): only the live layer moves.
- `hover`: the pointer moves one bar: only the crosshair layer and the legend.
- `bar_close`: a new bar opens: the base layer is rebuilt.
- `pan`: a drag of one bar into history: everything is rebuilt.
- `baseline_single_layer`: the same tick, but with every layer rebuilt (what one canvas would cost).

Ratios are printed against `baseline_single_layer`, measured in the same run; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flet as ft  # noqa: E402
import flet.canvas as cv  # noqa: E402
import msgpack  # noqa: E402
from flet.controls.base_control import BaseControl  # noqa: E402
from flet.messaging.protocol import configure_encode_object_for_msgpack  # noqa: E402

from client.state import AppState  # noqa: E402
from services.market import Candle, Tick  # noqa: E402
from views.chart import ChartView  # noqa: E402

ENCODE = configure_encode_object_for_msgpack(BaseControl)


def encoded(controls: list[Any]) -> int:
    """Bytes of what changed: a canvas's shapes, a text's value, a semantics node's label (not its content,
    which Flet diffs and does not resend)."""
    parts = [c.shapes if isinstance(c, cv.Canvas) else c.value if isinstance(c, ft.Text) else
             getattr(c, "label", None) for c in controls]
    return len(msgpack.packb(parts, default=ENCODE))


def make_state(n: int) -> AppState:
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT", width=1440,
                     chart_studies=("ema20", "bb20", "rsi14"))
    state.set_markets({"BTC/USDT": {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
                                    "precision": {"price": 0.01, "amount": 0.0001}}})
    price, bars = 97_000.0, []
    for i in range(n):
        move = ((i * 7919) % 23 - 11) * 5.0
        bars.append(Candle(60_000 * i, price, price + abs(move) + 3, price - abs(move) - 3, price + move, 1 + i % 7))
        price += move
    state.set_history("BTC/USDT", bars)
    return state


def run(repaints: int, held: int) -> dict[str, Any]:
    state = make_state(held)
    view = ChartView()
    view.render(state)
    view._on_resize(SimpleNamespace(width=760.0, height=440.0))
    results: dict[str, dict[str, float]] = {}
    sent: list[Any] = []
    view._send = lambda *controls: sent.extend(controls)  # type: ignore[method-assign]  # what a gesture sends

    def measure(name: str, step: Any) -> None:
        times, sizes = [], []
        for k in range(repaints):
            sent.clear()
            started = time.perf_counter()
            step(k)
            size = encoded(sent)
            times.append((time.perf_counter() - started) * 1000)
            sizes.append(size)
        results[name] = {"ms_p50": statistics.median(times), "ms_p95": sorted(times)[int(len(times) * 0.95)],
                         "bytes_p50": statistics.median(sizes)}

    last = state.candles["BTC/USDT"][-1]

    def tick(k: int) -> None:
        state.apply_tick(Tick("BTC/USDT", last.timestamp_ms + 1 + k, last.close + (k % 7 - 3), 0.01))
        view.render(state)
        sent.extend(view.changed)

    def single_layer(k: int) -> None:
        view._base_key, view._scene = None, None  # as if every shape lived on one canvas: all rebuilt, all resent
        tick(k)

    def hover(k: int) -> None:
        scene = view._scene
        assert scene is not None
        view._on_hover(SimpleNamespace(local_position=SimpleNamespace(x=scene.frame.x(k % 80), y=120.0)))

    def bar_close(k: int) -> None:
        t = state.candles["BTC/USDT"][-1].timestamp_ms + 60_000
        state.apply_tick(Tick("BTC/USDT", t, last.close + k % 5, 0.01))
        view.render(state)
        sent.extend(view.changed)

    def pan(k: int) -> None:
        view._on_scale_start(None)
        assert view._scene is not None
        dx = view._scene.frame.slot * (1 if k % 40 < 20 else -1)
        view._on_scale_update(SimpleNamespace(pointer_count=1, horizontal_scale=1.0,
                                              focal_point_delta=SimpleNamespace(x=dx, y=0)))

    measure("baseline_single_layer", single_layer)
    measure("tick", tick)
    measure("hover", hover)
    measure("bar_close", bar_close)
    measure("pan", pan)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repaints", type=int, default=300)
    parser.add_argument("--held", type=int, default=500)
    args = parser.parse_args()
    results = run(args.repaints, args.held)
    base = results["baseline_single_layer"]
    print(f"{'scenario':<24}{'ms p50':>9}{'ms p95':>9}{'bytes p50':>11}{'× time':>9}{'× bytes':>9}")
    for name, r in results.items():
        print(f"{name:<24}{r['ms_p50']:>9.2f}{r['ms_p95']:>9.2f}{r['bytes_p50']:>11.0f}"
              f"{r['ms_p50'] / base['ms_p50']:>9.2f}{r['bytes_p50'] / max(1.0, base['bytes_p50']):>9.3f}")
    print(json.dumps({"repaints": args.repaints, "held": args.held, "results": results}))


if __name__ == "__main__":
    main()
