"""`StrategiesController`: the Strategies screen's work. Builds a strategy from the draft, reads its candles
from the history store (filled from the app's market source, page by page, off the UI loop: the progress
bar), runs the backtest off the UI loop and puts a phone-sized summary into `state.backtest`; saves, loads,
deletes and switches strategies on the backend (`/v1/strategies`), and sets a paper-running strategy's live
trades beside the backtest of the same period (the drift report). One backtest at a time; cancel stops it
between pages.

A market source the store cannot read (the gateway, the default recording) is read from the session's
market feed instead, page by page as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from client.backtest_lab import MAX_POINTS, BacktestSummary, DriftSummary, StrategyDraft
from client.context import SessionContext
from services.analytics import fills_from_orders
from services.api import ApiError
from services.backtest import Candles, backtest, check_operand, make_candles, parse_strategy
from services.backtest.drift import drift_report
from services.backtest.runner import BacktestResult, trade_json
from services.backtest.strategy import StrategyError
from services.market import TIMEFRAME_MS, MarketFeed
from services.market.history import CandleStore, CcxtSource

log = logging.getLogger(__name__)
PAGE = 1000  # candles asked of the feed at a time
WARM_CANDLES = 600  # the backend runner's warm-up (backend_stub/strategies_runner.py): the same indicators


class HistoryFill:
    """Progress of a store fill running on a worker thread, read by the UI loop."""

    def __init__(self, since_ms: int, until_ms: int) -> None:
        self.since_ms, self.until_ms = since_ms, until_ms
        self.reached_ms = since_ms
        self.cancel = threading.Event()


def fill_history(store: CandleStore, spec: str, symbol: str, timeframe: str, filling: HistoryFill) -> str | None:
    """On a worker thread: every missing bar of the range from the source `spec` names, written page by
    page (an interrupted fill resumes from what is stored). The source's name in the store; None: cancelled."""
    from services.market.candles import open_source

    async def go() -> str | None:
        source, _ = open_source(spec)
        try:
            for start, end in store.gaps(source.name, symbol, timeframe, filling.since_ms, filling.until_ms):
                async for page in source.pages(symbol, timeframe, start, end):
                    if filling.cancel.is_set():
                        return None
                    store.write(source.name, symbol, timeframe, page)
                    filling.reached_ms = int(page[-1, 0])
            return source.name
        finally:
            if isinstance(source, CcxtSource):
                await source.aclose()

    with _FILLING:
        return asyncio.run(go())


# One fill at a time in the process: the store allows one writer per series, and two sessions (web tabs)
# backtesting the same market would otherwise write the same month's file at once. The second then finds
# nothing missing.
_FILLING = threading.Lock()


def store_reads(spec: str) -> bool:
    """Whether the history store fills from the market source `spec` itself (synthetic[:SEED],
    replay:PATH, csv:PATH, ccxt:EXCHANGE, loopback:HOST:PORT); others are read from the feed."""
    kind, _, rest = spec.strip().partition(":")
    return kind == "synthetic" or (kind in ("replay", "csv", "ccxt", "loopback") and bool(rest))


