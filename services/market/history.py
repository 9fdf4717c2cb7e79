"""The history store: a local columnar cache of candles per (source, symbol, timeframe), and what fills it.

Sources: the synthetic market, a skeet-replay/1 recording, a CSV file a trader imports, or any ccxt exchange's
`fetch_ohlcv` (paged, rate-limited, retried; an interrupted fill resumes where it stopped, because every page
is written as it arrives and a fill only asks for the gaps left). `gaps()` finds missing bars; `fill()` asks
the source for them.

Format: one `.npy` file per month, `root/<source>/<BASE-QUOTE>/<timeframe>/<YYYY-MM>.npy`, each a float64
array (n, 6) — timestamp ms, open, high, low, close, volume — sorted by time, read memory-mapped. Why numpy
and not DuckDB or Parquet (the issue's two candidates): the app must install on phones, where Flet offers
numpy but neither duckdb nor pyarrow; a store the phone cannot open is no store for the chart's scroll-back.
Measured in `bench/market.py` (2 years of 1-minute bars, same run, a loaded 2-core machine): a 500-candle
chart page reads in 1.3 ms p50 from memory-mapped monthly .npy against 15.5 ms from DuckDB and 10 ms from
Parquet (ratios 0.08 and 0.13); writing the two years takes 0.27 s against 1.1 s and 1.2 s. What numpy files
lack — SQL, compression (50 MB against 45 for Parquet), concurrent writers — the store does not need: one
writer per (source, symbol, timeframe), a whole month rewritten atomically (temp file + rename), so a
reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from services.market.synthetic import DEFAULT_SEED, MINUTE_MS, OHLCV, ORIGIN_MS, SyntheticMarket, timeframe_ms
from services.market.types import MarketDataError, UnknownSymbol

log = logging.getLogger(__name__)

_EMPTY = np.empty((0, 6))


class CandleSource(Protocol):
    """Where candles come from: pages of bars opening in [since_ms, until_ms), oldest first."""

    @property
    def name(self) -> str:
        """A short stable name, the store's folder for this source (e.g. "synthetic-7", "ccxt-binance")."""
        ...

    def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]: ...


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "source"


