"""The loopback exchange's websocket side: Binance's SUBSCRIBE protocol, stream frames and order books.

A push loop sends, every `push_interval_s`, the replay's new trades (`@trade`, `@aggTrade`), the bars they
touched (`@kline_<i>`), tickers once a second (`@ticker`, `@miniTicker`) and book diffs every 100 ms
(`@depth`, with `U`/`u` update ids that continue the REST snapshot's `lastUpdateId`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from services.market import binance_wire as wire
from services.market.streaming import ClockedMarket
from services.market.types import TIMEFRAME_MS, Tick

_log = logging.getLogger(__name__)
_TICKER_EVERY_MS = 1000
_DEPTH_EVERY_MS = 100


class SyntheticBooks:
    """Each market's synthetic order book and its update id, moved to the replay's price on demand."""

    def __init__(
        self, feed: ClockedMarket, markets_by_id: dict[str, dict[str, Any]], clock_ms: Callable[[], int]
    ):
        self._feed, self._markets, self._clock_ms = feed, markets_by_id, clock_ms
        self._books: dict[str, tuple[int, wire.Book]] = {}

    def fresh(self, market_id: str) -> wire.Book:
        """The book at the replay's current price (not recorded as an update)."""
        market = self._markets[market_id]
        price = self._feed.price_at(market["symbol"], self._clock_ms())
        return wire.Book(market["symbol"], price, market["precision"]["price"], market["precision"]["amount"])

    def current(self, market_id: str) -> tuple[int, wire.Book]:
        """(last update id, book) as last published."""
        if market_id not in self._books:
            self._books[market_id] = (1, self.fresh(market_id))
        return self._books[market_id]

    def advance(self, market_id: str) -> dict[str, Any] | None:
        """Publish the book at now: the `depthUpdate` event for the change, or None when nothing changed."""
        update_id, old = self.current(market_id)
        new = self.fresh(market_id)
        bids, asks = old.diff(new)
        if not bids and not asks:
            return None
        self._books[market_id] = (update_id + 1, new)
        return {
            "e": "depthUpdate",
            "E": self._clock_ms(),
            "s": market_id,
            "U": update_id + 1,
            "u": update_id + 1,
            "b": bids,
            "a": asks,
        }

    def top(self, market_id: str) -> tuple[float, float]:
        book = self.fresh(market_id)
        return book.bids[0][0], book.asks[0][0]


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    streams: set[str] = field(default_factory=set)


