"""`/v1/market/*`: market data for clients that carry no exchange library (phones, the hosted web app).

- `GET /v1/market/markets`: symbol → ccxt market structure.
- `GET /v1/market/ticker?symbol=`: a ccxt ticker.
- `GET /v1/market/candles?symbol=&timeframe=1m&since=&limit=200`: ccxt OHLCV rows `[[ts, o, h, l, c, v], ...]`.
- `WS /v1/market/stream?symbols=A,B[&watch=C,D][&since=A:12,B:40&epoch=E]`: frames of `hub.py`. `symbols`
  stream every trade; `watch` symbols only their candle (about once a second) and status. The first frame is
  `{"type": "hello", "epoch", "seq": {symbol: start}, "watch"}`; frames of a symbol then carry seq start+1,
  start+2, ... with no gap. To resume after a drop, reconnect with `since=` (the last seq seen per symbol)
  and the `epoch` of the hello; a symbol that cannot resume gets `{"type": "reset", "symbol", "seq"}` (fetch
  its candles again). Closes: 4401 bad token, 4400 bad request (the reason says what), 4429 too many streams
  for the user, 1013 the client fell behind (reconnect with since=).
  Frames go out in flushes, at most one per `GatewayLimits.flush_s` (0.02 s). With `frames=lines` a
  websocket message carries every frame of a flush for the client, one JSON object a line (`\n` between
  them, at most `hub.MAX_LINES`): one message per client per flush instead of one per frame, which is most
  of the fan-out's cost (bench/gateway.py). Without it, one frame a message.

The caller is checked on every route: HTTP by the `BearerAuth` middleware, the websocket like `/v1/stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect

from backend_stub.auth import TokenVerifier
from backend_stub.errors import ApiError
from backend_stub.gateway.hub import GatewayLimits, MarketGateway, Subscriber, TooManyStreams, message_texts
from backend_stub.gateway.wire import SINK
from backend_stub.runtime import current_uid
from backend_stub.stream import BAD_REQUEST, TRY_AGAIN, authenticate_websocket
from services.market.types import TIMEFRAME_MS, MarketDataError, UnknownSymbol

log = logging.getLogger(__name__)

TOO_MANY = 4429
MAX_CANDLES = 1000


def _gateway(app: FastAPI) -> MarketGateway:
    return app.state.market_gateway


def build_router(verifier: TokenVerifier, *, limits: GatewayLimits | None = None) -> APIRouter:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runs inside the app's own lifespan, so the backend's feed is open by now.
        async with MarketGateway(app.state.backend.feed, limits=limits or GatewayLimits.from_env()) as gateway:
            app.state.market_gateway = gateway
            yield

    router = APIRouter(tags=["market"], lifespan=lifespan)

    @router.get("/v1/market/markets")
    async def markets(request: Request, uid: str = Depends(current_uid)) -> Any:
        return await _gateway(request.app).markets()

    @router.get("/v1/market/ticker")
    async def ticker(
        request: Request,
        symbol: Annotated[str, Query(min_length=1, max_length=32)],
        uid: str = Depends(current_uid),
    ) -> Any:
        gateway = _gateway(request.app)
        await _known(gateway, [symbol])
        try:
            return await gateway.feed.ticker(symbol)
        except MarketDataError as exc:
            raise ApiError(503, str(exc)) from exc

    @router.get("/v1/market/candles")
    async def candles(
        request: Request,
        symbol: Annotated[str, Query(min_length=1, max_length=32)],
        timeframe: Annotated[str, Query()] = "1m",
        since: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_CANDLES)] = 200,
        uid: str = Depends(current_uid),
    ) -> list[list[float]]:
        gateway = _gateway(request.app)
        if timeframe not in TIMEFRAME_MS:
            raise ApiError(422, f"Timeframe {timeframe!r} is not offered; use one of {', '.join(TIMEFRAME_MS)}.")
        await _known(gateway, [symbol])
        try:
            bars = await gateway.feed.candles(symbol, timeframe, since_ms=since, limit=limit)
        except UnknownSymbol as exc:
            raise ApiError(404, str(exc)) from exc
        except MarketDataError as exc:
            raise ApiError(503, str(exc)) from exc
        return [[b.timestamp_ms, b.open, b.high, b.low, b.close, b.volume] for b in bars]

    @router.websocket("/v1/market/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        uid = await authenticate_websocket(websocket, verifier)
        if uid is None:
            return
        gateway = _gateway(websocket.app)
        params = websocket.query_params
        try:
            full = _symbols(params.get("symbols"))
            watch = [s for s in _symbols(params.get("watch")) if s not in full]
            if not full and not watch:
                raise ValueError("Name at least one symbol: ?symbols=BTC/USDT,ETH/USDT")
            if len(full) + len(watch) > gateway.limits.max_symbols:
                raise ValueError(f"At most {gateway.limits.max_symbols} symbols per stream.")
            since = _since(params.get("since"))
            await gateway.check_symbols(full + watch)
        except (ValueError, UnknownSymbol) as exc:
            await websocket.close(BAD_REQUEST, str(exc)[:120])
            return
        except MarketDataError as exc:
            await websocket.close(TRY_AGAIN, str(exc)[:120])
            return
        try:
            sub = gateway.open_stream(uid, full=full, watch=watch, since=since, epoch=params.get("epoch"),
                                      lines=params.get("frames") == "lines")
        except TooManyStreams as exc:
            await websocket.close(TOO_MANY, str(exc)[:120])
            return
        try:
            await _serve(websocket, sub)
        finally:
            gateway.close_stream(sub)

    return router


async def _known(gateway: MarketGateway, symbols: list[str]) -> None:
    try:
        await gateway.check_symbols(symbols)
    except UnknownSymbol as exc:
        raise ApiError(404, str(exc)) from exc
    except MarketDataError as exc:
        raise ApiError(503, str(exc)) from exc


async def _serve(websocket: WebSocket, sub: Subscriber) -> None:
    """Write what the subscriber is owed at the start (hello, resumed frames) through ASGI; then, where the
    server offers a `FrameSink`, hand the connection to the gateway's flushes and wait until the client
    leaves or falls behind. Without one, every frame goes through ASGI."""
    sink = websocket.scope.get("extensions", {}).get(SINK)
    reader = asyncio.create_task(_until_client_leaves(websocket), name="market-stream-receive")
    reader.add_done_callback(lambda _: sub.end())
    try:
        while True:
            batch = await sub.next_batch()
            if not batch:
                break
            for text in message_texts(batch, lines=sub.lines):
                await websocket.send_text(text)
            if sink is not None and sub.go_live(sink):
                await sub.finished()
                break
        if sub.too_slow:  # its queue overflowed: it resumes from its last seq
            await websocket.close(TRY_AGAIN, "fell behind the market; reconnect with since=")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _until_client_leaves(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _symbols(raw: str | None) -> list[str]:
    symbols = list(dict.fromkeys(s.strip() for s in (raw or "").split(",") if s.strip()))
    for symbol in symbols:
        if "/" not in symbol or len(symbol) > 32:
            raise ValueError(f"{symbol[:32]!r} is not a symbol such as BTC/USDT.")
    return symbols


def _since(raw: str | None) -> dict[str, int]:
    """`BTC/USDT:12,ETH/USDT:40` → {symbol: seq}."""
    out: dict[str, int] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        symbol, _, seq = part.strip().rpartition(":")
        if not symbol or not seq.isdigit():
            raise ValueError("since must read SYMBOL:SEQ,... (the last seq seen per symbol).")
        out[symbol] = int(seq)
    return out
