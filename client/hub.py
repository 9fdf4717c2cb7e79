"""`MarketHub`: one market feed and one signal engine per market source for the whole app process, fanned
out to every session watching it, so ten traders cost one feed and one engine, not ten.

Each session joins with a `MarketListener` and gets a `MarketSubscription`: the symbols it watches and the
rules it runs. The shared market streams the union of its subscriptions' symbols through its engine once
and hands each tick, with the engine's snapshot, to the sessions watching that symbol.

Rules stay each trader's own. The engine runs each distinct rule *content* once (its id there is a key of
the content, `rule_key`); a rule fired is delivered only to the sessions that hold a rule with that content,
under their own id and name. Two traders with the same rule share its runner, which is exact: same rule,
same market, same signals. A symbol's warm-up (its past trades through the engine) happens once, when the
first session asks for it; later sessions get its indicator history and its recent signals from the hub.

Cost per tick: the engine once (O(1) + O(log n) per window), one read of the overlay's values, then O(1) per
watching session.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from client.state import INDICATOR_KEY
from client.tasks import TaskOwner
from services.market import Candle, MarketDataError, MarketFeed, PacedFeed, SteeredFeed, Tick, TradeHistory
from services.signals import Rule, Signal, SignalEngine

log = logging.getLogger(__name__)

WARM_UP_BARS = 120  # 1m bars of history run through the engine when a symbol is first watched
WARM_UP_CHUNK = 1000  # trades between yields: ~20 ms of work at a time, the UI loop stays responsive
RECENT_SIGNALS_MS = 5 * 60_000  # older signals from the warm-up are old news
INDICATOR_MS = 60_000  # the chart's overlay keeps one engine value a minute
LINGER_S = 30.0  # a market nobody watches is kept this long (a reload comes straight back), then closed


class MarketListener(Protocol):
    """What a session gives the hub: called on the hub's task, so it must be quick and must not block."""

    def on_tick(self, tick: Tick, snapshot: dict[str, float], signals: list[Signal]) -> None:
        """`snapshot`: the engine's trend values for the symbol (the chart overlay's `INDICATOR_KEY` among them)."""

    def on_feed_error(self, error: MarketDataError) -> None: ...


