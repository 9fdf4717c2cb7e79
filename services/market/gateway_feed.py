"""`GatewayFeed`: live market data from the Skeet backend's gateway, over httpx and websockets only.

What phones and the hosted web app use: no exchange library, one websocket per feed whatever the number of
consumers. REST for markets, tickers and candle history (`/v1/market/...`); the stream
(`/v1/market/stream`) for trades and candles, numbered per symbol. A dropped socket reconnects with backoff
and jitter and resumes after the last seq it saw, so no trade is lost or repeated; when the gateway can no
longer resume a symbol it says so (`reset`) and the feed counts it (`resets`) and refetches the forming bar.
`set_visible(symbols)` keeps only those symbols (and charted ones) at full rate; the others get their candle
about once a second. `reconnect()` drops the socket at once (the app resumed, the network changed); `link()`
says whether the stream is up and how fresh its data is (a `SteeredFeed`, which the app steers on a phone).
The stream asks for `frames=lines`: one websocket message carries every frame waiting, one a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from services.backoff import Backoff
from services.market.freshness import FeedStatus, FreshnessBoard
from services.market.quotes import BookTop
from services.market.streaming import FeedLink
from services.market.types import (
    TIMEFRAME_MS,
    Candle,
    FeedUnavailable,
    MarketDataError,
    Tick,
    UnknownSymbol,
)

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
Connection = Literal["idle", "connecting", "connected", "reconnecting", "closed"]
_REFUSED = {4400: "refused the request", 4401: "refused the sign-in", 4429: "has too many streams open"}
_MAX_BACKLOG = 100_000  # trades waiting for one in-process consumer before the oldest are dropped


class _Consumer:
    """One `ticks` reader's symbols and trades; `collect=False` only keeps the symbols subscribed."""

    def __init__(self, symbols: set[str], *, collect: bool) -> None:
        self.symbols = symbols
        self.collect = collect
        self.items: deque[Tick] = deque(maxlen=_MAX_BACKLOG)
        self.ready = asyncio.Event()

    def put(self, tick: Tick) -> None:
        if self.collect:
            self.items.append(tick)
            self.ready.set()


