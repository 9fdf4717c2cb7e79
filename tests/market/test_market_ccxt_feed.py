"""CcxtFeed against ccxt's own binance client and the loopback exchange: data, reconnects, gap fill, errors."""

from __future__ import annotations

import asyncio
import time

import ccxt.pro
import pytest

from services.backoff import Backoff
from services.market import FeedUnavailable, MarketDataError, MarketFeed, Tick, UnknownSymbol
from services.market.ccxt_feed import CcxtFeed
from services.market.errors import RateLimited

FAST = Backoff(initial_s=0.05, max_s=0.2, jitter=0.0)
ALL = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "AVAX/USDT"]


def _feed(binance, **kwargs) -> CcxtFeed:
    return CcxtFeed("binance", exchange=binance, **({"backoff": FAST} | kwargs))


async def _collect(stream, until_ms: int, out: list[Tick]) -> None:
    async for tick in stream:
        out.append(tick)
        if time.time() * 1000 > until_ms:
            return


def _assert_exact(ticks: list[Tick], loopback) -> None:
    """Every trade the exchange made between the first and last tick arrived once, in order, per symbol."""
    assert ticks
    for symbol in {t.symbol for t in ticks}:
        got = [t for t in ticks if t.symbol == symbol]
        lo, hi = got[0].timestamp_ms + 1, got[-1].timestamp_ms
        expected = loopback.feed.trades_between(symbol, lo, hi)
        assert [t for t in got if lo <= t.timestamp_ms < hi] == expected, symbol


async def test_markets_ticker_trades_and_candles(binance, loopback):
    async with _feed(binance) as feed:
        assert isinstance(feed, MarketFeed) and feed.mode == "Live · binance"
        markets = await feed.markets()
        assert set(ALL) <= set(markets)
        btc = markets["BTC/USDT"]
        assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
        assert btc["limits"]["cost"]["min"] == 5.0
        assert loopback.requests.count(("GET", "/api/v3/exchangeInfo")) == 1

        ticker = await feed.ticker("ETH/USDT")
        assert ticker["last"] == loopback.feed.price_at("ETH/USDT", ticker["timestamp"])
        assert ticker["bid"] < ticker["ask"]

        now = int(time.time() * 1000)
        trades = await feed.trades("SOL/USDT", since_ms=now - 20_000)
        assert trades == loopback.feed.trades_between("SOL/USDT", now - 20_000, trades[-1].timestamp_ms + 1)

        candles = await feed.candles("BTC/USDT", "1m", limit=30)
        assert len(candles) == 30
        expected = loopback.feed.candles_at("BTC/USDT", "1m", since_ms=candles[0].timestamp_ms, limit=29)
        assert [(c.timestamp_ms, c.open, c.high, c.low) for c in candles[:29]] == [
            (c.timestamp_ms, c.open, c.high, c.low) for c in expected
        ]
        top = await feed.book_top("BTC/USDT")
        assert top.bid is not None and top.ask is not None and top.bid < top.ask


async def test_one_subscription_per_symbol_for_many_consumers(binance, loopback):
    async with _feed(binance) as feed:
        until = int(time.time() * 1000) + 1500
        a: list[Tick] = []
        b: list[Tick] = []
        await asyncio.wait_for(
            asyncio.gather(
                _collect(feed.ticks(["BTC/USDT"]), until, a), _collect(feed.ticks(["BTC/USDT"]), until, b)
            ),
            10,
        )
        assert loopback.subscriptions == {"btcusdt@aggTrade"}
        n = min(len(a), len(b))
        assert n > 0 and a[:n] == b[:n]
        _assert_exact(a, loopback)
        assert feed.status("BTC/USDT") == "live"
        # Both left, so the upstream stopped; a new consumer starts it again.
        again = await asyncio.wait_for(_first(feed.ticks(["BTC/USDT"]), 2), 10)
        assert again[0].timestamp_ms >= a[-1].timestamp_ms


async def test_dropped_socket_reconnects_and_fills_the_gap_exactly(binance, loopback):
    gap = Backoff(initial_s=0.7, factor=1.0, jitter=0.0)
    async with _feed(binance, backoff=gap) as feed:
        ticks: list[Tick] = []
        stream = feed.ticks(ALL)
        start = time.time() * 1000
        collector = asyncio.create_task(_collect(stream, int(start) + 3500, ticks))
        await asyncio.sleep(1.2)
        assert await loopback.drop_sockets() >= 1
        await asyncio.sleep(0.2)
        assert any(feed.status(s) == "reconnecting" for s in ALL)
        await asyncio.wait_for(collector, 15)
        await stream.aclose()
        assert feed.reconnects >= 1 and feed.filled_trades > 0
        _assert_exact(ticks, loopback)
        stamps = [t.timestamp_ms for t in ticks if t.symbol == "BTC/USDT"]
        assert stamps == sorted(stamps)


async def test_stalled_stream_turns_stale_then_recovers_without_loss(binance, loopback):
    # A long silence allowance: the stall must show as "stale" (the malformed-frame test covers the teardown).
    async with _feed(binance, stale_after_s=0.4, silence_reconnect_s=30.0) as feed:
        ticks: list[Tick] = []
        stream = feed.ticks(["BTC/USDT", "ETH/USDT"])
        collector = asyncio.create_task(_collect(stream, int(time.time() * 1000) + 4500, ticks))
        for _ in range(100):  # streaming first (on a loaded machine the first connect can take seconds)
            await asyncio.sleep(0.1)
            if feed.status("BTC/USDT") == "live":
                break
        assert feed.status("BTC/USDT") == "live"
        loopback.stall()
        seen = set()
        for _ in range(30):
            await asyncio.sleep(0.1)
            seen.add(feed.status("BTC/USDT"))
        assert "stale" in seen
        loopback.resume()
        for _ in range(100):  # recovers; how soon depends on the machine's load, not on the feed
            await asyncio.sleep(0.1)
            if feed.status("BTC/USDT") == "live":
                break
        assert feed.status("BTC/USDT") == "live"
        await asyncio.wait_for(collector, 15)
        await stream.aclose()
        _assert_exact(ticks, loopback)


