"""The Strategies screen's history: two years of 1-minute candles for a backtest, read from the history
store (cold: filled from the synthetic market first; warm: already stored) against the screen's former
path, the market feed asked 1,000 candles at a time; and the backtest of SMA 50/200, TP 5%, SL 2% on them.
Same run, same machine: ratios against the feed-paging baseline. Last line: JSON.

    .venv/bin/python bench/strategy_history.py [--days 730]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from client.backtest_lab import StrategyDraft
from client.controllers.strategies import StrategiesController
from client.state import AppState
from services.market import SyntheticFeed

NOW_S = 1_795_000_000.0  # fixed, so every run reads the same candles


async def run(days: int) -> dict[str, float]:
    draft = StrategyDraft.cross("sma", 50, 200, timeframe="1m", take_profit_pct=5, stop_loss_pct=2, days=days)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Cold first: the synthetic market keeps what it computed in the process, which would warm the others.
        for label, history, market in (("store_cold_s", Path(tmp), "synthetic"),
                                       ("feed_paging_s", None, "gateway:https://unused"),
                                       ("store_warm_s", Path(tmp), "synthetic")):
            state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT", market_source=market)
            feed = SyntheticFeed(clock=lambda: NOW_S)
            controller = StrategiesController(SimpleNamespace(state=state), lambda f=feed: f,  # type: ignore[arg-type, misc]
                                              lambda: NOW_S, history=history)
            stages: dict[str, float] = {}
            changed = state.changed

            def record(*topics: str, stages: dict[str, float] = stages, state: AppState = state,
                       changed=changed) -> None:  # noqa: ANN001
                stages.setdefault(state.backtest.stage.split(":")[0], time.perf_counter())
                changed(*topics)

            state.changed = record  # type: ignore[method-assign]
            start = time.perf_counter()
            await controller.run(draft)
            total = time.perf_counter() - start
            lab = state.backtest
            assert lab.result is not None, lab.error
            testing = next(t for s, t in stages.items() if s.startswith("Testing"))
            out[label] = round(testing - start, 3)  # history loaded
            out[label.replace("_s", "_backtest_s")] = round(total - (testing - start), 3)
            out["candles"] = lab.result.candles
            out["trades"] = lab.result.stats["trades"]
            print(f"{label}: history {testing - start:.2f} s, backtest {total - (testing - start):.2f} s, "
                  f"{lab.result.candles:,} candles, {lab.result.stats['trades']} trades", flush=True)
    out["store_cold_vs_feed"] = round(out["store_cold_s"] / out["feed_paging_s"], 3)
    out["store_warm_vs_feed"] = round(out["store_warm_s"] / out["feed_paging_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=730)
    print(json.dumps(asyncio.run(run(parser.parse_args().days))))


if __name__ == "__main__":
    main()
