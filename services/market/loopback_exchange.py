"""A loopback exchange speaking Binance spot's wire format, fed by a replay: live mode offline, and a test bench.

ccxt's unmodified `ccxt.pro.binance` runs against it with only its `urls` pointed here (`binance_config`):
public REST (`/api/v3/exchangeInfo`, `ticker/24hr`, `aggTrades`, `trades`, `klines`, `depth`, `time`),
signed private REST (`account`, `order` POST/GET/DELETE, `openOrders`, `allOrders`, `myTrades`) and the
websocket streams (`@trade`, `@aggTrade`, `@kline_<i>`, `@miniTicker`, `@ticker`, `@depth[@100ms]`).
Prices come from a clock-anchored market (`ReplayFeed`, or `SyntheticFeed` with `--market synthetic`), so the app
and this exchange agree on the market.

Test hooks: `drop_sockets()`, `stall()` / `resume()`, `send_malformed()`, `fail_next(n, ...)`,
`throttle_next(n)` (`path=` faults one endpoint only); `add_account(...)` opens another API key's account
(signed requests reach the account of their X-MBX-APIKEY: no user sees another's orders, fills, balances).

    python -m services.market.loopback_exchange --port 8765 [--market synthetic|replay|replay:PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from services.market import binance_wire as wire
from services.market.loopback_account import (
    DEFAULT_API_KEY,
    DEFAULT_SECRET,
    ApiError,
    SpotAccount,
    trade_id_counter,
)
from services.market.loopback_streams import BinanceStreams, SyntheticBooks
from services.market.replay import ReplayFeed
from services.market.streaming import ClockedMarket
from services.market.types import TIMEFRAME_MS, Tick

_HOUR_MS = 3_600_000


def binance_config(
    host: str, port: int, *, api_key: str | None = None, secret: str | None = None
) -> dict[str, Any]:
    """ccxt constructor config pointing every Binance URL at the loopback exchange (nothing leaves the host)."""
    import ccxt.pro  # local: only callers that talk to an exchange pay for importing ccxt

    def rebase(url: Any) -> Any:
        if isinstance(url, dict):
            return {k: rebase(v) for k, v in url.items()}
        if not isinstance(url, str):
            return url
        parts = urlsplit(url)
        scheme = {"https": "http", "wss": "ws"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, f"{host}:{port}", parts.path, "", ""))

    config: dict[str, Any] = {
        "urls": {"api": rebase(ccxt.pro.binance().describe()["urls"]["api"])},
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
    }
    if api_key is not None:
        config |= {"apiKey": api_key, "secret": secret}
    return config


@dataclass
class _Fault:
    remaining: int
    status: int
    code: int
    msg: str
    path: str | None = None  # only requests to this path, e.g. "/api/v3/myTrades"


class LoopbackExchange:
    """An aiohttp server on `host:port` (0 picks a free port); an async context manager that stops it."""

    def __init__(
        self,
        feed: ClockedMarket | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_SECRET,
        balances: dict[str, float] | None = None,
        commission_rate: Decimal = Decimal(0),
        push_interval_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed: ClockedMarket = feed if feed is not None else ReplayFeed(clock=clock)
        self.host, self.port = host, port
        self._clock = clock
        markets = self.feed.market_table()
        self._markets = {m["id"]: m for m in markets.values()}
        self._books = SyntheticBooks(self.feed, self._markets, self._now_ms)
        self._commission_rate = commission_rate
        self._next_trade_id = trade_id_counter()
        self.accounts: dict[str, SpotAccount] = {}  # API key → its account
        self.account = self.add_account(api_key=api_key, secret=secret, balances=balances)
        self.api_key, self.secret = api_key, secret
        self._streams = BinanceStreams(
            self.feed,
            self._markets,
            self._books,
            ticker_body=self._ticker_body,
            on_trades=self._on_trades,
            watched_ids=lambda: {o["symbol"] for a in self.accounts.values() for o in a.open_orders({})},
            clock_ms=self._now_ms,
            push_interval_s=push_interval_s,
        )
        self._faults: list[_Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> LoopbackExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("GET", "/ws", self._streams.handle)
        app.router.add_route("GET", "/ws/{tail:.*}", self._streams.handle)
        app.router.add_route("*", "/api/v3/{endpoint:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._pusher = asyncio.create_task(self._streams.run(), name="loopback-exchange-pusher")

    async def aclose(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        await self.drop_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ccxt_config(self, *, private: bool = False) -> dict[str, Any]:
        """`binance_config` for this server, with its API key and secret when `private`."""
        if private:
            return binance_config(self.host, self.port, api_key=self.api_key, secret=self.secret)
        return binance_config(self.host, self.port)

    def add_account(
        self, *, api_key: str, secret: str, balances: Mapping[str, float] | None = None
    ) -> SpotAccount:
        """Another trader's account, reached with their own API key and secret."""
        account = SpotAccount(
            self.feed.market_table(),
            top_of_book=self._books.top,
            clock_ms=self._now_ms,
            api_key=api_key,
            secret=secret,
            balances=balances,
            commission_rate=self._commission_rate,
            next_trade_id=self._next_trade_id,
        )
        self.accounts[api_key] = account
        return account

    # -- test hooks ------------------------------------------------------------------------------------------
    async def drop_sockets(self, *, abrupt: bool = False) -> int:
        """Close every websocket (a close frame, or a reset TCP connection when `abrupt`); returns how many."""
        return await self._streams.drop(abrupt=abrupt)

    def stall(self) -> None:
        """Stop sending stream frames (sockets stay open) until `resume`; the backlog is then delivered."""
        self._streams.stalled = True

    def resume(self) -> None:
        self._streams.stalled = False

    async def send_malformed(self, text: str = '{"e":"trade","s":') -> None:
        """Send a frame that is not valid JSON to every websocket."""
        await self._streams.send_raw(text)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        code: int = -1000,
        msg: str = "An unknown error occurred while processing the request.",
        path: str | None = None,
    ) -> None:
        """Answer the next `count` REST requests (to `path` only, when given) with an error instead of data."""
        self._faults.append(_Fault(count, status, code, msg, path))

    def throttle_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next `count` REST requests with HTTP 429, as Binance does past its request weight."""
        self.fail_next(
            count,
            status=429,
            code=-1003,
            msg="Too many requests; current limit is 6000 request weight per 1 MINUTE.",
            path=path,
        )

    @property
    def subscriptions(self) -> set[str]:
        """Every stream some websocket subscribed to."""
        return self._streams.subscriptions

    @property
    def connection_count(self) -> int:
        return self._streams.connection_count

    # -- HTTP ------------------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self.requests.append((request.method, request.path))
            fault = next((f for f in self._faults if f.path in (None, request.path)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return web.json_response({"code": fault.code, "msg": fault.msg}, status=fault.status)
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"code": -1000, "msg": f"The loopback exchange does not serve {request.path}."}, status=404
        )

    async def _rest(self, request: web.Request) -> web.Response:
        endpoint, method = request.match_info["endpoint"], request.method
        public = {
            ("GET", "ping"): lambda q: {},
            ("GET", "time"): lambda q: {"serverTime": self._now_ms()},
            ("GET", "exchangeInfo"): self._exchange_info,
            ("GET", "ticker/24hr"): self._ticker_24hr,
            ("GET", "ticker/price"): self._ticker_price,
            ("GET", "ticker/bookTicker"): self._book_ticker,
            ("GET", "aggTrades"): self._agg_trades,
            ("GET", "trades"): self._recent_trades,
            ("GET", "klines"): self._klines,
            ("GET", "depth"): self._depth,
        }
        private: dict[tuple[str, str], Callable[[SpotAccount, dict[str, str]], Any]] = {
            ("GET", "account"): lambda a, p: a.account(),
            ("POST", "order"): SpotAccount.place,
            ("GET", "order"): SpotAccount.get_order,
            ("DELETE", "order"): SpotAccount.cancel,
            ("GET", "openOrders"): SpotAccount.open_orders,
            ("GET", "allOrders"): SpotAccount.all_orders,
            ("GET", "myTrades"): SpotAccount.my_trades,
        }
        if (method, endpoint) in public:
            return web.json_response(public[(method, endpoint)](dict(request.query)))
        if (method, endpoint) in private:
            payload = await request.text() if method == "POST" else request.rel_url.raw_query_string
            api_key = request.headers.get("X-MBX-APIKEY")
            account = self.accounts.get(api_key or "", self.account)  # an unknown key fails authentication
            params = account.authenticate(api_key, payload)
            return web.json_response(private[(method, endpoint)](account, params))
        return await self._not_found(request)

    def _on_trades(self, symbol_id: str, ticks: list[Tick]) -> None:
        for account in self.accounts.values():
            account.on_trades(symbol_id, ticks)

    def _market_id(self, query: dict[str, str]) -> str:
        market_id = query.get("symbol", "")
        if market_id not in self._markets:
            raise ApiError(400, -1121, "Invalid symbol.")
        return market_id

    def _symbol(self, market_id: str) -> str:
        return self._markets[market_id]["symbol"]

    def _exchange_info(self, query: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self._now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [wire.symbol_info(m) for m in self._markets.values()],
        }

    def _ticker_body(self, market_id: str) -> dict[str, Any]:
        ticker = self.feed.ticker_now(self._symbol(market_id))
        return wire.ticker_24hr(market_id, ticker, self._books.current(market_id)[1])

    def _ticker_24hr(self, query: dict[str, str]) -> Any:
        if "symbol" in query:
            return self._ticker_body(self._market_id(query))
        ids = json.loads(query["symbols"]) if "symbols" in query else list(self._markets)
        return [self._ticker_body(self._market_id({"symbol": i})) for i in ids]

    def _ticker_price(self, query: dict[str, str]) -> Any:
        ids = [self._market_id(query)] if "symbol" in query else list(self._markets)
        rows = [
            {"symbol": i, "price": wire.num(self.feed.price_at(self._symbol(i), self._now_ms()))} for i in ids
        ]
        return rows[0] if "symbol" in query else rows

    def _book_ticker(self, query: dict[str, str]) -> Any:
        ids = [self._market_id(query)] if "symbol" in query else list(self._markets)
        rows = []
        for i in ids:
            book = self._books.current(i)[1]
            rows.append(
                {
                    "symbol": i,
                    "bidPrice": wire.num(book.bids[0][0]),
                    "bidQty": wire.num(book.bids[0][1]),
                    "askPrice": wire.num(book.asks[0][0]),
                    "askQty": wire.num(book.asks[0][1]),
                }
            )
        return rows[0] if "symbol" in query else rows

    def _limit(self, query: dict[str, str], default: int, maximum: int) -> int:
        try:
            limit = int(query.get("limit", default))
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'.") from None
        if not 1 <= limit <= maximum:
            raise ApiError(
                400, -1100, f"Illegal characters found in parameter 'limit'; legal range is '1'..'{maximum}'."
            )
        return limit

    def _agg_trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        market_id = self._market_id(query)
        limit = self._limit(query, 500, 1000)
        if "fromId" in query:
            raise ApiError(
                400, -1100, "The loopback exchange pages aggTrades by startTime/endTime, not fromId."
            )
        start, end = query.get("startTime"), query.get("endTime")
        now = self._now_ms()
        if start is None and end is None:
            rows = self.feed.numbered_trades_between(self._symbol(market_id), now - 600_000, now + 1)[-limit:]
        else:
            lo = int(start) if start is not None else int(end or now) - _HOUR_MS
            hi = int(end) if end is not None else lo + _HOUR_MS
            if hi - lo > _HOUR_MS:
                raise ApiError(400, -1127, "More than 1 hours between startTime and endTime.")
            rows = self.feed.numbered_trades_between(self._symbol(market_id), lo, min(hi, now) + 1)[:limit]
        return [wire.agg_trade(i, t) for i, t in rows]

    def _recent_trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        market_id = self._market_id(query)
        limit = self._limit(query, 500, 1000)
        now = self._now_ms()
        rows = self.feed.numbered_trades_between(self._symbol(market_id), now - 600_000, now + 1)[-limit:]
        return [wire.recent_trade(i, t) for i, t in rows]

    def _klines(self, query: dict[str, str]) -> list[list[Any]]:
        market_id = self._market_id(query)
        interval = query.get("interval", "")
        frame = TIMEFRAME_MS.get(interval)
        if frame is None:
            raise ApiError(400, -1120, "Invalid interval.")
        limit = self._limit(query, 500, 1000)
        start, end = query.get("startTime"), query.get("endTime")
        since = int(start) if start is not None else None
        if since is None and end is not None:
            since = (int(end) // frame - limit + 1) * frame
        candles = self.feed.candles_at(self._symbol(market_id), interval, since_ms=since, limit=limit)
        if end is not None:
            candles = [c for c in candles if c.timestamp_ms <= int(end)]
        return [wire.kline_row(c, frame) for c in candles]

    def _depth(self, query: dict[str, str]) -> dict[str, Any]:
        market_id = self._market_id(query)
        limit = self._limit(query, 100, 5000)
        if not any(s.startswith(f"{market_id.lower()}@depth") for s in self.subscriptions):
            self._books.advance(market_id)  # nobody streams this book: bring it to now
        update_id, book = self._books.current(market_id)
        return {
            "lastUpdateId": update_id,
            "bids": [[wire.num(p), wire.num(q)] for p, q in book.bids[:limit]],
            "asks": [[wire.num(p), wire.num(q)] for p, q in book.asks[:limit]],
        }

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


async def _serve(args: argparse.Namespace) -> None:
    feed: ClockedMarket
    kind, _, rest = args.market.partition(":")
    if kind == "synthetic":
        from services.market.synthetic_feed import SyntheticFeed

        feed = SyntheticFeed(int(rest) if rest else 7)
    else:
        feed = ReplayFeed(Path(rest) if rest else args.recording, speed=args.speed)
    async with LoopbackExchange(feed, host=args.host, port=args.port) as exchange:
        print(f"loopback binance on {exchange.url} ({feed.mode}); ws {exchange.url.replace('http', 'ws')}/ws")
        print(f"API key {exchange.api_key!r}, secret {exchange.secret!r}; Ctrl-C stops")
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--market", default="replay",
                        help="replay (default), replay:PATH, synthetic or synthetic:SEED: the market it serves")
    parser.add_argument("--recording", type=Path, default=None, help="replay file (default: the shipped one)")
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
