"""`SyntheticFeed`: the synthetic market (`synthetic.py`) on the wall clock — the app's default market.

A trade has happened once the clock has passed its timestamp, so every process with the same seed (the app,
the backend's paper broker and alert watcher) sees the same trade at the same moment without talking. The
forming bar aggregates the trades already made; closed bars are the market's candles, which equal their trades.
Always labelled "Simulated market".
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from services.market.freshness import FeedStatus
from services.market.markets import decimals
from services.market.pacing import HandOvers, wake_delay_s
from services.market.quotes import BookTop
from services.market.synthetic import (
    DEFAULT_SEED,
    MINUTE_MS,
    ORIGIN_MS,
    TRADE_IDS_PER_MINUTE,
    SyntheticMarket,
    raw_bits,
    stream_key,
    timeframe_ms,
    to_normal,
    to_uniform,
)
from services.market.types import Candle, MarketDataError, Tick

_MAX_CATCH_UP_MS = 60_000  # after a longer pause, skip ahead rather than flood consumers with old trades
_DAY_MINUTES = 1440


class SyntheticFeed:
    """A `StreamingFeed` over `SyntheticMarket(seed)`, paced by `clock` (seconds since the epoch).

    `batch_s`: a tick stream wakes at most once per this long and hands over every trade due by then
    (0: each trade at its own millisecond). See `services.market.sources.FEED_BATCH_S`.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        batch_s: float = 0.0,
    ) -> None:
        self.market = SyntheticMarket(seed)
        self.seed = self.market.seed
        self._clock = clock
        self._sleep = sleep
        self._batch_s = batch_s
        self._hand_overs = HandOvers(sleep)
        self._closed = False
        # symbol → (minute, open, high, low, volume, quote volume) of the 1,439 closed minutes before it
        self._day_stats: dict[str, tuple[int, float, float, float, float, float]] = {}
        self._book_key = {s: stream_key(self.seed, s, "book") for s in self.market.symbols}
        # symbol → (from ms, until ms, the ticker between them): see `ticker_now`
        self._tickers: dict[str, tuple[int, int, dict[str, Any]]] = {}

    # -- context manager -------------------------------------------------------------------------------
    async def __aenter__(self) -> SyntheticFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Ends every stream at its next wake-up; the synthetic market holds no socket, file or task."""
        self._closed = True

    # -- MarketFeed ------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "Simulated market" if self.seed == DEFAULT_SEED else f"Simulated market · seed {self.seed}"

    async def markets(self) -> dict[str, dict[str, Any]]:
        return self.market_table()

    def market_table(self) -> dict[str, dict[str, Any]]:
        """Symbol → ccxt market structure (copies), at once."""
        return {s: self.market.market(s) for s in self.market.symbols}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        return self.ticker_now(symbol)

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        """Like `candles_at`; a long span (200 daily bars are 288,000 minutes) is computed in a worker thread
        so the event loop never waits on it."""
        if timeframe_ms(timeframe) * max(limit, 0) <= 2 * 86_400_000:
            return self.candles_at(symbol, timeframe, since_ms=since_ms, limit=limit)
        return await asyncio.to_thread(self.candles_at, symbol, timeframe, since_ms=since_ms, limit=limit)

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Trades of `symbols` as the clock passes them, merged in time order, until closed."""
        return self._stream(self._chosen(symbols))

    # -- latest-value streams (StreamingFeed) ------------------------------------------------------------
    def tickers(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[dict[str, Any]]:
        chosen = self._chosen(symbols)
        return self._periodic(lambda: [self.ticker_now(s) for s in chosen], interval_s)

    def book_tops(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[BookTop]:
        chosen = self._chosen(symbols)

        def tops() -> list[BookTop]:
            out = []
            for symbol in chosen:
                book = self.order_book(symbol, limit=1)
                (bid, bid_amount), (ask, ask_amount) = book["bids"][0], book["asks"][0]
                out.append(BookTop(symbol, book["timestamp"], bid, bid_amount, ask, ask_amount))
            return out

        return self._periodic(tops, interval_s)

    def candle_updates(self, symbol: str, timeframe: str = "1m") -> AsyncIterator[Candle]:
        """The forming bar now and after every trade of `symbol`; the closed bar first when a new one opens."""
        timeframe_ms(timeframe)
        self.market.check(symbol)
        return self._candle_stream(symbol, timeframe)

    # -- freshness ---------------------------------------------------------------------------------------
    def last_tick_ms(self, symbol: str) -> int | None:
        now = self._now_ms()
        return self._last_trade(symbol, now)[0]

    def status(self, symbol: str) -> FeedStatus:
        """Always "live": the market is computed here, it cannot stall or drop."""
        self.market.check(symbol)
        return "live"

    # -- deterministic queries (the backend's paper broker and alert watcher, tests) --------------------
    def price_at(self, symbol: str, timestamp_ms: int) -> float:
        """Price of the last trade at or before `timestamp_ms`: the same in every process."""
        return self._last_trade(symbol, int(timestamp_ms))[1]

    def trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[Tick]:
        """Trades with `since_ms <= timestamp_ms < until_ms`, oldest first."""
        return [tick for _, tick in self.market.numbered_trades(symbol, since_ms, until_ms)]

    def numbered_trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, Tick]]:
        """Like `trades_between`, each with its trade id (rising with time, the same in every process)."""
        return self.market.numbered_trades(symbol, since_ms, until_ms)

    def candles_at(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        """Bars up to now, oldest first, the last one still forming (made of the trades already made)."""
        frame = timeframe_ms(timeframe)
        self.market.check(symbol)
        if limit <= 0:
            return []
        now = self._now_ms()
        current = now // frame * frame
        origin = -(-ORIGIN_MS // frame) * frame
        first = current - (limit - 1) * frame if since_ms is None else -(-int(since_ms) // frame) * frame
        first = max(first, origin)
        last = min(current, first + (limit - 1) * frame)
        if last < first:
            return []
        closed = self.market.candles(symbol, timeframe, first, min(last + frame, current))
        out = [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in closed]
        if last == current:
            out.append(self._forming(symbol, current, now))
        return out

    def ticker_now(self, symbol: str) -> dict[str, Any]:
        """ccxt ticker at the clock's now: open, high, low and volumes over the last 24 h of trades.

        A function of (second, last trade) alone (the book is redrawn once a second, the forming bar and
        the day's figures move with trades and minutes), so it is computed once until the next trade or
        second: the paper broker asks for it on every order, hundreds of times a second, between two
        trades. A clock that goes back (a test's) computes it again."""
        now = self._now_ms()
        cached = self._tickers.get(symbol)
        if cached is not None and cached[0] <= now < cached[1]:
            ticker = cached[2]
        else:
            # Valid from now until the next trade or the next second, whichever comes first.
            until = min(self._next_trade_ms(symbol, now + 1), (now // 1000 + 1) * 1000)
            ticker = self._ticker_at(symbol, now)
            self._tickers[symbol] = (now, until, ticker)
        return {**ticker, "info": dict(ticker["info"])}  # the caller's copy

    def _ticker_at(self, symbol: str, now: int) -> dict[str, Any]:
        current = now // MINUTE_MS * MINUTE_MS
        forming = self._forming(symbol, current, now)
        stats = self._day_stats.get(symbol)
        if stats is None or stats[0] != current:  # the closed minutes change once a minute: computed once
            day = self.market.candles(symbol, "1m", current - (_DAY_MINUTES - 1) * MINUTE_MS, current)
            if len(day):
                typical = (day[:, 2] + day[:, 3] + day[:, 4]) / 3
                stats = (current, float(day[0, 1]), float(day[:, 2].max()), float(day[:, 3].min()),
                         float(day[:, 5].sum()), float((typical * day[:, 5]).sum()))
            else:  # the market's first minute
                stats = (current, forming.open, forming.high, forming.low, 0.0, 0.0)
            self._day_stats[symbol] = stats
        _, open_, high, low, volume, quote = stats
        high, low = max(high, forming.high), min(low, forming.low)
        volume += forming.volume
        quote += forming.volume * forming.close
        timestamp, last = self._last_trade(symbol, now)
        book = self.order_book(symbol, limit=1)
        step = self.market.steps(symbol)[1]
        return {
            "symbol": symbol,
            "timestamp": timestamp,
            "datetime": _iso(timestamp),
            "high": high,
            "low": low,
            "bid": book["bids"][0][0],
            "bidVolume": book["bids"][0][1],
            "ask": book["asks"][0][0],
            "askVolume": book["asks"][0][1],
            "vwap": quote / volume if volume else None,
            "open": open_,
            "close": last,
            "last": last,
            "previousClose": None,
            "change": last - open_,
            "percentage": (last - open_) / open_ * 100 if open_ else None,
            "average": (last + open_) / 2,
            "baseVolume": round(volume, decimals(step)),
            "quoteVolume": quote,
            "info": {"window_ms": 86_400_000, "source": "synthetic", "seed": self.seed},
        }

    def order_book(self, symbol: str, limit: int = 10) -> dict[str, Any]:
        """A ccxt order book around the last trade (bid <= last <= ask), the same for a whole second."""
        now = self._now_ms()
        _, last, last_side_buy = self._last_trade_side(symbol, now)
        tick, step = self.market.steps(symbol)
        second = now // 1000
        limit = max(1, int(limit))
        # One draw of 4·limit uniforms (small numpy calls cost more than the numbers in them).
        u = to_uniform(raw_bits(self._book_key[symbol], second, 4 * limit))
        # Ticks between levels: geometric, mostly 1 (P(k) = 0.6 · 0.4^(k-1)).
        gaps = 1 + np.floor(np.log(u[: 2 * limit]) / math.log(0.4)).reshape(2, limit)
        gaps[:, 0] = 0
        # The last trade took the ask (a buy) or the bid (a sell): that side sits at it, the other a tick off.
        best_bid = last - (tick if last_side_buy else 0.0)
        best_ask = last + (0.0 if last_side_buy else tick)
        notional = 200.0  # quote currency a level, typically (a lognormal spread around it)
        size_z = to_normal(u[2 * limit: 4 * limit]).reshape(2, limit)
        sizes = np.maximum(np.round(np.exp(size_z) * notional / max(last, tick) / step), 1) * step
        bids = np.round(best_bid - np.cumsum(gaps[0]) * tick, decimals(tick))
        asks = np.round(best_ask + np.cumsum(gaps[1]) * tick, decimals(tick))
        sizes = np.round(sizes, decimals(step))
        return {
            "symbol": symbol,
            "bids": [[float(p), float(a)] for p, a in zip(bids, sizes[0], strict=True) if p > 0],
            "asks": [[float(p), float(a)] for p, a in zip(asks, sizes[1], strict=True)],
            "timestamp": now,
            "datetime": _iso(now),
            "nonce": None,
        }

    def recent_trades(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]:
        """The last `limit` trades up to now as ccxt trade structures, oldest first."""
        now = self._now_ms()
        limit = max(0, int(limit))
        found: list[tuple[int, Tick]] = []
        minute = now // MINUTE_MS
        while len(found) < limit and minute * MINUTE_MS >= ORIGIN_MS:
            found = self.market.numbered_trades(symbol, minute * MINUTE_MS, now + 1)
            minute -= 1
        return [_trade_dict(i, t) for i, t in found[-limit:]] if limit else []

    # -- internals -------------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)

    def _chosen(self, symbols: list[str]) -> list[str]:
        chosen = list(dict.fromkeys(symbols))
        if not chosen:
            raise MarketDataError("Pick at least one symbol to stream.")
        for symbol in chosen:
            self.market.check(symbol)
        return chosen

    def _last_trade(self, symbol: str, at_ms: int) -> tuple[int, float]:
        """(timestamp, price) of the last trade at or before `at_ms`."""
        ts, price, _ = self._last_trade_side(symbol, at_ms)
        return ts, price

    def _last_trade_side(self, symbol: str, at_ms: int) -> tuple[int, float, bool]:
        """(timestamp, price, taker bought) of the last trade at or before `at_ms`."""
        minute = at_ms // MINUTE_MS
        while True:
            ts, price, _, is_buy = self.market.minute_trades(symbol, minute)
            i = int(np.searchsorted(ts, at_ms, side="right"))
            if i:
                return int(ts[i - 1]), float(price[i - 1]), bool(is_buy[i - 1])
            minute -= 1  # no trade yet this minute: the previous minute's last (its close)

    def _forming(self, symbol: str, open_ms: int, now: int) -> Candle:
        """The bar opening at `open_ms` made of the minutes closed so far and the trades made this minute."""
        current_minute = now // MINUTE_MS * MINUTE_MS
        closed = self.market.candles(symbol, "1m", open_ms, current_minute) if current_minute > open_ms else None
        ts, price, amount, _ = self.market.minute_trades(symbol, now // MINUTE_MS)
        made = int(np.searchsorted(ts, now, side="right"))
        prev_close = float(closed[-1, 4]) if closed is not None and len(closed) else self._last_trade(symbol, current_minute - 1)[1]
        if closed is not None and len(closed):
            o, h, lo, v = float(closed[0, 1]), float(closed[:, 2].max()), float(closed[:, 3].min()), float(closed[:, 5].sum())
        else:
            o, h, lo, v = prev_close, prev_close, prev_close, 0.0
        c = prev_close
        if made:
            p = price[:made]
            h, lo, c = max(h, float(p.max())), min(lo, float(p.min())), float(p[-1])
            v += float(amount[:made].sum())
        step = self.market.steps(symbol)[1]
        return Candle(open_ms, o, h, lo, c, round(v, decimals(step)))

    async def _periodic(self, snapshot: Callable[[], list[Any]], interval_s: float) -> AsyncIterator[Any]:
        while not self._closed:
            for item in snapshot():
                yield item
            await self._sleep(interval_s)

    async def _candle_stream(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        frame = timeframe_ms(timeframe)
        current = self.candles_at(symbol, timeframe, limit=1)[-1]
        yield current
        async with contextlib.aclosing(self._stream([symbol])) as ticks:
            async for tick in ticks:
                open_ms = tick.timestamp_ms // frame * frame
                if open_ms != current.timestamp_ms:
                    closed = self.market.candles(symbol, timeframe, current.timestamp_ms, current.timestamp_ms + 1)
                    yield Candle(int(closed[0, 0]), *map(float, closed[0, 1:]))
                current = self._forming(symbol, open_ms, tick.timestamp_ms)
                yield current

    async def _stream(self, chosen: list[str]) -> AsyncGenerator[Tick, None]:
        cursor = self._now_ms() + 1  # trades at or after cursor are still to come
        with self._hand_overs.stream() as pause:
            while not self._closed:
                woke_s = self._clock()
                now = math.floor(woke_s * 1000)
                cursor = max(cursor, now + 1 - _MAX_CATCH_UP_MS)
                if now + 1 > cursor:
                    batches = [self.market.numbered_trades(s, cursor, now + 1) for s in chosen]
                    for _, tick in heapq.merge(*batches, key=lambda pair: (pair[1].timestamp_ms, pair[0])):
                        if self._closed:
                            return
                        yield tick
                    cursor = now + 1
                next_ms = min(self._next_trade_ms(s, cursor) for s in chosen)
                await pause(wake_delay_s(next_ms, woke_s, self._clock(), self._batch_s))

    def hurry(self) -> asyncio.Future[Any] | None:
        """Every tick stream hands over what is due now (`PacedFeed`)."""
        return self._hand_overs.hurry()

    def _next_trade_ms(self, symbol: str, at_ms: int) -> int:
        minute = at_ms // MINUTE_MS
        for m in (minute, minute + 1):
            ts = self.market.minute_trades(symbol, m)[0]
            i = int(np.searchsorted(ts, at_ms))
            if i < len(ts):
                return int(ts[i])
        return (minute + 2) * MINUTE_MS


def _trade_dict(trade_id: int, tick: Tick) -> dict[str, Any]:
    return {
        "id": str(trade_id),
        "order": None,
        "symbol": tick.symbol,
        "timestamp": tick.timestamp_ms,
        "datetime": _iso(tick.timestamp_ms),
        "side": tick.side,
        "type": None,
        "takerOrMaker": "taker",
        "price": tick.price,
        "amount": tick.amount,
        "cost": tick.price * tick.amount,
        "fee": None,
        "fees": [],
        "info": {"source": "synthetic", "minute": trade_id // TRADE_IDS_PER_MINUTE},
    }


def _iso(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp_ms / 1000)) + f".{timestamp_ms % 1000:03d}Z"