class GatewayFeed:
    """A `StreamingFeed` over the backend at `base_url`; `token` gives the caller's bearer token."""

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenProvider,
        stale_after_s: float = 10.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._backoff = backoff or Backoff(initial_s=0.2, max_s=10.0)
        self._clock = clock
        self._board = FreshnessBoard(stale_after_s=stale_after_s, clock=clock)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(base_url=self._base_url, timeout=15.0)
        self._consumers: list[_Consumer] = []
        self._charted: dict[str, int] = {}  # symbol → open candle_updates streams (charts are visible)
        self._visible: set[str] | None = None  # None: every symbol at full rate
        self._seq: dict[str, int] = {}  # full-rate symbols: the last seq delivered
        self._epoch: str | None = None
        self._last_price: dict[str, tuple[int, float]] = {}
        self._last_candle: dict[str, Candle] = {}  # the gateway's forming 1m bar per symbol
        self._reset_events: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ws: ClientConnection | None = None
        self._upstream = ""
        self._markets: dict[str, dict[str, Any]] | None = None
        self.connection: Connection = "idle"
        self.last_error: str | None = None
        self.resets = 0  # symbols the gateway could not resume (their history may have a hole)
        self.reconnects = 0
        self.reconnects_asked = 0  # by the app (`reconnect()`)
        self.duplicates = 0  # frames seen twice across a reconnect, skipped

    # -- context manager -------------------------------------------------------------------------------
    async def __aenter__(self) -> GatewayFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        # A flag besides the cancel: Python 3.11's wait_for can swallow a cancel that races its wake-up.
        self._closing = True
        self._changed.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_http:
            await self._http.aclose()
        self.connection = "closed"

    # -- MarketFeed ------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return f"Live via gateway · {self._upstream}" if self._upstream else "Live via gateway"

    async def markets(self) -> dict[str, dict[str, Any]]:
        if self._markets is None:
            self._markets = await self._get("/v1/market/markets")
        return {k: dict(v) for k, v in self._markets.items()}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        ticker: dict[str, Any] = await self._get("/v1/market/ticker", symbol=symbol)
        streamed = self._last_price.get(symbol)
        if streamed is not None and streamed[0] >= (ticker.get("timestamp") or 0):
            ticker.update(timestamp=streamed[0], last=streamed[1], close=streamed[1])
        return ticker

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        params: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe, "limit": limit}
        if since_ms is not None:
            params["since"] = since_ms
        rows = await self._get("/v1/market/candles", **params)
        return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows]

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Trades of `symbols` (those at full rate: see `set_visible`), until cancelled."""
        if not symbols:
            raise MarketDataError("Pick at least one symbol to stream.")
        return self._ticks(set(symbols))

    # -- StreamingFeed ---------------------------------------------------------------------------------
    def status(self, symbol: str) -> FeedStatus:
        return self._board.status(symbol)

    def last_tick_ms(self, symbol: str) -> int | None:
        return self._board.last_tick_ms(symbol)

    async def tickers(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[dict[str, Any]]:
        """A ticker per symbol every `interval_s`: the 24 h fields from REST (every 30 s), the last price
        from the stream."""
        fetched: dict[str, tuple[float, dict[str, Any]]] = {}
        loop = asyncio.get_running_loop()
        interest = self._subscribe(set(symbols), collect=False)
        try:
            while True:
                for symbol in symbols:
                    got = fetched.get(symbol)
                    if got is None or loop.time() - got[0] > 30:
                        got = fetched[symbol] = (loop.time(), await self._get("/v1/market/ticker", symbol=symbol))
                    ticker = dict(got[1])
                    latest = self._latest_price(symbol)
                    if latest is not None and latest[0] >= (ticker.get("timestamp") or 0):
                        ticker.update(timestamp=latest[0], last=latest[1], close=latest[1])
                    yield ticker
                await asyncio.sleep(interval_s)
        finally:
            self._unsubscribe(interest)

    async def book_tops(self, symbols: list[str], *, interval_s: float = 1.0) -> AsyncIterator[BookTop]:
        """Bid and ask from the gateway's ticker (the stream carries trades, not books)."""
        async for ticker in self.tickers(symbols, interval_s=interval_s):
            yield BookTop(ticker["symbol"], ticker.get("timestamp"), ticker.get("bid"), ticker.get("bidVolume"),
                          ticker.get("ask"), ticker.get("askVolume"))

    def candle_updates(self, symbol: str, timeframe: str = "1m") -> AsyncIterator[Candle]:
        """The forming bar now and after every trade; the closed bar first when a new one opens. A charted
        symbol streams at full rate whatever `set_visible` says."""
        frame = TIMEFRAME_MS.get(timeframe)
        if frame is None:
            raise MarketDataError(f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}.")
        return self._candle_stream(symbol, timeframe, frame)

    # -- phone behaviour -------------------------------------------------------------------------------
    def set_visible(self, symbols: list[str] | None) -> None:
        """Only `symbols` (plus charted ones) stream every trade; None: all of them. Reconnects (resuming by
        seq) when the set changes."""
        visible = set(symbols) if symbols is not None else None
        if visible != self._visible:
            self._visible = visible
            self._changed.set()

    def reconnect(self) -> None:
        """Drop the socket now and open a fresh one (resuming by seq): call it when the app comes back to the
        foreground or the network changes, rather than waiting for a ping to time out."""
        self.reconnects_asked += 1
        self._changed.set()

    def link(self, symbols: list[str]) -> FeedLink:
        """Whether the stream is up, and how long ago the newest frame of `symbols` arrived (local clock)."""
        arrivals = [ms for ms in map(self._board.last_tick_ms, symbols) if ms is not None]
        age_s = max(0.0, self._clock() - max(arrivals) / 1000) if arrivals else None
        return FeedLink(connected=self.connection == "connected", age_s=age_s)

    # -- internals: consumers --------------------------------------------------------------------------
    def _subscribe(self, symbols: set[str], *, collect: bool = True) -> _Consumer:
        consumer = _Consumer(symbols, collect=collect)
        self._consumers.append(consumer)
        self._changed.set()
        self._ensure_running()
        return consumer

    def _unsubscribe(self, consumer: _Consumer) -> None:
        self._consumers.remove(consumer)
        self._changed.set()

    async def _ticks(self, symbols: set[str]) -> AsyncGenerator[Tick, None]:
        consumer = self._subscribe(symbols)
        try:
            while True:
                while not consumer.items:
                    consumer.ready.clear()
                    await consumer.ready.wait()
                yield consumer.items.popleft()
        finally:
            self._unsubscribe(consumer)

    async def _candle_stream(self, symbol: str, timeframe: str, frame: int) -> AsyncGenerator[Candle, None]:
        self._charted[symbol] = self._charted.get(symbol, 0) + 1
        resets = self._reset_events.get(symbol, 0)
        try:
            async with contextlib.aclosing(self._ticks({symbol})) as ticks:
                bars = await self.candles(symbol, timeframe, limit=1)
                current = bars[-1] if bars else None  # None: no history yet, the first trade opens a bar
                if current is not None:
                    yield current
                async for tick in ticks:
                    if self._reset_events.get(symbol, 0) != resets:  # trades were missed: ask again
                        resets = self._reset_events.get(symbol, 0)
                        bars = await self.candles(symbol, timeframe, limit=1)
                        current = bars[-1] if bars else current
                    open_ms = tick.timestamp_ms // frame * frame
                    if current is not None and open_ms < current.timestamp_ms:
                        continue
                    if current is None or open_ms > current.timestamp_ms:
                        if current is not None:
                            yield current  # closed
                        current = Candle(open_ms, tick.price, tick.price, tick.price, tick.price, tick.amount)
                    else:
                        current = Candle(current.timestamp_ms, current.open, max(current.high, tick.price),
                                         min(current.low, tick.price), tick.price, current.volume + tick.amount)
                    yield current
        finally:
            left = self._charted.get(symbol, 1) - 1
            if left:
                self._charted[symbol] = left
            else:
                self._charted.pop(symbol, None)
            self._changed.set()

    def _wanted(self) -> tuple[list[str], list[str]]:
        """(full-rate symbols, candle-only symbols) the consumers ask for now."""
        every = sorted({s for c in self._consumers for s in c.symbols})
        if self._visible is None:
            return every, []
        full = [s for s in every if s in self._visible or s in self._charted]
        return full, [s for s in every if s not in full]

    def _latest_price(self, symbol: str) -> tuple[int, float] | None:
        trade = self._last_price.get(symbol)
        bar = self._last_candle.get(symbol)
        if bar is not None and (trade is None or bar.timestamp_ms > trade[0]):
            return bar.timestamp_ms, bar.close
        return trade

    # -- internals: the link ---------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._closing:
            raise MarketDataError("This market feed is closed.")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gateway-feed")

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            full, watch = self._wanted()
            if not full and not watch:
                self.connection = "idle"
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            try:
                await self._listen_once(full, watch)
                attempt = 0
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, MarketDataError) as exc:
                self.last_error = _describe(exc)
                log.info("gateway stream dropped: %s", self.last_error)
            if self._changed.is_set():
                continue  # our own doing (subscription changed, reconnect asked): no wait
            self.connection = "reconnecting"
            for symbol in full + watch:
                self._board.mark_reconnecting(symbol)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff.delay(attempt)):
                    await self._changed.wait()
            attempt += 1

    async def _listen_once(self, full: list[str], watch: list[str]) -> None:
        self.connection = "connecting" if not self.reconnects else "reconnecting"
        for symbol in list(self._seq):
            if symbol not in full:
                del self._seq[symbol]  # candle-only symbols have no resume point
        url = self._stream_url(full, watch)
        headers = {"Authorization": f"Bearer {await self._token()}"}
        async with connect(url, additional_headers=headers, open_timeout=10, ping_interval=20,
                           ping_timeout=20) as ws:
            self._ws = ws
            self.reconnects += 1
            waiter = asyncio.create_task(self._changed.wait())
            reader = asyncio.create_task(self._read(ws, set(full)))
            try:
                done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if reader not in done:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await reader
                    return
                failure = reader.exception()
            finally:
                waiter.cancel()
                if not reader.done():  # we are being cancelled (aclose)
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await reader
                self._ws = None
            if ws.close_code in _REFUSED:
                raise MarketDataError(f"The market gateway {_REFUSED[ws.close_code]}: {ws.close_reason}")
            if failure is not None:
                raise failure
            raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)  # the gateway closed

    async def _read(self, ws: ClientConnection, full: set[str]) -> None:
        async for raw in ws:
            for line in str(raw).split("\n"):  # frames=lines: every frame waiting, one a line
                self._on_frame(json.loads(line), full)

    def _on_frame(self, message: dict[str, Any], full: set[str]) -> None:
        """One frame of the stream: seq bookkeeping (a repeat across a reconnect is skipped), then trades to
        the consumers and freshness."""
        kind = message.get("type")
        symbol = message.get("symbol")
        if kind == "hello":
            self._on_hello(message)
            return
        if not isinstance(symbol, str):
            return
        seq = int(message.get("seq", 0))
        if symbol in full:
            if kind == "reset":
                self._seq[symbol] = seq
                self.resets += 1
                self._reset_events[symbol] = self._reset_events.get(symbol, 0) + 1
                return
            last = self._seq.get(symbol)
            if last is not None and seq <= last:
                self.duplicates += 1
                return
            self._seq[symbol] = seq
        if kind == "trade":
            tick = Tick(symbol, int(message["timestamp"]), float(message["price"]), float(message["amount"]),
                        message.get("side"))
            self._last_price[symbol] = (tick.timestamp_ms, tick.price)
            self._board.mark(symbol)
            for consumer in self._consumers:
                if symbol in consumer.symbols:
                    consumer.put(tick)
        elif kind == "candle":
            row = message["candle"]
            self._last_candle[symbol] = Candle(int(row[0]), *(float(x) for x in row[1:6]))
            self._board.mark(symbol)
        elif kind == "status" and message.get("status") == "reconnecting":
            self._board.mark_reconnecting(symbol)

    def _on_hello(self, message: dict[str, Any]) -> None:
        self._epoch = str(message.get("epoch") or "")
        self._upstream = str(message.get("market") or self._upstream)
        for symbol, start in (message.get("seq") or {}).items():
            self._seq.setdefault(symbol, int(start))
        self.connection = "connected"
        self.last_error = None

    def _stream_url(self, full: list[str], watch: list[str]) -> str:
        parts = urlsplit(self._base_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        query = {"symbols": ",".join(full), "frames": "lines"}
        if watch:
            query["watch"] = ",".join(watch)
        resume = [f"{s}:{self._seq[s]}" for s in full if s in self._seq]
        if resume and self._epoch:
            query["since"] = ",".join(resume)
            query["epoch"] = self._epoch
        encoded = "&".join(f"{k}={quote(v, safe='/,:')}" for k, v in query.items())
        return urlunsplit((scheme, parts.netloc, parts.path + "/v1/market/stream", encoded, ""))

    async def _get(self, path: str, **params: Any) -> Any:
        try:
            response = await self._http.get(
                path, params=params, headers={"Authorization": f"Bearer {await self._token()}"}
            )
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"The Skeet backend cannot be reached for market data ({exc}).") from exc
        if response.status_code == 200:
            return response.json()
        try:
            message = str(response.json().get("error") or response.text)
        except ValueError:
            message = response.text or f"HTTP {response.status_code}"
        if response.status_code == 404:
            raise UnknownSymbol(message)
        if response.status_code in (502, 503, 504):
            raise FeedUnavailable(message)
        raise MarketDataError(message)


def _describe(exc: Exception) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} from the market gateway"
    return str(exc) or type(exc).__name__
