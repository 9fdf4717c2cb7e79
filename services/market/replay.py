"""`ReplayFeed`: a recording replayed in a loop, anchored to the wall clock, so it is the same everywhere.

The position in the recording is a pure function of the time: virtual ms = now_ms × speed, recording offset =
virtual ms mod duration. Two processes (the app and the local backend's paper broker) that replay the same file
at the same speed therefore see the same trade at the same moment without talking to each other. Emitted
timestamps are rebased to the wall clock (virtual ms ÷ speed), so they stay monotonic across loop boundaries,
and the loop before "now" is the history candles are built from.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from services.market.freshness import FeedStatus, status_for
from services.market.markets import round_to_step
from services.market.pacing import HandOvers, wake_delay_s
from services.market.quotes import BookTop
from services.market.recording import Recording, TradeSeries, load_recording
from services.market.types import TIMEFRAME_MS, Candle, MarketDataError, Tick, UnknownSymbol

_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT = _ROOT / "assets" / "replay" / "simulated-7.jsonl.gz"
_MAX_CATCH_UP_S = 60.0  # after a longer pause, skip ahead rather than flood consumers with old trades


def default_recording() -> Path:
    """The recording shipped with the app: a seeded simulated market (see `services.market.simulate`)."""
    return _DEFAULT


class ReplayFeed:
    """A `MarketFeed` over a recording, looping forever, paced by `clock` (seconds since the epoch).

    `batch_s`: a tick stream wakes at most once per this long and hands over every trade due by then
    (0: each trade at its own millisecond). See `services.market.sources.FEED_BATCH_S`.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        stale_after_s: float = 10.0,
        recording: Recording | None = None,
        batch_s: float = 0.0,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self._rec = recording if recording is not None else load_recording(path or default_recording())
        # Exact rational speed, so virtual ↔ wall conversions round the same way in every process.
        ratio = Fraction(speed).limit_denominator(1000)
        self._num, self._den = ratio.numerator, ratio.denominator
        self._speed = speed
        self._clock = clock
        self._sleep = sleep
        self._batch_s = batch_s
        self._hand_overs = HandOvers(sleep)
        self.stale_after_s = stale_after_s
        self._duration = self._rec.meta.duration_ms
        self._closed = False

    @classmethod
    async def open(cls, path: Path | None = None, **kwargs: Any) -> ReplayFeed:
        """Like the constructor, with the file read in a worker thread so the event loop never waits on it."""
        recording = await asyncio.to_thread(load_recording, path or default_recording())
        return cls(recording=recording, **kwargs)

    # -- context manager -------------------------------------------------------------------------------
    async def __aenter__(self) -> ReplayFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Ends every `ticks` stream at its next wake-up; a replay holds no socket, file or task."""
        self._closed = True

    # -- MarketFeed ------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        meta = self._rec.meta
        label = "Replay · simulated" if meta.source == "simulated" else f"Replay · recorded {meta.exchange}"
        return label if self._speed == 1 else f"{label} · {self._speed:g}×"

    @property
    def recording(self) -> Recording:
        return self._rec

    @property
    def history_span_ms(self) -> int:
        """`TradeHistory`: the recording's length; older bars repeat it (the replay loops)."""
        return self._rec.meta.duration_ms

    async def markets(self) -> dict[str, dict[str, Any]]:
        return self.market_table()

    def market_table(self) -> dict[str, dict[str, Any]]:
        """The recording's markets (copies), at once."""
        return {s: copy.deepcopy(self._rec.meta.markets[s]) for s in self._rec.symbols}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        return self.ticker_now(symbol)

    def ticker_now(self, symbol: str) -> dict[str, Any]:
        """ccxt ticker at the clock's now; the 24 h fields cover min(24 h, half a loop)."""
        series = self._series(symbol)
        now_ms = self._now_ms()
        end_v = self._virtual_start(now_ms + 1)
        # A 24 h window over a loop shorter than a day would always show 0 % change: use half a loop instead.
        window_v = min(self._virtual_start(86_400_000), self._duration // 2)
        k, i = self._last_before(series, end_v)
        last = series.prices[i]
        agg = self._aggregate(series, end_v - window_v, end_v)
        open_ = agg[0] if agg else last
        high, low, volume, quote = (agg[1], agg[2], agg[4], agg[5]) if agg else (last, last, 0.0, 0.0)
        tick = self._rec.meta.markets[symbol].get("precision", {}).get("price") or 0.0
        timestamp = self._wall(k * self._duration + series.offsets_ms[i])
        return {
            "symbol": symbol,
            "timestamp": timestamp,
            "datetime": _iso(timestamp),
            "high": high,
            "low": low,
            "bid": round_to_step(last - tick, tick) if tick else last,
            "bidVolume": None,
            "ask": round_to_step(last + tick, tick) if tick else last,
            "askVolume": None,
            "vwap": quote / volume if volume else None,
            "open": open_,
            "close": last,
            "last": last,
            "previousClose": None,
            "change": last - open_,
            "percentage": (last - open_) / open_ * 100 if open_ else None,
            "average": (last + open_) / 2,
            "baseVolume": volume,
            "quoteVolume": quote,
            "info": {"window_ms": self._wall(window_v), "synthetic_book": True, "source": "replay"},
        }

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        return self.candles_at(symbol, timeframe, since_ms=since_ms, limit=limit)

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Trades of `symbols` as they happen in wall-clock time, merged in time order, until closed."""
        return self._stream(self._chosen(symbols))

    def _chosen(self, symbols: list[str]) -> list[tuple[str, TradeSeries]]:
        chosen = [(s, self._series(s)) for s in dict.fromkeys(symbols)]
        if not chosen:
            raise MarketDataError("Pick at least one symbol to stream.")
        return chosen

    # -- latest-value streams (StreamingFeed) --------------------------------------------------------------
    def tickers(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[dict[str, Any]]:
        """Tickers of `symbols` every `interval_s` (a live exchange pushes about one a second)."""
        chosen = self._chosen(symbols)
        return self._periodic(lambda: [self.ticker_now(s) for s, _ in chosen], interval_s)

    def book_tops(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[BookTop]:
        """A synthetic top of book (one tick either side of the last price) every `interval_s`."""
        chosen = self._chosen(symbols)

        def tops() -> list[BookTop]:
            out = []
            for symbol, _ in chosen:
                t = self.ticker_now(symbol)
                out.append(BookTop(symbol, t["timestamp"], t["bid"], None, t["ask"], None))
            return out

        return self._periodic(tops, interval_s)

    def candle_updates(self, symbol: str, timeframe: str = "1m") -> AsyncIterator[Candle]:
        """The forming bar now and after every trade of `symbol`; the closed bar first when a new one opens."""
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(
                f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}."
            )
        self._series(symbol)
        return self._candle_stream(symbol, timeframe)

    async def _periodic(self, snapshot: Callable[[], list[Any]], interval_s: float) -> AsyncIterator[Any]:
        while not self._closed:
            for item in snapshot():
                yield item
            await self._sleep(interval_s)

    async def _candle_stream(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        frame = TIMEFRAME_MS[timeframe]
        current = self.candles_at(symbol, timeframe, limit=1)[-1]
        yield current
        async with contextlib.aclosing(self._stream([(symbol, self._series(symbol))])) as ticks:
            async for tick in ticks:
                open_ms = tick.timestamp_ms // frame * frame
                if open_ms != current.timestamp_ms:
                    yield self.candles_at(symbol, timeframe, since_ms=current.timestamp_ms, limit=1)[0]
                current = self.candles_at(symbol, timeframe, since_ms=open_ms, limit=1)[0]
                yield current

    # -- freshness ---------------------------------------------------------------------------------------
    def last_tick_ms(self, symbol: str) -> int | None:
        """Wall-clock time of the symbol's latest trade at or before now."""
        series = self._series(symbol)
        k, i = self._last_before(series, self._virtual_now())
        return self._wall(k * self._duration + series.offsets_ms[i])

    def status(self, symbol: str) -> FeedStatus:
        """ "stale" when the recording itself has no trade of `symbol` for `stale_after_s` around now."""
        return status_for(self.last_tick_ms(symbol), self._now_ms(), self.stale_after_s)

    # -- deterministic queries -------------------------------------------------------------------------
    def price_at(self, symbol: str, timestamp_ms: int) -> float:
        """Price of the last trade at or before `timestamp_ms` (wall clock): the same in every process."""
        series = self._series(symbol)
        _, i = self._last_before(series, self._virtual_start(timestamp_ms + 1))
        return series.prices[i]

    def trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[Tick]:
        """Trades with `since_ms <= timestamp_ms < until_ms` (wall clock), oldest first."""
        return [tick for _, tick in self.numbered_trades_between(symbol, since_ms, until_ms)]

    def numbered_trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, Tick]]:
        """Like `trades_between`, each with its trade id: a sequence number per symbol, rising across loops."""
        series = self._series(symbol)
        start_v, end_v = self._virtual_start(since_ms), self._virtual_start(until_ms)
        n = len(series)
        return [
            (v // self._duration * n + i, self._tick(symbol, series, v, i))
            for v, i in self._iter_range(series, start_v, end_v)
        ]

    def candles_at(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        """OHLCV bars up to now (the last one still forming); a bar without trades repeats the previous close."""
        frame = TIMEFRAME_MS.get(timeframe)
        if frame is None:
            raise MarketDataError(
                f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}."
            )
        series = self._series(symbol)
        if limit <= 0:
            return []
        now_ms = self._now_ms()
        current = now_ms // frame * frame
        first = current - (limit - 1) * frame if since_ms is None else -(-since_ms // frame) * frame
        last = min(current, first + (limit - 1) * frame)
        now_v = self._virtual_start(now_ms + 1)
        out: list[Candle] = []
        for open_ms in range(first, last + 1, frame):
            start_v = self._virtual_start(open_ms)
            end_v = min(self._virtual_start(open_ms + frame), now_v)
            agg = self._aggregate(series, start_v, end_v)
            if agg is None:
                _, i = self._last_before(series, start_v)
                prev = series.prices[i]
                out.append(Candle(open_ms, prev, prev, prev, prev, 0.0))
            else:
                out.append(Candle(open_ms, agg[0], agg[1], agg[2], agg[3], agg[4]))
        return out

    # -- internals -------------------------------------------------------------------------------------
    def _series(self, symbol: str) -> TradeSeries:
        series = self._rec.series.get(symbol)
        if series is None:
            available = ", ".join(self._rec.symbols)
            raise UnknownSymbol(f"{symbol} is not in this replay ({self.mode}); available: {available}.")
        return series

    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)

    def _virtual_now(self) -> int:
        """Virtual ms of the first trade not yet emitted: everything before it has happened."""
        return self._virtual_start(self._now_ms() + 1)

    def _virtual_start(self, wall_ms: int) -> int:
        """Smallest virtual ms whose wall-clock time is >= `wall_ms`."""
        return -(-wall_ms * self._num // self._den)

    def _wall(self, virtual_ms: int) -> int:
        return virtual_ms * self._den // self._num

    def _last_before(self, series: TradeSeries, virtual_ms: int) -> tuple[int, int]:
        """(loop, index) of the last trade strictly before `virtual_ms`, wrapping into earlier loops."""
        loop, offset = divmod(virtual_ms, self._duration)
        i = series.first_at_or_after(offset) - 1
        if i < 0:
            return loop - 1, len(series) - 1
        return loop, i

    def _first_at_or_after(self, series: TradeSeries, virtual_ms: int) -> tuple[int, int]:
        loop, offset = divmod(virtual_ms, self._duration)
        i = series.first_at_or_after(offset)
        if i == len(series):
            return loop + 1, 0
        return loop, i

    def _iter_range(self, series: TradeSeries, start_v: int, end_v: int) -> Iterator[tuple[int, int]]:
        """(virtual ms, index) of trades with start_v <= virtual ms < end_v, across loop boundaries."""
        loop, i = self._first_at_or_after(series, start_v)
        n, offsets, duration = len(series), series.offsets_ms, self._duration
        while True:
            if i == n:
                loop, i = loop + 1, 0
            v = loop * duration + offsets[i]
            if v >= end_v:
                return
            yield v, i
            i += 1

    def _aggregate(
        self, series: TradeSeries, start_v: int, end_v: int
    ) -> tuple[float, float, float, float, float, float] | None:
        """(open, high, low, close, volume, quote volume) of trades in [start_v, end_v), None if there are none.

        Whole loops inside the range use the series' full-range statistics: O(log n + n / block) per call.
        """
        if end_v <= start_v:
            return None
        k1, i1 = self._first_at_or_after(series, start_v)
        k2, i2 = self._last_before(series, end_v)
        if (k1, i1) > (k2, i2):
            return None
        n = len(series)
        if k1 == k2:
            parts = [series.stats(i1, i2 + 1)]
        else:
            parts = [series.stats(i1, n), series.stats(0, i2 + 1)]
            if k2 - k1 > 1:
                full = series.stats(0, n)
                parts.append((full[0], full[1], full[2] * (k2 - k1 - 1), full[3] * (k2 - k1 - 1)))
        return (
            series.prices[i1],
            max(p[0] for p in parts),
            min(p[1] for p in parts),
            series.prices[i2],
            sum(p[2] for p in parts),
            sum(p[3] for p in parts),
        )

    def _tick(self, symbol: str, series: TradeSeries, virtual_ms: int, i: int) -> Tick:
        return Tick(symbol, self._wall(virtual_ms), series.prices[i], series.amounts[i], series.side(i))

    async def _stream(self, chosen: list[tuple[str, TradeSeries]]) -> AsyncGenerator[Tick, None]:
        cursor = self._virtual_now()
        max_catch_up = self._virtual_start(int(_MAX_CATCH_UP_S * 1000))
        with self._hand_overs.stream() as pause:
            while not self._closed:
                woke_s = self._clock()
                now_v = self._virtual_now()
                cursor = max(cursor, now_v - max_catch_up)
                if now_v > cursor:
                    ranges = [_tagged(n, self._iter_range(s, cursor, now_v)) for n, (_, s) in enumerate(chosen)]
                    for v, n, i in heapq.merge(*ranges):
                        if self._closed:
                            return
                        symbol, series = chosen[n]
                        yield self._tick(symbol, series, v, i)
                    cursor = now_v
                next_v = min(
                    loop * self._duration + s.offsets_ms[i]
                    for s, (loop, i) in ((s, self._first_at_or_after(s, cursor)) for _, s in chosen)
                )
                await pause(wake_delay_s(self._wall(next_v), woke_s, self._clock(), self._batch_s))

    def hurry(self) -> asyncio.Future[Any] | None:
        """Every tick stream hands over what is due now (`PacedFeed`)."""
        return self._hand_overs.hurry()


def _tagged(n: int, pairs: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    for v, i in pairs:
        yield v, n, i


def _iso(timestamp_ms: int) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp_ms / 1000)) + f".{timestamp_ms % 1000:03d}Z"
    )
