"""`CcxtFeed`: public market data from any ccxt exchange, without keys, live and gap-free.

Trades stream through ccxt.pro (`watch_trades`) where the exchange has it, REST polling (`fetch_trades`)
where not. A dropped socket is retried with exponential backoff and jitter; after any interruption the
trades since the last one seen are fetched over REST, so a consumer's candles and signal windows stay exact
(no trade lost, none repeated: trades are de-duplicated by id per timestamp). The fill runs once the new
subscription has delivered, so REST covers the whole gap (on a quiet market also after `early_fill_s`, so the
gap's trades show without waiting for the next one). A socket that goes silent for
`silence_reconnect_s` is torn down and reconnected (ccxt can keep a dead socket open, e.g. after a malformed
frame stops its receive loop). One upstream per symbol, shared by every consumer (`FanOut`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import ccxt
import ccxt.async_support
import ccxt.pro

from services.backoff import Backoff
from services.market.ccxt_sockets import force_reconnect
from services.market.errors import is_transient, translate
from services.market.fanout import FanOut
from services.market.freshness import FeedStatus, FreshnessBoard
from services.market.quirks import ccxt_options, watch_trades_params
from services.market.quotes import BookTop
from services.market.types import TIMEFRAME_MS, Candle, MarketDataError, Tick, UnknownSymbol
from services.market.watching import Watch, latest_values

R = TypeVar("R")
_log = logging.getLogger(__name__)


class Gap(NamedTuple):
    """Trades of `symbol` between `from_ms` and `to_ms` that a gap fill gave up on (too many to fetch)."""

    symbol: str
    from_ms: int
    to_ms: int


def create_exchange(exchange_id: str, config: dict[str, Any] | None = None) -> Any:
    """A ccxt.pro instance (ccxt async REST when ccxt.pro lacks the exchange), rate limiter on by default."""
    module = ccxt.pro if exchange_id in ccxt.pro.exchanges else ccxt.async_support
    cls = getattr(module, exchange_id, None)
    if cls is None:
        raise MarketDataError(f"ccxt does not know the exchange {exchange_id!r}.")
    config = dict(config or {})
    config["options"] = ccxt_options(exchange_id) | config.get("options", {})
    return cls({"enableRateLimit": True} | config)


class CcxtFeed:
    """A `MarketFeed` over a ccxt exchange. Owns the ccxt instance and its sockets: use `async with`."""

    def __init__(
        self,
        exchange_id: str,
        *,
        config: dict[str, Any] | None = None,
        exchange: Any = None,
        clock: Callable[[], float] = time.time,
        stale_after_s: float = 10.0,
        silence_reconnect_s: float = 60.0,
        backoff: Backoff | None = None,
        rest_retries: int = 2,
        poll_interval_s: float = 2.0,
        fill_page_limit: int = 1000,
        fill_max_pages: int = 20,
        early_fill_s: float = 2.0,
        label: str | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self._label = label or f"Live · {exchange_id}"
        self._ex = exchange if exchange is not None else create_exchange(exchange_id, config)
        self._clock = clock
        self._freshness = FreshnessBoard(stale_after_s=stale_after_s, clock=clock)
        self._silence_reconnect_s = silence_reconnect_s
        self._backoff = backoff or Backoff()
        self._rest_retries = rest_retries
        self._poll_interval_s = poll_interval_s
        self._fill_page_limit = fill_page_limit
        self._fill_max_pages = fill_max_pages
        self.unfilled_gaps: list[Gap] = []
        self._early_fill_s = early_fill_s
        self._hub: FanOut[str, tuple[str | None, Tick]] = FanOut(self._trade_stream)
        # Latest-value streams, keyed by (kind, symbol, timeframe): one upstream each, shared by consumers.
        self._latest: FanOut[tuple[str, str, str], Any] = FanOut(self._latest_stream)
        self._markets: dict[str, dict[str, Any]] | None = None
        self._markets_lock = asyncio.Lock()
        self.reconnects = 0
        self.filled_trades = 0

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> CcxtFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every stream, then close the exchange's sockets and HTTP session."""
        await self._hub.aclose()
        await self._latest.aclose()
        with contextlib.suppress(Exception):
            await self._ex.close()

    @property
    def mode(self) -> str:
        return self._label

    @property
    def exchange(self) -> Any:
        return self._ex

    # -- MarketFeed ------------------------------------------------------------------------------------------
    async def markets(self) -> dict[str, dict[str, Any]]:
        async with self._markets_lock:
            if self._markets is None:
                loaded: dict[str, dict[str, Any]] = await self._rest(
                    f"{self.exchange_id} markets", self._ex.load_markets
                )
                self._markets = loaded
            return dict(self._markets)

    async def ticker(self, symbol: str) -> dict[str, Any]:
        await self._check(symbol)
        return await self._rest(f"the {symbol} ticker", self._ex.fetch_ticker, symbol)

    async def candles(
        self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None, limit: int = 200
    ) -> list[Candle]:
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(
                f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}."
            )
        await self._check(symbol)
        if not self._ex.has.get("fetchOHLCV"):
            raise MarketDataError(f"{self.exchange_id} does not offer candles.")
        rows = await self._rest(
            f"{symbol} {timeframe} candles", self._ex.fetch_ohlcv, symbol, timeframe, since_ms, limit
        )
        return [
            Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0))
            for r in rows
        ]

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Trades of `symbols` as they arrive, gap-filled after reconnects; one upstream per symbol."""
        if not symbols:
            raise MarketDataError("Pick at least one symbol to stream.")
        return self._checked_ticks(list(dict.fromkeys(symbols)))

    async def _checked_ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        async with contextlib.aclosing(self.identified_ticks(symbols)) as stream:
            async for _, tick in stream:
                yield tick

    async def identified_ticks(self, symbols: list[str]) -> AsyncGenerator[tuple[str | None, Tick], None]:
        """Like `ticks`, each with the exchange's trade id (what a recorder writes)."""
        for symbol in symbols:
            await self._check(symbol)
        async with contextlib.aclosing(self._hub.subscribe(list(dict.fromkeys(symbols)))) as stream:
            async for item in stream:
                yield item

    # -- more public data -----------------------------------------------------------------------------------
    async def trades(
        self, symbol: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Tick]:
        """Recent public trades over REST (oldest first)."""
        await self._check(symbol)
        rows = await self._rest(f"{symbol} trades", self._ex.fetch_trades, symbol, since_ms, limit)
        return [_tick(symbol, t) for t in rows]

    async def book_top(self, symbol: str) -> BookTop:
        """Best bid/ask: from the order-book stream when the exchange has one, REST otherwise."""
        await self._check(symbol)
        if self._ex.has.get("watchOrderBook"):
            try:
                book = await asyncio.wait_for(self._ex.watch_order_book(symbol), self._silence_reconnect_s)
            except Exception as exc:  # noqa: BLE001 - fall back to REST below, but never hide a bad symbol
                if isinstance(exc, ccxt.BadSymbol):
                    raise translate(exc, self.exchange_id, f"the {symbol} order book") from exc
                book = await self._rest(f"the {symbol} order book", self._ex.fetch_order_book, symbol, 5)
        else:
            book = await self._rest(f"the {symbol} order book", self._ex.fetch_order_book, symbol, 5)
        return _book_top(book)

    async def tickers(self, symbols: list[str]) -> AsyncGenerator[dict[str, Any], None]:
        """ccxt tickers of `symbols` as they change (`watch_ticker`, or `fetch_ticker` polling)."""
        async for _, ticker in self._latest_of("ticker", symbols):
            yield ticker

    async def book_tops(self, symbols: list[str]) -> AsyncGenerator[BookTop, None]:
        """Best bid/ask of `symbols` as the books change (`watch_order_book`, or `fetch_order_book` polling)."""
        async for _, book in self._latest_of("book", symbols):
            yield _book_top(book)

    async def candle_updates(self, symbol: str, timeframe: str = "1m") -> AsyncGenerator[Candle, None]:
        """The forming bar (and the one just closed) of `symbol` on every change (`watch_ohlcv`, or polling)."""
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(
                f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}."
            )
        async for _, rows in self._latest_of("ohlcv", [symbol], timeframe):
            for r in rows:
                yield Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0))

    async def _latest_of(
        self, kind: str, symbols: list[str], timeframe: str = ""
    ) -> AsyncGenerator[Any, None]:
        for symbol in symbols:
            await self._check(symbol)
        keys = [(kind, s, timeframe) for s in dict.fromkeys(symbols)]
        async with contextlib.aclosing(self._latest.subscribe(keys)) as stream:
            async for item in stream:
                yield item

    def _latest_stream(self, key: tuple[str, str, str]) -> AsyncGenerator[tuple[str, Any], None]:
        kind, symbol, timeframe = key
        ex, has = self._ex, self._ex.has
        specs = {
            "ticker": Watch(
                f"the {symbol} ticker",
                (lambda: ex.watch_ticker(symbol)) if has.get("watchTicker") else None,
                lambda: ex.fetch_ticker(symbol),
            ),
            "book": Watch(
                f"the {symbol} order book",
                (lambda: ex.watch_order_book(symbol)) if has.get("watchOrderBook") else None,
                lambda: ex.fetch_order_book(symbol, 5),
            ),
            "ohlcv": Watch(
                f"{symbol} {timeframe} candles",
                (lambda: ex.watch_ohlcv(symbol, timeframe)) if has.get("watchOHLCV") else None,
                lambda: ex.fetch_ohlcv(symbol, timeframe, None, 2),
            ),
        }
        return self._tagged(
            symbol,
            latest_values(
                specs[kind],
                exchange_id=self.exchange_id,
                backoff=self._backoff,
                poll_interval_s=self._poll_interval_s,
                silence_s=self._silence_reconnect_s,
                on_data=lambda: self._freshness.mark(symbol),
                on_retry=lambda: self._freshness.mark_reconnecting(symbol),
                on_silence=lambda: force_reconnect(
                    ex, f"no data for {self._silence_reconnect_s:g} s", symbol=symbol
                ),
            ),
        )

    @staticmethod
    async def _tagged(
        symbol: str, values: AsyncGenerator[Any, None]
    ) -> AsyncGenerator[tuple[str, Any], None]:
        async with contextlib.aclosing(values):
            async for value in values:
                yield symbol, value

    # -- freshness -------------------------------------------------------------------------------------------
    def status(self, symbol: str) -> FeedStatus:
        return self._freshness.status(symbol)

    def last_tick_ms(self, symbol: str) -> int | None:
        """Local clock time (ms) when the symbol's latest trade arrived."""
        return self._freshness.last_tick_ms(symbol)

    # -- internals -------------------------------------------------------------------------------------------
    async def _check(self, symbol: str) -> None:
        markets = await self.markets()
        if symbol not in markets:
            raise UnknownSymbol(f"{symbol} is not traded on {self.exchange_id}.")

    async def _rest(self, what: str, call: Callable[..., Awaitable[R]], *args: Any) -> R:
        """`call(*args)`, retried with backoff on transient failures, errors translated for traders."""
        attempt = 0
        while True:
            try:
                return await call(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every ccxt failure becomes a MarketDataError
                if not is_transient(exc) or attempt >= self._rest_retries:
                    raise translate(exc, self.exchange_id, what) from exc
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1

    async def _trade_stream(self, symbol: str) -> AsyncIterator[tuple[str | None, Tick]]:
        """The one upstream of `symbol`: live trades, then after any interruption, REST fill and resume."""
        cursor = _Cursor()
        streaming = bool(self._ex.has.get("watchTrades"))
        params = watch_trades_params(self.exchange_id)
        attempt = 0
        need_fill = early_filled = False
        pending: asyncio.Future[Any] | None = None
        self._freshness.mark_reconnecting(symbol)  # connecting: no data yet
        try:
            while True:
                try:
                    if streaming:
                        if pending is None:
                            pending = asyncio.ensure_future(self._ex.watch_trades(symbol, None, None, params))
                        if need_fill and not early_filled:
                            done, _ = await asyncio.wait({pending}, timeout=self._early_fill_s)
                            if pending not in done:
                                # A quiet market: show the gap now; filled again once the stream delivers.
                                for item in await self._fill(symbol, cursor):
                                    yield item
                                early_filled = True
                                continue
                        batch = await self._wait_watch(symbol, pending)
                        if batch is None:
                            continue  # silent socket torn down: its watch fails on the next round
                        pending = None
                    else:
                        if cursor.last_ms is not None:
                            await asyncio.sleep(self._poll_interval_s)
                        batch = await self._ex.fetch_trades(symbol, cursor.last_ms)
                        if cursor.last_ms is None:
                            for trade in batch:  # the first poll only places the cursor: no history
                                cursor.accept(trade)
                            if cursor.last_ms is None:
                                await asyncio.sleep(self._poll_interval_s)
                            continue
                    attempt = 0
                    if need_fill:
                        # Filled after the new subscription delivered: REST now covers the whole gap.
                        for item in await self._fill(symbol, cursor):
                            yield item
                        need_fill = early_filled = False
                    for trade in batch:
                        if cursor.accept(trade):
                            self._freshness.mark(symbol)
                            yield _identified(symbol, trade)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - classify: retry what is transient, surface the rest
                    pending = None
                    if not is_transient(exc):
                        raise translate(exc, self.exchange_id, f"{symbol} trades") from exc
                    self._freshness.mark_reconnecting(symbol)
                    self.reconnects += 1
                    need_fill, early_filled = cursor.last_ms is not None, False
                    await asyncio.sleep(self._backoff.delay(attempt))
                    attempt += 1
        finally:
            if pending is not None:
                pending.cancel()
                if pending.done() and not pending.cancelled():
                    pending.exception()  # retrieved: a failure while closing is nobody's concern

    async def _wait_watch(self, symbol: str, pending: asyncio.Future[Any]) -> Any:
        """The watch's result; None after tearing down a socket silent for `silence_reconnect_s`."""
        done, _ = await asyncio.wait({pending}, timeout=self._silence_reconnect_s)
        if pending in done:
            return pending.result()
        await force_reconnect(
            self._ex, f"no data for {self._silence_reconnect_s:g} s on {symbol}", symbol=symbol
        )
        return None

    async def _fill(self, symbol: str, cursor: _Cursor) -> list[tuple[str | None, Tick]]:
        """Trades since the cursor over REST, paging forward until a short page.

        After `fill_max_pages` full pages (a long outage: a laptop waking up) the rest is left unfilled and
        recorded in `unfilled_gaps`, rather than downloading hours of trades.
        """
        out: list[tuple[str | None, Tick]] = []
        for _ in range(self._fill_max_pages):
            if cursor.last_ms is None:
                break
            page = await self._ex.fetch_trades(symbol, cursor.last_ms, self._fill_page_limit)
            fresh = [t for t in page if cursor.accept(t)]
            out.extend(_identified(symbol, t) for t in fresh)
            if len(page) < self._fill_page_limit or not fresh:
                break
        else:
            gap = Gap(symbol, cursor.last_ms or 0, int(self._clock() * 1000))
            self.unfilled_gaps.append(gap)
            _log.warning("%s: %s trades from %d to %d were not filled", self.exchange_id, *gap)
        if out:
            self._freshness.mark(symbol)
            self.filled_trades += len(out)
        return out


class _Cursor:
    """Where a symbol's stream is: the last trade time and the ids seen at that millisecond."""

    def __init__(self) -> None:
        self.last_ms: int | None = None
        self._ids_at_last: set[str] = set()

    def accept(self, trade: dict[str, Any]) -> bool:
        """True for a trade not seen yet and not older than the last one (per-symbol time order)."""
        ts = trade.get("timestamp")
        if ts is None:
            return False
        key = str(trade.get("id") or (trade.get("price"), trade.get("amount"), trade.get("side")))
        if self.last_ms is None or ts > self.last_ms:
            self.last_ms, self._ids_at_last = ts, {key}
            return True
        if ts == self.last_ms and key not in self._ids_at_last:
            self._ids_at_last.add(key)
            return True
        return False


def _tick(symbol: str, trade: dict[str, Any]) -> Tick:
    return Tick(
        symbol, int(trade["timestamp"]), float(trade["price"]), float(trade["amount"]), trade.get("side")
    )


def _book_top(book: dict[str, Any]) -> BookTop:
    bid = book["bids"][0] if book.get("bids") else (None, None)
    ask = book["asks"][0] if book.get("asks") else (None, None)
    return BookTop(book["symbol"], book.get("timestamp"), bid[0], bid[1], ask[0], ask[1])


def _identified(symbol: str, trade: dict[str, Any]) -> tuple[str | None, Tick]:
    trade_id = trade.get("id")
    return (None if trade_id is None else str(trade_id)), _tick(symbol, trade)


__all__ = ["BookTop", "CcxtFeed", "Gap", "create_exchange"]