def rule_key(rule: Rule) -> str:
    """What a rule computes, without whose it is: its id in the shared engine."""
    content = {k: v for k, v in rule.to_dict().items() if k not in ("id", "name", "enabled")}
    return "r-" + hashlib.sha1(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


class MarketSubscription:
    """One session's share of a market: a context for `feed` reads (candles, tickers), its symbols and rules."""

    def __init__(self, market: SharedMarket, listener: MarketListener) -> None:
        self._market = market
        self.listener = listener
        self.symbols: frozenset[str] = frozenset()
        self.on_screen: frozenset[str] | None = None  # None: all its symbols count as on screen
        self.rules: dict[str, list[Rule]] = {}  # rule key → this trader's rules with that content
        self.closed = False

    @property
    def source(self) -> str:
        return self._market.source

    @property
    def feed(self) -> MarketFeed:
        """For the session's own reads (history, tickers, freshness); never for its own tick stream."""
        return self._market.feed

    @property
    def markets(self) -> dict[str, dict[str, Any]]:
        return self._market.markets

    @property
    def mode(self) -> str:
        """The mode badge's words for this market (the feed's own, or why another one stands in)."""
        return self._market.label

    @property
    def default_rules(self) -> tuple[Rule, ...]:
        return self._market.default_rules

    @property
    def indicator_keys(self) -> tuple[str, ...]:
        return tuple(self._market.engine.keys())

    async def watch(self, symbols: Iterable[str]) -> None:
        """Watch exactly `symbols`; returns once each new one is warmed up (its ticks follow)."""
        if not self.closed:
            self.symbols = frozenset(symbols)
            await self._market.refresh(warm=self.symbols)

    def catch_up(self) -> asyncio.Future[Any] | None:
        """Before a repaint: the shared feed hands over the trades due now, so the repaint shows them (a
        `PacedFeed`; None when there is nothing to wait for, as with a feed that pushes each trade)."""
        feed = self._market.feed
        return feed.hurry() if isinstance(feed, PacedFeed) and not self.closed else None

    def show(self, symbols: Iterable[str]) -> None:
        """The symbols on this session's screen: a `SteeredFeed` streams every trade only for those of all its
        sessions (the others get their candle about once a second)."""
        self.on_screen = frozenset(symbols)
        self._market.update_on_screen()

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """This trader's rules (the enabled ones run); their signals come back under their own ids."""
        by_key: dict[str, list[Rule]] = {}
        for rule in rules:
            if rule.enabled:
                by_key.setdefault(rule_key(rule), []).append(rule)
        self.rules = by_key
        self._market.update_rules()

    def indicator_history(self, symbol: str) -> dict[int, float]:
        """The chart overlay's past (minute → engine value) as the hub has it."""
        return dict(self._market.indicator.get(symbol, {}))

    def recent_signals(self, symbol: str) -> list[Signal]:
        return self.own([s for s in self._market.recent.get(symbol, ()) if s.timestamp_ms >= _now_ms() - RECENT_SIGNALS_MS])

    def own(self, signals: list[Signal]) -> list[Signal]:
        """The shared engine's signals that are this trader's, under this trader's rule ids and names."""
        mine = []
        for signal in signals:
            for rule in self.rules.get(signal.rule_id, ()):
                mine.append(dataclasses.replace(signal, rule_id=rule.id, rule_name=rule.name))
        return mine

    async def aclose(self) -> None:
        """Leave: the symbols only this session watched stop streaming (and the feed, if nobody is left)."""
        if not self.closed:
            self.closed = True
            await self._market.leave(self)


class SharedMarket:
    """One source's feed and engine, the subscriptions to it, and the one tick stream they share."""

    def __init__(self, source: str, feed: MarketFeed, engine: SignalEngine, *, label: str | None = None,
                 on_empty: Callable[[SharedMarket], None] = lambda _market: None) -> None:
        self.source = source
        self.feed = feed
        self.label = label or feed.mode
        self.engine = engine
        # What the engine was made with: the rules of a session without a rule book. From here on the
        # engine runs the union of its subscriptions' rules.
        self.default_rules = tuple(engine.rules)
        engine.set_rules(())
        self.markets: dict[str, dict[str, Any]] = {}
        self.subscriptions: set[MarketSubscription] = set()
        self.indicator: dict[str, dict[int, float]] = {}
        self.recent: dict[str, deque[Signal]] = {}
        self._on_empty = on_empty
        self._tasks = TaskOwner(f"market {source}", isolated=True)  # outlive the session that starts them
        self._warm: dict[str, asyncio.Task[None]] = {}
        self._streamed: frozenset[str] = frozenset()
        self._stream: asyncio.Task[None] | None = None
        self._watchers: dict[str, list[MarketSubscription]] = {}
        self._refreshing = asyncio.Lock()

    async def open(self) -> None:
        self.markets = await self.feed.markets()

    def counts(self) -> dict[str, int]:
        return {"subscriptions": len(self.subscriptions), "symbols": len(self._streamed), "tasks": len(self._tasks)}

    # -- subscriptions --------------------------------------------------------------------------
    async def refresh(self, *, warm: Iterable[str] = ()) -> None:
        """Warm up any symbol in `warm` not yet warm, then stream the union of every subscription's symbols."""
        for symbol in warm:
            if symbol not in self._warm:
                task = self._tasks.spawn(self._warm_up(symbol), name=f"warm-up {symbol}")
                if task is None:
                    return  # closing
                self._warm[symbol] = task
        await asyncio.gather(*(asyncio.shield(self._warm[s]) for s in warm if s in self._warm))
        async with self._refreshing:
            self._route()
            wanted = frozenset().union(*(s.symbols for s in self.subscriptions))
            if wanted == self._streamed and (self._stream is not None or not wanted):
                return
            if self._stream is not None:
                self._stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._stream
                self._stream = None
            self._streamed = wanted
            if wanted:
                self._stream = self._tasks.spawn(self._run(sorted(wanted)), name="ticks")

    def _route(self) -> None:
        watchers: dict[str, list[MarketSubscription]] = {}
        for sub in self.subscriptions:
            for symbol in sub.symbols:
                watchers.setdefault(symbol, []).append(sub)
        self._watchers = watchers

    def update_on_screen(self) -> None:
        if isinstance(self.feed, SteeredFeed):
            shown = frozenset().union(*(s.symbols if s.on_screen is None else s.on_screen
                                        for s in self.subscriptions))
            self.feed.set_visible(sorted(shown))

    def update_rules(self) -> None:
        union: dict[str, Rule] = {}
        for sub in self.subscriptions:
            for key, rules in sub.rules.items():
                union.setdefault(key, rules[0].with_changes(id=key, name=key))
        self.engine.set_rules(union.values())  # an unchanged rule keeps its runner (edge, cool-down)

    async def leave(self, sub: MarketSubscription) -> None:
        self.subscriptions.discard(sub)
        self.update_rules()
        self.update_on_screen()
        await self.refresh()
        if not self.subscriptions:
            self._on_empty(self)

    async def aclose(self) -> None:
        await self._tasks.aclose()
        self._stream = None
        with contextlib.suppress(Exception):
            await self.feed.aclose()

    # -- feed → engine → sessions ---------------------------------------------------------------
    async def _run(self, symbols: list[str]) -> None:
        engine, indicator = self.engine, self.indicator
        readers: dict[str, Callable[[], dict[str, float]]] = {}  # per symbol: only the overlay's group
        try:
            async for tick in self.feed.ticks(symbols):
                symbol = tick.symbol
                fired = engine.on_tick(tick)
                read = readers.get(symbol) or readers.setdefault(symbol, engine.reader(symbol, (INDICATOR_KEY,)) or dict)
                snapshot = read()  # a full snapshot (quantiles, flow) cost more than the engine's own tick
                value = snapshot.get(INDICATOR_KEY)
                if value is not None and value == value:  # not NaN (before warm-up)
                    indicator.setdefault(symbol, {})[tick.timestamp_ms - tick.timestamp_ms % INDICATOR_MS] = value
                if fired:
                    self._remember(symbol, fired)
                for sub in self._watchers.get(symbol, ()):  # re-read: a session may have come or gone
                    try:
                        sub.listener.on_tick(tick, snapshot, sub.own(fired) if fired else [])
                    except Exception:
                        log.exception("a session's tick handler failed")  # the others still get theirs
        except MarketDataError as exc:
            self._streamed = frozenset()
            self._stream = None
            for sub in list(self.subscriptions):
                with contextlib.suppress(Exception):
                    sub.listener.on_feed_error(exc)

    def _remember(self, symbol: str, fired: list[Signal]) -> None:
        kept = self.recent.setdefault(symbol, deque())
        kept.extend(fired)
        horizon = fired[-1].timestamp_ms - RECENT_SIGNALS_MS
        while kept and kept[0].timestamp_ms < horizon:
            kept.popleft()

    async def _warm_up(self, symbol: str) -> None:
        """Run the symbol's history through the engine so indicators and the chart's overlay have a past:
        its recorded trades where the feed has them (replay, synthetic), else bar closes."""
        engine, feed = self.engine, self.feed
        try:
            candles: list[Candle] = await feed.candles(symbol, "1m", limit=WARM_UP_BARS)
        except MarketDataError as exc:
            log.warning("no history to warm up %s: %s", symbol, exc)
            return
        if not candles:
            return
        now_ms = _now_ms()
        ticks = (feed.trades_between(symbol, candles[0].timestamp_ms, now_ms) if isinstance(feed, TradeHistory)
                 else [Tick(symbol, bar.timestamp_ms, bar.close, bar.volume) for bar in candles])
        series = self.indicator.setdefault(symbol, {})
        recent: list[Signal] = []
        for i, tick in enumerate(ticks):
            if i % WARM_UP_CHUNK == 0:
                await asyncio.sleep(0)
            fired = engine.on_tick(tick)
            if fired and tick.timestamp_ms >= now_ms - RECENT_SIGNALS_MS:
                recent.extend(fired)
            minute = tick.timestamp_ms - tick.timestamp_ms % INDICATOR_MS
            if i + 1 == len(ticks) or ticks[i + 1].timestamp_ms - minute >= INDICATOR_MS:
                value = engine.snapshot(symbol).get(INDICATOR_KEY)  # one snapshot a minute, not a trade
                if value is not None:
                    series[minute] = value
        if recent:
            self._remember(symbol, recent)


class MarketHub:
    """The process's shared markets, one per source, opened on first join and closed `linger_s` after the
    last subscription leaves. `open_feed(source)` gives the feed and its mode badge's words. An async
    context manager."""

    def __init__(self, open_feed: Callable[[str], tuple[MarketFeed, str]], *,
                 engine: Callable[[], SignalEngine] = SignalEngine, linger_s: float = LINGER_S) -> None:
        self._open_feed = open_feed
        self._engine = engine
        self._linger_s = linger_s
        self._markets: dict[str, SharedMarket] = {}
        self._opening: dict[str, asyncio.Future[SharedMarket]] = {}
        self._idle: dict[str, asyncio.Task[None] | None] = {}  # markets nobody watches, closing soon
        self._tasks = TaskOwner("hub", isolated=True)

    @classmethod
    def serving(cls, feed: MarketFeed, engine: SignalEngine | None = None, *, source: str = "replay",
                speed: float = 1.0) -> MarketHub:
        """A hub whose `source` is `feed` (already open; closed with the hub) and `engine`; other sources
        open through `services.market.open_feed`. For one session alone: a test, a benchmark."""
        from services.market import open_feed

        def opened(spec: str) -> tuple[MarketFeed, str]:
            other = open_feed(spec, speed=speed)
            return other, other.mode

        hub = cls(opened, linger_s=0.0)
        hub._markets[source] = SharedMarket(source, feed, engine or SignalEngine(), on_empty=hub._emptied)
        return hub

    async def __aenter__(self) -> MarketHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def counts(self) -> dict[str, int]:
        """Feeds and engines open (one each per shared market), subscriptions over all."""
        return {"markets": len(self._markets),
                "market_subscriptions": sum(len(m.subscriptions) for m in self._markets.values())}

    async def join(self, source: str, listener: MarketListener) -> MarketSubscription:
        """Subscribe to `source`'s market (opening it if nobody has); MarketDataError (or ImportError,
        OSError from opening) if it cannot be reached."""
        market = await self._market(source)
        idle = self._idle.pop(source, None)
        if idle is not None:
            idle.cancel()
        sub = MarketSubscription(market, listener)
        market.subscriptions.add(sub)
        return sub

    def _emptied(self, market: SharedMarket) -> None:
        if self._markets.get(market.source) is market and market.source not in self._idle:
            self._idle[market.source] = self._tasks.spawn(self._close_idle(market.source),
                                                          name=f"linger {market.source}")

    async def _market(self, source: str) -> SharedMarket:
        if source in self._markets:
            return self._markets[source]
        if source not in self._opening:
            # In a context of its own, like the market's tasks: what the feed starts must not hold this session.
            self._opening[source] = asyncio.get_running_loop().create_task(self._open(source),
                                                                           context=contextvars.Context())
        try:
            return await asyncio.shield(self._opening[source])
        finally:
            self._opening.pop(source, None)

    async def _open(self, source: str) -> SharedMarket:
        feed, label = self._open_feed(source)
        market = SharedMarket(source, feed, self._engine(), label=label, on_empty=self._emptied)
        try:
            await market.open()
        except BaseException:
            with contextlib.suppress(Exception):
                await feed.aclose()
            raise
        self._markets[source] = market
        return market

    async def _close_idle(self, source: str) -> None:
        await asyncio.sleep(self._linger_s)
        self._idle.pop(source, None)
        market = self._markets.get(source)
        if market is not None and not market.subscriptions:
            del self._markets[source]
            await market.aclose()

    async def aclose(self) -> None:
        await self._tasks.aclose()
        markets, self._markets = list(self._markets.values()), {}
        for market in markets:
            await market.aclose()


def _now_ms() -> int:
    return int(time.time() * 1000)