class BinanceStreams:
    """Websocket connections and the push loop; `run()` is the loop (its owner cancels it)."""

    def __init__(
        self,
        feed: ClockedMarket,
        markets_by_id: dict[str, dict[str, Any]],
        books: SyntheticBooks,
        *,
        ticker_body: Callable[[str], dict[str, Any]],
        on_trades: Callable[[str, list[Tick]], None],
        watched_ids: Callable[[], set[str]],
        clock_ms: Callable[[], int],
        push_interval_s: float,
    ) -> None:
        self._feed, self._markets, self._books = feed, markets_by_id, books
        self._ticker_body, self._on_trades, self._watched_ids = ticker_body, on_trades, watched_ids
        self._clock_ms = clock_ms
        self._push_interval_s = push_interval_s
        self._connections: set[_Connection] = set()
        self._last_ticker_ms: dict[str, int] = {}
        self._last_depth_ms = 0
        self._cursor_ms = clock_ms() + 1
        self.stalled = False

    @property
    def subscriptions(self) -> set[str]:
        return set().union(*(c.streams for c in self._connections)) if self._connections else set()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def drop(self, *, abrupt: bool = False) -> int:
        connections = list(self._connections)
        self._connections.clear()
        for conn in connections:
            if abrupt and conn.request.transport is not None:
                conn.request.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"loopback: dropped")
        return len(connections)

    async def send_raw(self, text: str) -> None:
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.send_str(text)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The websocket endpoint (`/ws`, `/ws/<n>`)."""
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = _Connection(ws, request)
        self._connections.add(conn)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_command(conn, message.data)
        finally:
            self._connections.discard(conn)
        return ws

    async def _on_command(self, conn: _Connection, text: str) -> None:
        try:
            command = json.loads(text)
            method, params, request_id = command["method"], command.get("params", []), command.get("id")
        except (ValueError, KeyError, TypeError):
            await conn.ws.send_json({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
            return
        if method == "SUBSCRIBE":
            conn.streams.update(str(p) for p in params)
            await conn.ws.send_json({"result": None, "id": request_id})
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(str(p) for p in params)
            await conn.ws.send_json({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_json({"result": sorted(conn.streams), "id": request_id})
        else:
            await conn.ws.send_json(
                {"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"}, "id": request_id}
            )

    async def run(self) -> None:
        """Push frames forever; while stalled, sockets stay open and the backlog waits for `stalled = False`."""
        while True:
            await asyncio.sleep(self._push_interval_s)
            if self.stalled:
                continue
            try:
                await self._push_once()
            except Exception:  # noqa: BLE001 - a bad frame must not end the exchange
                _log.exception("loopback exchange: pushing stream frames failed")

    async def _push_once(self) -> None:
        now = self._clock_ms()
        since, self._cursor_ms = self._cursor_ms, now + 1
        streams = self.subscriptions
        ids = {s.split("@", 1)[0].upper() for s in streams} | self._watched_ids()
        frames: dict[str, list[dict[str, Any]]] = {}
        depth_due = now - self._last_depth_ms >= _DEPTH_EVERY_MS
        if depth_due:
            self._last_depth_ms = now
        for market_id in ids & set(self._markets):
            frames |= self._frames(market_id, streams, since, now, depth_due=depth_due)
        for conn in list(self._connections):
            for stream in sorted(conn.streams):
                for frame in frames.get(stream, ()):
                    try:
                        await conn.ws.send_str(json.dumps(frame, separators=(",", ":")))
                    except (ConnectionError, RuntimeError):
                        self._connections.discard(conn)
                        break

    def _frames(
        self, market_id: str, streams: set[str], since: int, now: int, *, depth_due: bool
    ) -> dict[str, list[dict[str, Any]]]:
        symbol, lower = self._markets[market_id]["symbol"], market_id.lower()
        numbered = self._feed.numbered_trades_between(symbol, since, now + 1)
        if numbered:
            self._on_trades(market_id, [t for _, t in numbered])
        frames = {
            f"{lower}@trade": [wire.trade_frame(market_id, i, t, now) for i, t in numbered],
            f"{lower}@aggTrade": [
                wire.agg_trade(i, t) | {"e": "aggTrade", "E": now, "s": market_id} for i, t in numbered
            ],
        }
        for stream in streams:
            if stream.startswith(f"{lower}@kline_") and numbered:
                frames[stream] = self._kline_frames(market_id, stream.split("_", 1)[1], numbered, now)
        if now - self._last_ticker_ms.get(market_id, 0) >= _TICKER_EVERY_MS and (
            f"{lower}@ticker" in streams or f"{lower}@miniTicker" in streams
        ):
            self._last_ticker_ms[market_id] = now
            body = self._ticker_body(market_id)
            frames[f"{lower}@ticker"] = [wire.ticker_frame(market_id, body, now, mini=False)]
            frames[f"{lower}@miniTicker"] = [wire.ticker_frame(market_id, body, now, mini=True)]
        if depth_due and any(s.startswith(f"{lower}@depth") for s in streams):
            event = self._books.advance(market_id)
            if event is not None:
                frames |= {s: [event] for s in streams if s.startswith(f"{lower}@depth")}
        return frames

    def _kline_frames(
        self, market_id: str, interval: str, numbered: list[tuple[int, Tick]], now: int
    ) -> list[dict[str, Any]]:
        frame_ms = TIMEFRAME_MS.get(interval)
        if frame_ms is None:
            return []
        first_open = numbered[0][1].timestamp_ms // frame_ms * frame_ms
        symbol = self._markets[market_id]["symbol"]
        candles = self._feed.candles_at(symbol, interval, since_ms=first_open, limit=1000)
        return [
            wire.kline_frame(market_id, interval, c, frame_ms, now, closed=c.timestamp_ms + frame_ms <= now)
            for c in candles
        ]