def _month_start(ts_ms: int) -> int:
    t = time.gmtime(ts_ms // 1000)
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000


def _next_month(month_ms: int) -> int:
    t = time.gmtime(month_ms // 1000)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


class CandleStore:
    """Monthly .npy chunks under `root`; safe for many readers and one writer per series."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, source: str, symbol: str, timeframe: str) -> Path:
        timeframe_ms(timeframe)
        return self.root / _slug(source) / _slug(symbol.replace("/", "-")) / timeframe

    def _chunk(self, folder: Path, month_ms: int) -> Path:
        return folder / (time.strftime("%Y-%m", time.gmtime(month_ms // 1000)) + ".npy")

    def write(self, source: str, symbol: str, timeframe: str, bars: OHLCV) -> int:
        """Merge `bars` in (a bar already stored at the same time is replaced; of bars given twice, the later
        one is kept); returns how many distinct bars were written."""
        bars = np.asarray(bars, dtype=np.float64).reshape(-1, 6)
        if not len(bars):
            return 0
        bars = bars[np.argsort(bars[:, 0], kind="stable")]
        bars = bars[np.concatenate((bars[1:, 0] != bars[:-1, 0], [True]))]  # one bar a time: the last given
        folder = self._dir(source, symbol, timeframe)
        folder.mkdir(parents=True, exist_ok=True)
        month = np.array([_month_start(int(t)) for t in bars[[0, -1], 0]])
        start = int(month[0])
        while start <= int(bars[-1, 0]):
            end = _next_month(start)
            part = bars[(bars[:, 0] >= start) & (bars[:, 0] < end)]
            if len(part):
                path = self._chunk(folder, start)
                if path.exists():
                    old = np.load(path)
                    part = np.concatenate([old[~np.isin(old[:, 0], part[:, 0])], part])
                part = part[np.argsort(part[:, 0], kind="stable")]
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                with open(tmp, "wb") as f:
                    np.save(f, part)
                os.replace(tmp, path)  # atomic: a reader sees the old month or the new one
            start = end
        return len(bars)

    def read(self, source: str, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> OHLCV:
        """Stored bars opening in [since_ms, until_ms), oldest first."""
        folder = self._dir(source, symbol, timeframe)
        if until_ms <= since_ms or not folder.exists():
            return _EMPTY.copy()
        parts = []
        month = _month_start(max(int(since_ms), 0))
        while month < until_ms:
            path = self._chunk(folder, month)
            if path.exists():
                data = np.load(path, mmap_mode="r")
                lo, hi = np.searchsorted(data[:, 0], [since_ms, until_ms])
                if hi > lo:
                    parts.append(np.array(data[lo:hi]))
            month = _next_month(month)
        return np.concatenate(parts) if parts else _EMPTY.copy()

    def page(self, source: str, symbol: str, timeframe: str, *, before_ms: int, limit: int = 500) -> OHLCV:
        """The `limit` stored bars opening before `before_ms` (a chart page scrolling back), oldest first."""
        folder = self._dir(source, symbol, timeframe)
        if not folder.exists() or limit <= 0:
            return _EMPTY.copy()
        months = sorted(folder.glob("*.npy"))
        parts: list[np.ndarray] = []
        have = 0
        for path in reversed(months):
            data = np.load(path, mmap_mode="r")
            if not len(data) or data[0, 0] >= before_ms:
                continue
            hi = int(np.searchsorted(data[:, 0], before_ms))
            take = data[max(0, hi - (limit - have)):hi]
            parts.append(np.array(take))
            have += len(take)
            if have >= limit:
                break
        return np.concatenate(parts[::-1]) if parts else _EMPTY.copy()

    def gaps(self, source: str, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
        """Missing bars in [since_ms, until_ms) as half-open ranges [start, end) of bar open times."""
        frame = timeframe_ms(timeframe)
        first = -(-int(since_ms) // frame) * frame
        if until_ms <= first:
            return []
        grid = np.arange(first, int(until_ms), frame, dtype=np.int64)
        have = self.read(source, symbol, timeframe, first, until_ms)[:, 0].astype(np.int64)  # sorted
        # Both sorted: a binary search per bar. np.isin took 4.1 s for two years of 1m bars here, this 0.07 s.
        at = np.minimum(np.searchsorted(have, grid), max(len(have) - 1, 0))
        missing = grid if not len(have) else grid[have[at] != grid]
        if not len(missing):
            return []
        breaks = np.flatnonzero(np.diff(missing) != frame)
        starts = np.concatenate(([missing[0]], missing[breaks + 1]))
        ends = np.concatenate((missing[breaks], [missing[-1]])) + frame
        return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]

    async def fill(
        self, source: CandleSource, symbol: str, timeframe: str, since_ms: int, until_ms: int
    ) -> int:
        """Ask `source` for every gap in [since_ms, until_ms), writing each page as it comes; bars written.

        Interrupted (a crash, a cancelled task, an exchange gone), the next call resumes with what is left.
        """
        written = 0
        for start, end in self.gaps(source.name, symbol, timeframe, since_ms, until_ms):
            async for page in source.pages(symbol, timeframe, start, end):
                written += self.write(source.name, symbol, timeframe, page)
        return written

    async def candles(
        self, source: CandleSource, symbol: str, timeframe: str, since_ms: int, until_ms: int
    ) -> OHLCV:
        """Bars of [since_ms, until_ms) from the store, fetching the missing ones from `source` first."""
        await self.fill(source, symbol, timeframe, since_ms, until_ms)
        return self.read(source.name, symbol, timeframe, since_ms, until_ms)


# -- sources ------------------------------------------------------------------------------------------------
class SyntheticSource:
    """The synthetic market's closed bars (none in the future: it is a market, not a forecast)."""

    def __init__(self, seed: int = DEFAULT_SEED, *, clock: Callable[[], float] = time.time) -> None:
        self.market = SyntheticMarket(seed)
        self._clock = clock

    @property
    def name(self) -> str:
        return f"synthetic-{self.market.seed}"

    def bars(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> OHLCV:
        frame = timeframe_ms(timeframe)
        now = int(self._clock() * 1000)
        until_ms = min(int(until_ms), now // frame * frame - frame + 1)  # closed bars only
        return self.market.candles(symbol, timeframe, since_ms, until_ms)

    async def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]:
        step = 31 * 86_400_000  # about a month of bars per page
        start = max(int(since_ms), ORIGIN_MS)
        while start < until_ms:
            end = min(int(until_ms), start + step)
            # A month of 1-minute trades is ~0.1-1 s of numpy: in a worker thread, so an app's UI loop
            # (the chart scrolling back) never waits on it.
            bars = await asyncio.to_thread(self.bars, symbol, timeframe, start, end)
            if len(bars):
                yield bars
            start = end


class ReplaySource:
    """A skeet-replay/1 recording's trades at their recorded times; a bar without trades repeats the close."""

    def __init__(self, path: Path) -> None:
        from services.market.recording import load_recording

        self.path = Path(path)
        try:
            self.recording = load_recording(self.path)
        except (OSError, ValueError, MarketDataError) as exc:  # a bad file is a bad source, not an outage
            raise MarketDataError(f"Cannot read the recording {self.path}: {exc}") from exc

    @property
    def name(self) -> str:
        return f"replay-{_slug(self.path.stem)}"

    def bars(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> OHLCV:
        frame = timeframe_ms(timeframe)
        series = self.recording.series.get(symbol)
        if series is None:
            raise UnknownSymbol(f"{symbol} is not in the recording {self.path.name}; "
                                f"available: {', '.join(self.recording.symbols)}.")
        meta = self.recording.meta
        ts = meta.start_ms + np.asarray(series.offsets_ms, dtype=np.int64)
        prices = np.asarray(series.prices, dtype=np.float64)
        amounts = np.asarray(series.amounts, dtype=np.float64)
        return bars_from_trades(ts, prices, amounts, frame, max(int(since_ms), meta.start_ms // frame * frame),
                                min(int(until_ms), meta.end_ms))

    async def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]:
        bars = self.bars(symbol, timeframe, since_ms, until_ms)
        if len(bars):
            yield bars


def bars_from_trades(ts: np.ndarray, prices: np.ndarray, amounts: np.ndarray, frame: int,
                     since_ms: int, until_ms: int) -> OHLCV:
    """OHLCV bars opening in [since_ms, until_ms) from time-sorted trades; an empty bar repeats the last close
    (bars before the first trade are left out)."""
    first = -(-since_ms // frame) * frame
    if until_ms <= first or not len(ts):
        return _EMPTY.copy()
    opens = np.arange(first, until_ms, frame, dtype=np.int64)
    lo = np.searchsorted(ts, opens)
    hi = np.searchsorted(ts, opens + frame)
    has = hi > lo
    out = np.empty((len(opens), 6))
    out[:, 0] = opens
    idx = np.flatnonzero(has)
    if len(idx):
        out[idx, 1] = prices[lo[idx]]
        out[idx, 4] = prices[hi[idx] - 1]
        # Segments from one non-empty bar's first trade to the next one's hold exactly that bar's trades.
        span = slice(int(lo[idx[0]]), int(hi[idx[-1]]))
        starts = lo[idx] - lo[idx[0]]
        out[idx, 2] = np.maximum.reduceat(prices[span], starts)
        out[idx, 3] = np.minimum.reduceat(prices[span], starts)
        csum = np.concatenate(([0.0], np.cumsum(amounts)))
        out[idx, 5] = csum[hi[idx]] - csum[lo[idx]]
    # Empty bars: the close of the last trade before them (or nothing, before the first trade).
    before = np.searchsorted(ts, opens) - 1
    empty = ~has
    prev = np.where(before >= 0, prices[np.maximum(before, 0)], np.nan)
    out[empty, 1:5] = prev[empty, None]
    out[empty, 5] = 0.0
    return out[~np.isnan(out[:, 1])]


class CsvSource:
    """Candles a trader imports: a CSV with a header naming timestamp (epoch ms or s, or ISO), open, high,
    low, close and volume; bars of a finer timeframe are aggregated to the one asked for."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data = self._load()

    @property
    def name(self) -> str:
        return f"csv-{_slug(self.path.stem)}"

    def _load(self) -> np.ndarray:
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise MarketDataError(f"Cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}.") from exc
        first = text.split("\n", 1)[0]
        delimiter = max(",;\t", key=first.count)  # a European spreadsheet writes ";"
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
        if not rows:
            raise MarketDataError(f"{self.path.name} is empty.")
        header = [h.strip().lower() for h in rows[0]]
        aliases = {"time": "timestamp", "date": "timestamp", "datetime": "timestamp", "open_time": "timestamp"}
        header = [aliases.get(h, h) for h in header]
        need = ["timestamp", "open", "high", "low", "close", "volume"]
        missing = [n for n in need if n not in header]
        if missing:
            raise MarketDataError(f"{self.path.name} has no {', '.join(missing)} column "
                                  f"(header: {delimiter.join(rows[0])}).")
        cols = [header.index(n) for n in need]
        try:  # the common case, epoch timestamps: one bulk conversion
            out = np.array([[row[c] for c in cols] for row in rows[1:]], dtype=np.float64).reshape(-1, 6)
            out[:, 0] = np.where(out[:, 0] < 1e11, out[:, 0] * 1000, out[:, 0])  # seconds or ms
        except (ValueError, IndexError):
            out = self._parse_rows(rows, cols)
        bad = ~np.isfinite(out).all(axis=1) | (out[:, 1:5] <= 0).any(axis=1) | (out[:, 5] < 0)
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise MarketDataError(f"{self.path.name} line {line}: prices must be positive numbers and volume "
                                  "not negative.")
        out = out[np.argsort(out[:, 0], kind="stable")]
        # A timestamp written twice (an export re-run): the later row wins.
        keep = np.concatenate((out[1:, 0] != out[:-1, 0], [True])) if len(out) else np.zeros(0, bool)
        return out[keep]

    def _parse_rows(self, rows: list[list[str]], cols: list[int]) -> np.ndarray:
        """Row by row (ISO timestamps, or a bad row to name)."""
        out = np.empty((len(rows) - 1, 6))
        for i, row in enumerate(rows[1:]):
            try:
                out[i, 0] = _parse_time(row[cols[0]])
                out[i, 1:] = [float(row[c]) for c in cols[1:]]
            except (ValueError, IndexError) as exc:
                raise MarketDataError(f"{self.path.name} line {i + 2} is not a candle: {exc}.") from exc
        return out

    def bars(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> OHLCV:
        frame = timeframe_ms(timeframe)
        data = self._data
        if len(data) > 1:
            base = int(np.diff(data[:, 0]).min())
            if base > frame or frame % max(base, 1):
                raise MarketDataError(f"{self.path.name} holds {base / 60_000:g}-minute bars: it cannot make "
                                      f"{timeframe} bars.")
        opens = (data[:, 0] // frame * frame).astype(np.int64)
        first = -(-int(since_ms) // frame) * frame
        keep = (opens >= first) & (opens < until_ms)
        data, opens = data[keep], opens[keep]
        if not len(data):
            return _EMPTY.copy()
        starts = np.flatnonzero(np.concatenate(([True], opens[1:] != opens[:-1])))
        ends = np.concatenate((starts[1:], [len(data)]))
        out = np.empty((len(starts), 6))
        out[:, 0] = opens[starts]
        out[:, 1] = data[starts, 1]
        out[:, 2] = np.maximum.reduceat(data[:, 2], starts)
        out[:, 3] = np.minimum.reduceat(data[:, 3], starts)
        out[:, 4] = data[ends - 1, 4]
        out[:, 5] = np.add.reduceat(data[:, 5], starts)
        return out

    async def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]:
        bars = self.bars(symbol, timeframe, since_ms, until_ms)
        if len(bars):
            yield bars


class FeedSource:
    """Closed bars from any `MarketFeed`'s `candles(since_ms=..., limit=...)`: the chart's scroll-back over a
    live feed (ccxt, the backend's gateway), cached under `name` like any other source."""

    def __init__(self, feed: Any, name: str, *, page_limit: int = 500, clock: Callable[[], float] = time.time) -> None:
        self.feed = feed  # a services.market.MarketFeed (Any: that module imports this one's neighbours)
        self._name = _slug(name)
        self.page_limit = page_limit
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    async def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]:
        frame = timeframe_ms(timeframe)
        since = -(-int(since_ms) // frame) * frame
        until_ms = min(int(until_ms), int(self._clock() * 1000) // frame * frame - frame + 1)  # closed bars only
        while since < until_ms:
            rows = await self.feed.candles(symbol, timeframe, since_ms=since, limit=self.page_limit)
            bars = np.array([(c.timestamp_ms, c.open, c.high, c.low, c.close, c.volume) for c in rows],
                            dtype=np.float64).reshape(-1, 6)
            bars = bars[(bars[:, 0] >= since) & (bars[:, 0] < until_ms)]
            if not len(bars):
                return
            yield bars
            since = int(bars[-1, 0]) + frame


class CcxtSource:
    """`fetch_ohlcv` of a ccxt exchange, paged by `since` (`page_limit` bars a call), with ccxt's rate limiter
    and retries with backoff on transient failures (network, 429)."""

    def __init__(self, exchange_id: str, *, config: dict[str, Any] | None = None, page_limit: int = 1000,
                 retries: int = 5, backoff_s: float = 0.5, label: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        import ccxt.async_support as ccxt_async

        if exchange_id not in ccxt_async.exchanges:
            raise MarketDataError(f"ccxt has no exchange named {exchange_id!r}.")
        self.exchange_id = exchange_id
        self.exchange = getattr(ccxt_async, exchange_id)({"enableRateLimit": True, **(config or {})})
        self.page_limit = page_limit
        self.retries = retries
        self.backoff_s = backoff_s
        self._label = label or f"ccxt-{exchange_id}"
        self._clock = clock
        self.calls = 0

    @property
    def name(self) -> str:
        return self._label

    async def aclose(self) -> None:
        await self.exchange.close()

    async def check(self, symbol: str) -> None:
        markets = await self._call(self.exchange.load_markets)
        if symbol not in markets:
            raise UnknownSymbol(f"{self.exchange_id} does not list {symbol}.")

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from services.market.errors import is_transient, translate

        for attempt in range(self.retries + 1):
            try:
                self.calls += 1
                return await fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc) or attempt == self.retries:
                    raise translate(exc, self.exchange_id, "candles") from exc
                delay = self.backoff_s * 2**attempt
                log.info("%s: %s, retrying in %.1f s", self.exchange_id, type(exc).__name__, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def pages(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> AsyncIterator[OHLCV]:
        frame = timeframe_ms(timeframe)
        since = -(-int(since_ms) // frame) * frame
        # An exchange's last bar may still be forming: only closed bars are cached as history.
        until_ms = min(int(until_ms), int(self._clock() * 1000) // frame * frame - frame + 1)
        while since < until_ms:
            rows = await self._call(self.exchange.fetch_ohlcv, symbol, timeframe, since=since, limit=self.page_limit)
            bars = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
            bars = bars[(bars[:, 0] >= since) & (bars[:, 0] < until_ms)]
            if not len(bars):
                return
            yield bars
            since = int(bars[-1, 0]) + frame


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return float(parse_instant(text))
    return value * 1000 if value < 1e11 else value  # epoch seconds or milliseconds


def parse_instant(text: str) -> int:
    """Epoch ms of an ISO date or date-time; UTC when it names no zone. `ValueError` with a plain message."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text.upper())  # RFC 3339 allows "t" and "z" too
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or date-time (e.g. 2025-03-01 or 2025-03-01T12:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


__all__ = [
    "MINUTE_MS",
    "CandleSource",
    "CandleStore",
    "CcxtSource",
    "CsvSource",
    "FeedSource",
    "ReplaySource",
    "SyntheticSource",
    "bars_from_trades",
    "parse_instant",
]
