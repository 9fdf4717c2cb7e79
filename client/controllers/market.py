"""`MarketController`: the session's market data — markets, candle history, the engine's warm-up, one tick
stream for the watchlist, per-symbol freshness — and the trader's choices about it (symbols, timeframe,
market source)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from client.context import SessionContext
from client.state import INDICATOR_KEY
from services.market import (
    Candle,
    MarketDataError,
    MarketFeed,
    StreamingFeed,
    Tick,
    TradeHistory,
    exchange_ids,
)

HISTORY_BARS = 500  # what the chart can pan through (client.state.MAX_BARS)
WARM_UP_CHUNK = 1000
RECENT_SIGNALS_MS = 5 * 60_000
FRESHNESS_INTERVAL_S = 1.0


class MarketController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx
        self.feed: MarketFeed = ctx.services.feed  # replaced when the trader picks another market source
        self._stream: asyncio.Task[Any] | None = None

    # -- jobs the session starts ----------------------------------------------------------------
    async def run(self) -> None:
        """Markets, then history and warm-up, then the watchlist's tick stream (its own task)."""
        state = self._ctx.state
        try:
            state.set_markets(await self.feed.markets())
        except MarketDataError as exc:
            self._feed_failed(exc)
            return
        self._note_history_span()
        self._stream = self._ctx.spawn(self._history_then_stream(list(state.watchlist)), name="ticks")

    async def watch_freshness(self) -> None:
        """Once a second, each symbol's "live" / "stale" / "reconnecting", where the feed can tell."""
        state = self._ctx.state
        while True:
            await asyncio.sleep(FRESHNESS_INTERVAL_S)
            feed = self.feed
            if not isinstance(feed, StreamingFeed):
                continue
            for symbol in state.watchlist:
                with contextlib.suppress(MarketDataError):
                    state.set_feed_status(symbol, feed.status(symbol))

    async def load_exchanges(self) -> None:
        """The exchange picker's list; importing ccxt takes about a second, so off the UI loop."""
        self._ctx.state.exchanges = await asyncio.to_thread(exchange_ids)
        self._ctx.state.changed("settings")

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.feed.aclose()

    # -- the trader's choices -------------------------------------------------------------------
    async def set_timeframe(self, timeframe: str) -> None:
        state = self._ctx.state
        if not state.timeframe_available(timeframe):
            return
        state.set_timeframe(timeframe)
        try:
            await self._load_history(list(state.watchlist))
        except MarketDataError as exc:
            state.notify(f"Could not load {timeframe} candles: {exc}", "error")

    def add_symbol(self, symbol: str) -> None:
        state = self._ctx.state
        symbol = symbol.strip().upper()
        if symbol in state.watchlist:
            state.notify(f"{symbol} is already on your watchlist")
            return
        if state.markets and symbol not in state.markets:
            state.notify(f"Unknown symbol {symbol} on this market", "error")
            return
        state.set_watchlist([*state.watchlist, symbol])
        state.search_symbol("")
        self._ctx.save_preferences()
        self._restart_stream([symbol])

    def remove_symbol(self, symbol: str) -> None:
        state = self._ctx.state
        if len(state.watchlist) <= 1:
            state.notify("Keep at least one symbol on the watchlist")
            return
        state.set_watchlist([s for s in state.watchlist if s != symbol])
        self._ctx.save_preferences()
        self._restart_stream([])

    async def switch(self, source: str) -> None:
        """Another market source (replay, or a ccxt exchange): new feed, its markets, history, stream.
        If it cannot be reached, the previous source stays and the trader is told why."""
        from services.market import open_feed

        state = self._ctx.state
        feed: MarketFeed | None = None
        try:
            feed = open_feed(source, speed=self._ctx.services.replay_speed)
            markets = await feed.markets()
        except (MarketDataError, ImportError, OSError) as exc:
            if feed is not None:
                with contextlib.suppress(Exception):
                    await feed.aclose()  # release its sockets: the old source stays
            state.notify(f"Could not switch to {source}: {exc}", "error")
            return
        if self._stream:
            self._stream.cancel()
        old, self.feed = self.feed, feed
        with contextlib.suppress(Exception):
            await old.aclose()
        state.modes["market"] = feed.mode
        state.market_source = source
        self._note_history_span()
        if not state.timeframe_available(state.timeframe):
            state.timeframe = "1m"
        state.set_markets(markets)
        kept = [s for s in state.watchlist if s in markets] or list(markets)[:5]
        state.set_watchlist(kept)
        self._ctx.save_preferences()
        state.changed()  # the mode badge and every panel: a full repaint
        state.notify(f"Market data: {feed.mode}", "success")
        self._stream = self._ctx.spawn(self._history_then_stream(list(state.watchlist)), name="ticks")

    # -- feed → engine → state ------------------------------------------------------------------
    def _note_history_span(self) -> None:
        feed = self.feed
        self._ctx.state.history_span_ms = feed.history_span_ms if isinstance(feed, TradeHistory) else 0

    def _feed_failed(self, exc: Exception) -> None:
        state = self._ctx.state
        state.notify(f"Market data: {exc}", "error")
        for symbol in state.watchlist:
            state.set_feed_status(symbol, "offline")

    def _restart_stream(self, new_symbols: list[str]) -> None:
        if self._stream:
            self._stream.cancel()
        self._stream = self._ctx.spawn(self._history_then_stream(new_symbols), name="ticks")

    async def _load_history(self, symbols: list[str]) -> dict[str, list[Candle]]:
        state, feed = self._ctx.state, self.feed
        history = {}
        for symbol in symbols:
            history[symbol] = await feed.candles(symbol, state.timeframe, limit=HISTORY_BARS)
            ticker = await feed.ticker(symbol)
            state.set_history(symbol, history[symbol], open_24h=ticker.get("open"))
        return history

    async def _history_then_stream(self, new_symbols: list[str]) -> None:
        """History and engine warm-up for `new_symbols`, then one tick stream for the whole watchlist."""
        feed, engine, state = self.feed, self._ctx.services.engine, self._ctx.state
        try:
            history = await self._load_history(new_symbols)
            # Selected symbol first: its chart is the one on screen.
            for symbol in sorted(new_symbols, key=lambda s: s != state.selected):
                await self._warm_up(symbol, history[symbol])
            async for tick in feed.ticks(list(state.watchlist)):
                fired = engine.on_tick(tick)
                if fired:
                    state.add_signals(fired)
                    if state.alerts_enabled:
                        signal = fired[-1]
                        state.notify(f"{signal.direction.upper()} signal on {signal.symbol}: {signal.rule_name}")
                state.apply_tick(tick, engine.snapshot(tick.symbol))
        except MarketDataError as exc:
            self._feed_failed(exc)

    async def _warm_up(self, symbol: str, candles: list[Candle]) -> None:
        """Run the history through the engine so the chart's indicator has a past. Uses the recorded
        trades where the feed has them (replay), else bar closes. Signals older than a few minutes are
        old news: not shown."""
        engine, state, feed = self._ctx.services.engine, self._ctx.state, self.feed
        if not candles:
            return
        now_ms = int(time.time() * 1000)
        ticks = (feed.trades_between(symbol, candles[0].timestamp_ms, now_ms) if isinstance(feed, TradeHistory)
                 else [Tick(symbol, bar.timestamp_ms, bar.close, bar.volume) for bar in candles])
        minute_ms = 60_000
        recent: list[Any] = []
        for i, tick in enumerate(ticks):
            if i % WARM_UP_CHUNK == 0:
                await asyncio.sleep(0)  # ~20 ms of work at a time: the UI stays responsive
            fired = engine.on_tick(tick)
            if fired and tick.timestamp_ms >= now_ms - RECENT_SIGNALS_MS:
                recent.extend(fired)
            minute = tick.timestamp_ms - tick.timestamp_ms % minute_ms
            if i + 1 == len(ticks) or ticks[i + 1].timestamp_ms - minute >= minute_ms:
                value = engine.snapshot(symbol).get(INDICATOR_KEY)  # one snapshot a minute, not a trade
                if value is not None:
                    state.record_indicator(symbol, tick.timestamp_ms, value)
        state.add_signals(recent)
        state.changed()
