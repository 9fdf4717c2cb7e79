"""Benchmark: what sending one desk repaint costs the server, Skeet's `PatchSender` against Flet's own
`page.update(*controls)` (one message per control), measured in the same run.

    python bench/patches.py               # 50 symbols, 19 rows on screen, 400 repaints per way
    python bench/patches.py --repaints 200

A real Flet session whose connection encodes every message with msgpack and Flet's encoder, as `flet_web`
sends it, holds a desk of the real views (watchlist of `--symbols`, chart, order ticket). Each repaint is a
trade of every symbol (the rows on screen change their price, a selection now and then), then the views'
`render` and the send of what they returned. Timed: the send alone (Flet's diff or `PatchSender`'s, the
encoding, the messages), per repaint; printed with the messages per repaint and bytes. Ratio against
`flet_update`. Last line: JSON.
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

import flet as ft
import msgpack
from flet.messaging.connection import Connection
from flet.messaging.protocol import configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.patches import PatchSender  # noqa: E402
from client.state import AppState  # noqa: E402
from services.market import Tick  # noqa: E402
from services.market.markets import spot_market  # noqa: E402
from views.chart import ChartView  # noqa: E402
from views.common import Intents  # noqa: E402
from views.order_ticket import OrderTicketView  # noqa: E402
from views.watchlist import WatchlistView  # noqa: E402

ENCODE = configure_encode_object_for_msgpack(ft.BaseControl)
ROW_PX = 46.0  # a watchlist row's height at 1440×900 (bench/sessions.py)


class Wire(Connection):
    """A client's socket as the server sees it: each message encoded as `flet_web` encodes it."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = 0
        self.bytes = 0

    def register(self, page_patch: Any) -> None:
        self.bytes += len(msgpack.packb(page_patch, default=ENCODE))

    def send_message(self, message: Any) -> None:
        self.messages += 1
        self.bytes += len(msgpack.packb([message.action, message.body], default=ENCODE))


def desk(n_symbols: int) -> tuple[Wire, Session, AppState, WatchlistView, ChartView, OrderTicketView, ft.Control]:
    wire = Wire()
    wire.pubsubhub = PubSubHub()
    session = Session(wire)
    wire.register(session.get_page_patch())
    symbols = [f"S{i:02d}/USDT" for i in range(n_symbols)]
    state = AppState(watchlist=symbols, selected=symbols[0], width=1440, height=900)
    state.set_markets({s: spot_market(s, price_tick=0.01, amount_step=0.0001, min_amount=0.0001, max_amount=100,
                                      min_cost=5) for s in symbols})
    for i, s in enumerate(symbols):
        state.apply_tick(Tick(s, 1_700_000_000_000, 100.0 + 10 * i, 0.01))
    watchlist, chart, ticket = WatchlistView(Intents()), ChartView(), OrderTicketView(Intents())
    watchlist.render(state)
    chart.render(state)
    ticket.render(state)
    root = ft.Container(ft.Row([watchlist.control, chart.control, ft.Column([ticket.control])]))
    session.page.add(root)
    watchlist._sized(SimpleNamespace(height=ROW_PX * n_symbols))  # as the browser reports the list laid out  # noqa: SLF001
    return wire, session, state, watchlist, chart, ticket, root


def run(way: str, n_symbols: int, repaints: int) -> dict[str, float]:
    wire, session, state, watchlist, chart, ticket, root = desk(n_symbols)
    sender = PatchSender(session.page, root)
    times: list[float] = []
    before = (wire.messages, wire.bytes)
    for k in range(repaints + 20):
        if k == 20:  # warmed up
            times.clear()
            before = (wire.messages, wire.bytes)
        for i, s in enumerate(state.watchlist):
            state.apply_tick(Tick(s, 1_700_000_000_000 + 50 * (k + 1), 100.0 + 10 * i + 0.01 * ((k * 7 + i) % 11), 0.01))
        if k % 25 == 24:
            state.select(state.watchlist[(k // 25) % 5])
        controls = [*watchlist.render(state), *(chart.render(state) or [chart.control]), *ticket.render_quote(state)]
        started = time.perf_counter()
        if way == "flet_update":
            session.page.update(*controls)
        else:
            sender.send(controls)
        times.append((time.perf_counter() - started) * 1000)
    return {"ms_p50": statistics.median(times), "ms_p95": sorted(times)[int(len(times) * 0.95)],
            "ms_mean": statistics.fmean(times), "messages": (wire.messages - before[0]) / repaints,
            "kb": (wire.bytes - before[1]) / repaints / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--repaints", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="each way this many times, alternating")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"flet_update": [], "patch_sender": []}
    for _ in range(args.rounds):
        for way in results:
            results[way].append(run(way, args.symbols, args.repaints))
    best = {way: min(rounds, key=lambda r: r["ms_mean"]) for way, rounds in results.items()}
    base = best["flet_update"]["ms_mean"]
    print(f"{'way':<14} {'ms p50':>7} {'ms p95':>7} {'ms mean':>8} {'msgs':>6} {'kB':>6} {'× mean':>7}")
    for way, r in best.items():
        print(f"{way:<14} {r['ms_p50']:7.3f} {r['ms_p95']:7.3f} {r['ms_mean']:8.3f} {r['messages']:6.1f} "
              f"{r['kb']:6.1f} {r['ms_mean'] / base:7.2f}")
    print(json.dumps({"symbols": args.symbols, "repaints": args.repaints, "best": best,
                      "ratio_mean_vs_flet_update": best["patch_sender"]["ms_mean"] / base}))


if __name__ == "__main__":
    main()