class StrategiesController:
    def __init__(self, ctx: SessionContext, feed: Callable[[], MarketFeed | None],
                 clock: Callable[[], float] = time.time, *, history: Path | None = None) -> None:
        """`history`: the history store's folder (None: candles come from the feed only)."""
        self._ctx, self._feed, self._clock = ctx, feed, clock
        self._store = CandleStore(history) if history is not None else None
        self._cancel = False
        self._filling: HistoryFill | None = None

    def cancel(self) -> None:
        self._cancel = True
        if self._filling is not None:
            self._filling.cancel.set()

    # -- backtest ------------------------------------------------------------------------------------

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
            end = int(self._clock() * 1000)
            candles = await self._history(draft.symbol, draft.timeframe, end - draft.days * 86_400_000, end)
            if candles is None:
                lab.stage = "Cancelled"
                return
            if len(candles) < 3:
                raise StrategyError(f"the market gave only {len(candles)} {draft.timeframe} candles of "
                                    f"{draft.symbol} for the last {draft.days} days: too few to test on")
            lab.stage, lab.progress = f"Testing on {len(candles):,} candles", 0.95
            state.changed("strategies")
            result = await asyncio.to_thread(backtest, strategy, candles, symbol=draft.symbol)
            lab.result = summarise(result, draft.symbol)
            lab.stage, lab.progress = "Done", 1.0
        except StrategyError as exc:
            lab.error = str(exc)
        except Exception as exc:  # the feed failed: say so on the screen, keep the session
            log.warning("backtest failed: %s", exc)
            lab.error = f"The backtest could not run: {exc}"
        finally:
            lab.running = False
            state.changed("strategies")

    async def _history(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles | None:
        spec = self._ctx.state.market_source
        if self._store is not None and store_reads(spec):
            return await self._from_store(spec, symbol, timeframe, since_ms, until_ms)
        return await self._from_feed(symbol, timeframe, since_ms, until_ms)

    async def _from_store(self, spec: str, symbol: str, timeframe: str, since_ms: int,
                          until_ms: int) -> Candles | None:
        assert self._store is not None
        lab, state = self._ctx.state.backtest, self._ctx.state
        filling = self._filling = HistoryFill(since_ms, until_ms)
        if self._cancel:
            filling.cancel.set()
        work = asyncio.ensure_future(asyncio.to_thread(fill_history, self._store, spec, symbol, timeframe, filling))
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=0.1)
                lab.progress = min(0.9, 0.9 * (filling.reached_ms - since_ms) / max(1, until_ms - since_ms))
                lab.stage = f"Loading history into the store: {lab.progress / 0.9:.0%}"
                state.changed("strategies")
            name = work.result()
            if name is None:
                return None
        finally:
            self._filling = None
        lab.stage = "Reading history from the store"
        state.changed("strategies")
        bars = await asyncio.to_thread(self._store.read, name, symbol, timeframe, since_ms, until_ms)
        return make_candles(bars[:, 0].astype(np.int64), bars[:, 1], bars[:, 2], bars[:, 3], bars[:, 4], bars[:, 5])

    async def _from_feed(self, symbol: str, timeframe: str, start: int, end: int) -> Candles | None:
        feed = self._feed()
        if feed is None:
            raise StrategyError("there is no market feed to read history from")
        step = TIMEFRAME_MS[timeframe]
        rows: dict[int, tuple[float, float, float, float, float]] = {}
        since = start
        lab, state = self._ctx.state.backtest, self._ctx.state
        while since < end:
            if self._cancel:
                return None
            page = await feed.candles(symbol, timeframe, since_ms=since, limit=PAGE)
            page = [c for c in page if since <= c.timestamp_ms < end]
            if not page:
                break
            for c in page:
                rows[c.timestamp_ms] = (c.open, c.high, c.low, c.close, c.volume)
            since = page[-1].timestamp_ms + step
            lab.progress = min(0.9, 0.9 * (since - start) / max(1, end - start))
            lab.stage = f"Loading history: {len(rows):,} candles"
            state.changed("strategies")
        stamps = sorted(rows)
        cols = np.array([rows[t] for t in stamps], dtype=np.float64).reshape(-1, 5)
        return make_candles(stamps, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], cols[:, 4])

    # -- saved strategies (the backend) --------------------------------------------------------------

    async def save(self, draft: StrategyDraft, *, enabled: bool = False) -> None:
        """Save the form's strategy (the same settings save over the same one)."""
        document = draft.document() | {"timeframe": draft.timeframe}
        await self._put(draft.strategy_id, draft.symbol, document, enabled,
                        f"Saved “{draft.name}”" + (" and switched it on for paper trading" if enabled else ""))

    async def switch(self, strategy_id: str, on: bool) -> None:
        """Switch a saved strategy on or off for paper trading (the backend runs it)."""
        doc = self._ctx.state.backtest.saved.get(strategy_id)
        if doc is None:
            return
        await self._put(strategy_id, doc["symbol"], doc["strategy"], on,
                        f"“{doc['name']}” is {'on: the backend trades it on paper' if on else 'off'}")

    async def delete(self, strategy_id: str) -> None:
        lab = self._ctx.state.backtest
        try:
            doc = await self._ctx.services.api.delete_strategy(strategy_id)
            lab.saved.pop(strategy_id, None)
            lab.notice = f"Deleted “{doc.get('name', strategy_id)}”"
        except ApiError as exc:
            lab.notice = f"Could not delete the strategy: {exc.message}"
        self._ctx.state.changed("strategies")

    def load(self, strategy_id: str) -> None:
        """Put a saved strategy into the form."""
        lab = self._ctx.state.backtest
        doc = lab.saved.get(strategy_id)
        draft = StrategyDraft.from_saved(doc, days=lab.draft.days) if doc else None
        if draft is None:
            lab.notice = ("This strategy nests all/any groups, which the form cannot show: it can be switched on, "
                          "not edited here")
        else:
            lab.draft, lab.notice = draft, f"Loaded “{doc['name']}”" if doc else ""
        self._ctx.state.changed("strategies")

    async def act(self, action: str, strategy_id: str) -> None:
        """A saved strategy's button: load, on, off, drift or delete."""
        if action == "load":
            self.load(strategy_id)
        elif action in ("on", "off"):
            await self.switch(strategy_id, action == "on")
        elif action == "drift":
            await self.drift(strategy_id)
        elif action == "delete":
            await self.delete(strategy_id)

    async def refresh(self) -> None:
        """Read the saved strategies (the live state keeps them current afterwards)."""
        lab = self._ctx.state.backtest
        try:
            lab.saved = {d["id"]: d for d in await self._ctx.services.api.strategies()}
        except ApiError as exc:
            lab.notice = f"Could not read the saved strategies: {exc.message}"
        self._ctx.state.changed("strategies")

    async def _put(self, strategy_id: str, symbol: str, document: dict[str, Any], enabled: bool, done: str) -> None:
        lab = self._ctx.state.backtest
        try:
            doc = await self._ctx.services.api.save_strategy(strategy_id, symbol=symbol, strategy=document,
                                                             enabled=enabled)
            lab.saved[doc["id"]], lab.notice = doc, done
        except ApiError as exc:
            lab.notice = f"Not saved: {exc.message}"
        self._ctx.state.changed("strategies")

    # -- drift ---------------------------------------------------------------------------------------

    async def drift(self, strategy_id: str) -> None:
        """The strategy's live paper trades since it was switched on, beside a backtest of the same period
        on the same market's candles (warmed as the backend runner warms)."""
        state, lab = self._ctx.state, self._ctx.state.backtest
        doc = lab.saved.get(strategy_id)
        if doc is None:
            return
        since = (doc.get("run") or {}).get("since")
        if not since:
            lab.notice = "This strategy has not run on paper yet: switch it on first"
            state.changed("strategies")
            return
        try:
            strategy = parse_strategy(doc["strategy"], check_operand=check_operand)
            step = TIMEFRAME_MS[doc["timeframe"]]
            prefix = f"st-{strategy_id}-"
            orders = [o for o in await self._ctx.services.api.orders("closed")
                      if str(o.get("clientOrderId", "")).startswith(prefix) and o.get("filled")]
            # This run's fills only: switched off and on again, a strategy starts a new period.
            fills = sorted((f for f in fills_from_orders(orders) if f.timestamp_ms >= since),
                           key=lambda f: f.timestamp_ms)
            end = int(self._clock() * 1000)
            start = since - since % step
            candles = await self._history(doc["symbol"], doc["timeframe"], start - WARM_CANDLES * step, end)
            if candles is None or len(candles) < 3:
                raise StrategyError("there is not enough history to backtest this period")
            result = await asyncio.to_thread(backtest, strategy, candles, symbol=doc["symbol"])
            report = drift_report(fills, result, timeframe_ms=step, since_ms=start)
            payload = report.to_json()
            lab.drift = DriftSummary(strategy_id, report.summary(), payload["trades"],
                                     live_trades=len(fills) // 2 + len(fills) % 2,
                                     backtest_trades=sum(1 for t in result.trades if t.entry_ms >= start))
            lab.notice = f"Drift of “{doc['name']}” since it was switched on"
        except (StrategyError, ApiError) as exc:
            lab.notice = f"No drift report: {exc}"
        except Exception as exc:
            log.warning("drift report failed: %s", exc)
            lab.notice = f"No drift report: {exc}"
        state.changed("strategies")


def summarise(result: BacktestResult, symbol: str = "") -> BacktestSummary:
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
        symbol=symbol,
    )
