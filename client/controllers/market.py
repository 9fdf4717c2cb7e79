"""`MarketController`: the session's share of the process's market (`client.hub.MarketHub`) — markets, candle
history at the trader's timeframe, ticks and signals of the watchlist, per-symbol freshness — and the trader's
choices about it (symbols, timeframe, market source, the rules the shared engine runs for this trader).

The chart's scroll-back reads the history store (`services.market.history.CandleStore`, under the app's
state directory), which fills itself from the session's market: the synthetic market's own bars, or the
feed's candles for a live (ccxt, gateway) or replayed one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from client.context import SessionContext
from client.hub import MarketHub, MarketSubscription
from services.auth.devtoken import state_dir
from services.market import (
    TIMEFRAME_MS,
    Candle,
    MarketDataError,
    MarketFeed,
    SteeredFeed,
    StreamingFeed,
    Tick,
    TradeHistory,
    exchange_ids,
)
from services.market.history import CandleSource, CandleStore, FeedSource, SyntheticSource
from services.market.synthetic_feed import SyntheticFeed
from services.signals import Rule, Signal

log = logging.getLogger(__name__)

HISTORY_BARS = 500  # loaded with a symbol (client.state.MAX_BARS)
SCROLL_BACK_BARS = 500  # one page of older candles from the history store
_STORE_LOCKS: dict[tuple[str, str, str], asyncio.Lock] = {}  # the store wants one writer per series
WARM_UP_CHUNK = 1000
RECENT_SIGNALS_MS = 5 * 60_000
FRESHNESS_INTERVAL_S = 1.0
LINK_ALIVE_S = 3.0  # the gateway sends each streamed symbol's candle about once a second while it trades
ROWS_BEFORE_SCROLL = 10  # phone rows taken as on screen until the watchlist's first scroll says how many fit


class MarketController:
    """A `MarketListener` of the hub: `on_tick` runs on the hub's task, once per tick of a watched symbol."""

    def __init__(self, ctx: SessionContext, hub: MarketHub, history_root: Path | None = None) -> None:
        self._ctx = ctx
        self._hub = hub
        self._rows_on_screen: list[str] | None = None  # the watchlist rows in view, from its scroll
        self.subscription: MarketSubscription | None = None
        self._rules: list[Rule] | None = None  # None: the market's default rules (no rule book)
        self._scrolling: set[tuple[str, str]] = set()  # (symbol, timeframe) with an older page on its way
        self.store = CandleStore(history_root or state_dir() / "history")

    @property
    def feed(self) -> MarketFeed | None:
        """The feed the session reads history and tickers from (shared; never closed by the session)."""
        return self.subscription.feed if self.subscription else None

    # -- jobs the session starts ----------------------------------------------------------------
    async def run(self) -> None:
        """Join the market, then history for the watchlist, warm-up (once per process), ticks."""
        state = self._ctx.state
        try:
            sub = await self._hub.join(state.market_source, self)
        except (MarketDataError, ImportError, OSError) as exc:
            self._feed_failed(exc)
            return
        self._adopt(sub)
        await self._watch(list(state.watchlist))

    async def watch_freshness(self) -> None:
        """Once a second, each symbol's "live" / "stale" / "reconnecting", where the feed can tell; with a
        `SteeredFeed` (the gateway) also the link for the badge, and which symbols are on screen (once a
        second at most, so scrolling does not reconnect the stream at every frame)."""
        state = self._ctx.state
        while True:
            await asyncio.sleep(FRESHNESS_INTERVAL_S)
            feed = self.feed
            if isinstance(feed, SteeredFeed) and self.subscription is not None:
                shown = self.on_screen()
                if shown != self.subscription.on_screen:
                    self.subscription.show(shown)
                state.set_market_link(feed.link(sorted(shown)))
            if not isinstance(feed, StreamingFeed):
                continue
            for symbol in state.watchlist:
                with contextlib.suppress(MarketDataError):
                    state.set_feed_status(symbol, feed.status(symbol))

    def catch_up(self) -> asyncio.Future[Any] | None:
        """Before a repaint: the trades the shared feed has due now reach this session's state first."""
        return self.subscription.catch_up() if self.subscription is not None else None

    def on_screen(self) -> frozenset[str]:
        """The selected symbol (its chart and ticket) and the watchlist rows in view."""
        state = self._ctx.state
        rows = self._rows_on_screen
        if rows is None or not set(rows) <= set(state.watchlist):  # not scrolled yet, or the list changed
            # A wider screen shows the whole list; a phone about ten rows until a scroll says how many.
            rows = state.watchlist[:ROWS_BEFORE_SCROLL] if state.breakpoint == "phone" else state.watchlist
        return frozenset([state.selected, *rows])

    def show_rows(self, symbols: list[str]) -> None:
        """The watchlist scrolled: these rows are in view now (and are painted, from the next repaint)."""
        self._rows_on_screen = list(symbols)
        self._ctx.state.changed("rows")

    def resumed(self) -> None:
        """The app came back to the foreground: its socket may have died while it slept, so open a fresh one
        now (resuming by seq) instead of waiting for a ping to time out or a backoff to end. A link that
        delivered in the last few seconds is alive and is kept: on the hosted web app the feed is shared, and
        one trader's tab switch should not reconnect everyone's stream."""
        feed = self.feed
        if isinstance(feed, SteeredFeed):
            link = feed.link(sorted(self.on_screen()))
            if not link.connected or link.age_s is None or link.age_s > LINK_ALIVE_S:
                feed.reconnect()

    def network_changed(self) -> None:
        """Wi-Fi to mobile data or back: the old socket's route is gone, however fresh; reconnect at once."""
        if isinstance(self.feed, SteeredFeed):
            self.feed.reconnect()

    async def load_exchanges(self) -> None:
        """The exchange picker's list; importing ccxt takes about a second, so off the UI loop."""
        self._ctx.state.exchanges = await asyncio.to_thread(exchange_ids)
        self._ctx.state.changed("settings")

    async def aclose(self) -> None:
        """Leave the market: symbols nobody else watches stop streaming."""
        sub, self.subscription = self.subscription, None
        if sub is not None:
            await sub.aclose()

    # -- MarketListener ---------------------------------------------------------------------------
    def on_tick(self, tick: Tick, snapshot: dict[str, float], signals: list[Signal]) -> None:
        state = self._ctx.state
        if signals:
            state.add_signals(signals)
            if state.alerts_enabled:
                signal = signals[-1]
                state.notify(f"{signal.direction.upper()} signal on {signal.symbol}: {signal.rule_name}")
        state.apply_tick(tick, snapshot)

    def on_feed_error(self, error: MarketDataError) -> None:
        self._feed_failed(error)

    # -- the trader's choices -------------------------------------------------------------------
    def use_rules(self, rules: Sequence[Rule] | None) -> None:
        """The trader's rules for the shared engine (None: the market's defaults, shown in the editor)."""
        self._rules = None if rules is None else list(rules)
        if self.subscription is not None:
            self._apply_rules(self.subscription)

    async def set_timeframe(self, timeframe: str) -> None:
        state = self._ctx.state
        if not state.timeframe_available(timeframe):
            return
        state.set_timeframe(timeframe)
        try:
            await self._load_history(list(state.watchlist))
        except MarketDataError as exc:
            state.notify(f"Could not load {timeframe} candles: {exc}", "error")

    def load_older(self) -> None:
        """The chart was panned towards its oldest held candle: fetch the page before it (once at a time)."""
        state = self._ctx.state
        key = (state.selected, state.timeframe)
        if key in self._scrolling or not state.can_scroll_back(state.selected) or self.feed is None:
            return
        self._scrolling.add(key)
        self._ctx.spawn(self._scroll_back(*key), name=f"scroll back {key[0]} {key[1]}")

    async def _scroll_back(self, symbol: str, timeframe: str) -> None:
        state = self._ctx.state
        try:
            held = state.candles.get(symbol)
            if not held or self.feed is None:
                return
            before = held[0].timestamp_ms
            older = await self.older_candles(symbol, timeframe, before)
            state.prepend_history(symbol, timeframe, older)
        except MarketDataError as exc:
            state.notify(f"Could not load older {symbol} {timeframe} candles: {exc}", "error")
        except OSError as exc:  # the cache's disk: full, read-only...
            log.warning("history store: %s", exc)
            state.notify(f"Could not keep older {symbol} candles on this device: {exc.strerror or exc}", "error")
        finally:
            self._scrolling.discard((symbol, timeframe))

    async def older_candles(self, symbol: str, timeframe: str, before_ms: int,
                            limit: int = SCROLL_BACK_BARS) -> list[Candle]:
        """The `limit` bars opening before `before_ms`, oldest first, from the history store (filled first
        from the session's market where the store lacks them)."""
        source = self._history_source()
        frame = TIMEFRAME_MS[timeframe]
        since = before_ms - limit * frame
        lock = _STORE_LOCKS.setdefault((source.name, symbol, timeframe), asyncio.Lock())
        async with lock:
            await self.store.fill(source, symbol, timeframe, since, before_ms)
            rows = await asyncio.to_thread(self.store.page, source.name, symbol, timeframe,
                                           before_ms=before_ms, limit=limit)
        return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
                for r in rows.tolist()]

    def _history_source(self) -> CandleSource:
        feed = self.feed
        if isinstance(feed, SyntheticFeed):
            return SyntheticSource(feed.seed)  # the same pure function of time: no feed calls needed
        return FeedSource(feed, f"feed-{self._ctx.state.market_source}")

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
        self._ctx.spawn(self._watch([symbol]), name=f"watch {symbol}")

    def remove_symbol(self, symbol: str) -> None:
        state = self._ctx.state
        if len(state.watchlist) <= 1:
            state.notify("Keep at least one symbol on the watchlist")
            return
        state.set_watchlist([s for s in state.watchlist if s != symbol])
        self._ctx.save_preferences()
        self._ctx.spawn(self._watch([]), name="unwatch")

    async def switch(self, source: str) -> None:
        """Another market source (replay, or a ccxt exchange): its markets, history and ticks, shared with
        whoever else watches it. If it cannot be reached, the previous source stays and the trader is told."""
        state = self._ctx.state
        try:
            sub = await self._hub.join(source, self)
        except (MarketDataError, ImportError, OSError) as exc:
            state.notify(f"Could not switch to {source}: {exc}", "error")
            return
        await self.aclose()
        state.modes["market"] = sub.mode
        state.market_source = source
        self._adopt(sub)
        if not state.timeframe_available(state.timeframe):
            state.timeframe = "1m"
        kept = [s for s in state.watchlist if s in sub.markets] or list(sub.markets)[:5]
        state.set_watchlist(kept)
        self._ctx.save_preferences()
        state.changed()  # the mode badge and every panel: a full repaint
        state.notify(f"Market data: {sub.mode}", "success")
        await self._watch(list(state.watchlist))

    # -- market → state -------------------------------------------------------------------------
    def _adopt(self, sub: MarketSubscription) -> None:
        state = self._ctx.state
        self.subscription = sub
        state.set_markets(sub.markets)
        state.modes.setdefault("market", sub.mode)
        state.indicator_keys = sub.indicator_keys
        feed = sub.feed
        state.history_span_ms = feed.history_span_ms if isinstance(feed, TradeHistory) else 0
        self._apply_rules(sub)

    def _apply_rules(self, sub: MarketSubscription) -> None:
        if self._rules is None:
            sub.set_rules(sub.default_rules)
            self._ctx.state.set_rules(list(sub.default_rules))
        else:
            sub.set_rules(self._rules)

    def _feed_failed(self, exc: Exception) -> None:
        state = self._ctx.state
        state.notify(f"Market data: {exc}", "error")
        for symbol in state.watchlist:
            state.set_feed_status(symbol, "offline")

    async def _watch(self, new_symbols: list[str]) -> None:
        """History for `new_symbols`, then the whole watchlist from the hub (which warms up a symbol the
        first time anyone watches it); the new symbols' overlay past and recent signals come with it."""
        sub, state = self.subscription, self._ctx.state
        if sub is None:
            return
        try:
            await self._load_history(new_symbols)
        except MarketDataError as exc:
            self._feed_failed(exc)
            return
        # Selected symbol first: its chart is the one on screen.
        for symbol in sorted(new_symbols, key=lambda s: s != state.selected):
            await sub.watch([*sub.symbols, symbol])
            for minute, value in sorted(sub.indicator_history(symbol).items()):
                state.record_indicator(symbol, minute, value)
            state.add_signals(sub.recent_signals(symbol))
        await sub.watch(state.watchlist)
        state.changed()

    async def _load_history(self, symbols: list[str]) -> dict[str, list[Candle]]:
        state, feed = self._ctx.state, self.feed
        history: dict[str, list[Candle]] = {}
        if feed is None:
            return history
        for symbol in symbols:
            history[symbol] = await feed.candles(symbol, state.timeframe, limit=HISTORY_BARS)
            ticker = await feed.ticker(symbol)
            state.set_history(symbol, history[symbol], open_24h=ticker.get("open"))
        return history