async def test_malformed_frame_is_survived_by_reconnect_and_fill(binance, loopback):
    async with _feed(binance, silence_reconnect_s=0.8) as feed:
        ticks: list[Tick] = []
        stream = feed.ticks(ALL)
        collector = asyncio.create_task(_collect(stream, int(time.time() * 1000) + 4000, ticks))
        await asyncio.sleep(1.0)
        await loopback.send_malformed()
        await asyncio.wait_for(collector, 15)
        await stream.aclose()
        assert feed.reconnects >= 1
        _assert_exact(ticks, loopback)


async def test_http_errors_are_retried_then_reported_clearly(binance, loopback):
    async with _feed(binance) as feed:
        await feed.markets()
        loopback.fail_next(1)
        assert (await feed.ticker("BTC/USDT"))["symbol"] == "BTC/USDT"
        loopback.fail_next(3)
        with pytest.raises(FeedUnavailable, match="binance failed to answer for the BTC/USDT ticker"):
            await feed.ticker("BTC/USDT")
        loopback.throttle_next(3)
        with pytest.raises(RateLimited, match="rate-limiting"):
            await feed.candles("BTC/USDT")
        loopback.fail_next(1, status=400, code=-1121, msg="Invalid symbol.")
        with pytest.raises(UnknownSymbol, match="does not list"):
            await feed.ticker("ETH/USDT")
        with pytest.raises(UnknownSymbol, match="PEPE/USDT is not traded on binance"):
            await feed.ticker("PEPE/USDT")
        with pytest.raises(UnknownSymbol):
            feed_ticks = feed.ticks(["PEPE/USDT"])
            await anext(feed_ticks)
        with pytest.raises(MarketDataError, match="Timeframe"):
            await feed.candles("BTC/USDT", "7m")


def test_unknown_exchange_is_a_clear_error():
    from services.market.ccxt_feed import create_exchange

    with pytest.raises(MarketDataError, match="ccxt does not know the exchange 'mtgox'"):
        create_exchange("mtgox")


async def test_unreachable_exchange_is_feed_unavailable(loopback):
    config = loopback.ccxt_config()
    await loopback.aclose()
    exchange = ccxt.pro.binance(config | {"enableRateLimit": False})
    async with CcxtFeed("binance", exchange=exchange, backoff=FAST, rest_retries=1) as feed:
        with pytest.raises(FeedUnavailable, match="cannot be reached"):
            await feed.markets()


async def _first(stream, n):
    out = []
    async for item in stream:
        out.append(item)
        if len(out) == n:
            break
    await stream.aclose()
    return out


@pytest.mark.parametrize("streaming", [True, False])
async def test_ticker_book_and_candle_streams(loopback, streaming):
    import ccxt.async_support

    cls = ccxt.pro.binance if streaming else ccxt.async_support.binance
    exchange = cls(loopback.ccxt_config() | {"enableRateLimit": False})
    async with CcxtFeed("binance", exchange=exchange, poll_interval_s=0.1, backoff=FAST) as feed:
        tickers = await asyncio.wait_for(_first(feed.tickers(["BTC/USDT", "ETH/USDT"]), 2), 10)
        assert {t["symbol"] for t in tickers} <= {"BTC/USDT", "ETH/USDT"} and all(t["last"] for t in tickers)
        tops = await asyncio.wait_for(_first(feed.book_tops(["SOL/USDT"]), 2), 10)
        assert all(t.symbol == "SOL/USDT" and t.bid < t.ask for t in tops)
        candles = await asyncio.wait_for(_first(feed.candle_updates("BTC/USDT", "1m"), 2), 10)
        now = int(time.time() * 1000)
        assert candles[-1].timestamp_ms in (now // 60_000 * 60_000, (now // 60_000 - 1) * 60_000)
        assert candles[-1].low <= candles[-1].close <= candles[-1].high


async def test_open_feed_loopback_is_a_streaming_live_feed(loopback):
    from services.market import StreamingFeed, open_feed

    async with open_feed(f"loopback:127.0.0.1:{loopback.port}") as feed:
        assert isinstance(feed, StreamingFeed)
        assert feed.mode == "Live · binance (loopback, simulated data)"
        assert "BTC/USDT" in await feed.markets()


async def test_a_gap_too_long_to_fill_is_reported_not_downloaded(binance, loopback):
    slow = Backoff(initial_s=1.5, factor=1.0, jitter=0.0)
    async with _feed(binance, backoff=slow, fill_page_limit=3, fill_max_pages=1) as feed:
        ticks: list[Tick] = []
        stream = feed.ticks(ALL)
        collector = asyncio.create_task(_collect(stream, int(time.time() * 1000) + 3500, ticks))
        await asyncio.sleep(0.8)
        await loopback.drop_sockets(abrupt=True)
        await asyncio.wait_for(collector, 15)
        await stream.aclose()
        assert feed.unfilled_gaps, "a 1.5 s outage holds more than 3 trades of some symbol"
        gap = feed.unfilled_gaps[0]
        assert gap.symbol in ALL and gap.from_ms < gap.to_ms
