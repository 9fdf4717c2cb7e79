"""`StrategiesController`: builds a strategy from the Strategies screen's draft, loads the candle history
from the session's market feed page by page (the progress bar), runs the backtest off the UI loop, and puts
a phone-sized summary into `state.backtest`. One run at a time; cancel stops it between pages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from client.backtest_lab import MAX_POINTS, BacktestSummary, StrategyDraft
from client.context import SessionContext
from services.backtest import backtest, check_operand, make_candles, parse_strategy
from services.backtest.runner import BacktestResult, trade_json
from services.backtest.strategy import StrategyError
from services.market import TIMEFRAME_MS, MarketFeed

log = logging.getLogger(__name__)
PAGE = 1000  # candles asked of the feed at a time


class StrategiesController:
    def __init__(self, ctx: SessionContext, feed: Callable[[], MarketFeed | None],
                 clock: Callable[[], float] = time.time) -> None:
        self._ctx, self._feed, self._clock = ctx, feed, clock
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    async def run(self, draft: StrategyDraft) -> None:
        state = self._ctx.state
        lab = state.backtest
        if lab.running:
            return
        lab.draft, lab.error, lab.result, lab.running, lab.progress = draft, None, None, True, 0.0
        lab.stage = "Checking the strategy"
        self._cancel = False
        state.changed("strategies")
        try:
            strategy = parse_strategy(draft.document() | {"timeframe": draft.timeframe}, check_operand=check_operand)
            candles = await self._history(draft)
            if candles is None:
                lab.stage = "Cancelled"
                return
            lab.stage, lab.progress = f"Testing on {len(candles):,} candles", 0.95
            state.changed("strategies")
            result = await asyncio.to_thread(backtest, strategy, candles, symbol=draft.symbol)
            lab.result = summarise(result)
            lab.stage, lab.progress = "Done", 1.0
        except StrategyError as exc:
            lab.error = str(exc)
        except Exception as exc:  # the feed failed: say so on the screen, keep the session
            log.warning("backtest failed: %s", exc)
            lab.error = f"The backtest could not run: {exc}"
        finally:
            lab.running = False
            state.changed("strategies")

    async def _history(self, draft: StrategyDraft):  # noqa: ANN202 - Candles | None
        feed = self._feed()
        if feed is None:
            raise StrategyError("there is no market feed to read history from")
        step = TIMEFRAME_MS[draft.timeframe]
        end = int(self._clock() * 1000)
        start = end - draft.days * 86_400_000
        rows: dict[int, tuple[float, float, float, float, float]] = {}
        since = start
        lab, state = self._ctx.state.backtest, self._ctx.state
        while since < end:
            if self._cancel:
                return None
            page = await feed.candles(draft.symbol, draft.timeframe, since_ms=since, limit=PAGE)
            page = [c for c in page if c.timestamp_ms >= since]
            if not page:
                break
            for c in page:
                rows[c.timestamp_ms] = (c.open, c.high, c.low, c.close, c.volume)
            since = page[-1].timestamp_ms + step
            lab.progress = min(0.9, 0.9 * (since - start) / max(1, end - start))
            lab.stage = f"Loading history: {len(rows):,} candles"
            state.changed("strategies")
        if len(rows) < 3:
            raise StrategyError(f"the market gave only {len(rows)} {draft.timeframe} candles of {draft.symbol} "
                                f"for the last {draft.days} days: too few to test on")
        stamps = sorted(rows)
        cols = np.array([rows[t] for t in stamps], dtype=np.float64)
        return make_candles(stamps, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], cols[:, 4])


def summarise(result: BacktestResult) -> BacktestSummary:
    """Stats, equity and drawdown thinned to about MAX_POINTS points, the newest 50 trades."""
    n = len(result.candles)
    step = max(1, n // MAX_POINTS)
    keep = list(range(0, n, step)) + ([n - 1] if (n - 1) % step else [])
    ts = result.candles.timestamp_ms[keep].tolist()
    return BacktestSummary(
        stats=result.stats,
        equity=list(zip(ts, result.equity[keep].tolist(), strict=True)),
        drawdown=list(zip(ts, (result.drawdown[keep] * 100).tolist(), strict=True)),
        trades=[trade_json(t) for t in reversed(result.trades[-50:])],
        candles=n,
    )
