"""`GatewayFeed` (httpx + websockets only) against the real backend gateway on loopback: the market
protocol, a network cut in the middle of a stream with nothing lost or doubled, freshness, visibility."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.backoff import Backoff
from services.market import StreamingFeed, open_feed
from services.market.gateway_feed import GatewayFeed
from services.market.replay import ReplayFeed
from services.market.types import MarketDataError, Tick, UnknownSymbol
from tests.backend.conftest import Running, make_settings, serve, token
from tests.backend.listfeed import ListFeed
from tests.gateway.netcut import NetCut


def token_for(uid: str):  # type: ignore[no-untyped-def]
    async def provide() -> str:
        return token(uid)

    return provide


def fast_backoff() -> Backoff:
    return Backoff(initial_s=0.05, max_s=0.2)


async def take(ticks: AsyncIterator[Tick], count: int, *, within_s: float = 10.0) -> list[Tick]:
    out: list[Tick] = []
    async with asyncio.timeout(within_s):
        while len(out) < count:
            out.append(await anext(ticks))
    return out


async def until(condition, *, within_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - polls state owned by other tasks, with a deadline
            await asyncio.sleep(0.01)


async def test_the_gateway_feed_is_a_market_feed_over_http_and_websockets(tmp_path: Path) -> None:
    upstream = ReplayFeed()
    async with serve(make_settings(tmp_path), upstream) as running:
        feed = open_feed(f"gateway:{running.base_url}", token=token_for("alice"))
        async with feed:
            assert isinstance(feed, GatewayFeed) and isinstance(feed, StreamingFeed)
            assert feed.mode == "Live via gateway"
            markets = await feed.markets()
            assert markets["BTC/USDT"] == (await upstream.markets())["BTC/USDT"]
            bars = await feed.candles("ETH/USDT", "1m", limit=50)
            assert len(bars) == 50 and bars[-2] == upstream.candles_at("ETH/USDT", "1m", limit=50)[-2]
            with pytest.raises(UnknownSymbol, match="NOPE/USDT is not traded"):
                await feed.candles("NOPE/USDT")
            with pytest.raises(MarketDataError, match="Timeframe '2m' is not offered"):
                await feed.candles("BTC/USDT", "2m")
            ticks = feed.ticks(["BTC/USDT", "ETH/USDT"])
            got = await take(ticks, 3, within_s=20)  # the shipped replay trades several times a second
            assert {t.symbol for t in got} <= {"BTC/USDT", "ETH/USDT"}
            assert feed.mode == f"Live via gateway · {upstream.mode}"
            assert feed.status(got[-1].symbol) == "live"
            await ticks.aclose()
        with pytest.raises(MarketDataError, match="signed in"):
            open_feed(f"gateway:{running.base_url}")


async def test_a_network_cut_mid_stream_loses_and_repeats_no_trade(
    gateway_backend: Running, feed: ListFeed
) -> None:
    host, port = gateway_backend.base_url.removeprefix("http://").split(":")
    async with NetCut(host, int(port)) as net, GatewayFeed(net.url, token=token_for("alice"),
                                                            backoff=fast_backoff()) as client:
        ticks = client.ticks(["BTC/USDT"])
        first = asyncio.create_task(anext(ticks))
        await feed.until_followed("BTC/USDT", 2)
        await until(lambda: client.connection == "connected")
        prices = [float(i) for i in range(1, 41)]
        for price in prices[:10]:
            await feed.trade("BTC/USDT", price)
        got = [await first] + await take(ticks, 9)

        net.cut()  # the phone goes into a tunnel; trades go on
        await until(lambda: client.status("BTC/USDT") == "reconnecting")
        for price in prices[10:30]:
            await feed.trade("BTC/USDT", price)
        net.restore()
        for price in prices[30:]:
            await feed.trade("BTC/USDT", price)
        got += await take(ticks, 30)
        assert [t.price for t in got] == prices
        assert client.resets == 0 and client.reconnects >= 2
        assert client.status("BTC/USDT") == "live"

        client.reconnect()  # the app came back to the foreground: a fresh socket, same stream
        await until(lambda: client.reconnects >= 3 and client.connection == "connected")
        await feed.trade("BTC/USDT", 41.0)
        assert [t.price for t in await take(ticks, 1)] == [41.0]
        await ticks.aclose()


async def test_hidden_symbols_get_candles_only_and_charts_stream_in_full(
    gateway_backend: Running, feed: ListFeed
) -> None:
    async with GatewayFeed(gateway_backend.base_url, token=token_for("bob"), backoff=fast_backoff()) as client:
        client.set_visible(["BTC/USDT"])
        ticks = client.ticks(["BTC/USDT", "ETH/USDT"])
        first = asyncio.create_task(anext(ticks))
        await feed.until_followed("ETH/USDT", 2)
        await until(lambda: client.connection == "connected")
        await feed.trade("ETH/USDT", 3_100.0)
        await feed.trade("BTC/USDT", 51_000.0)
        assert (await first).symbol == "BTC/USDT"  # the hidden symbol's trade did not come through
        # ... but its price does, within the gateway's candle interval (1 s)
        tickers = client.tickers(["ETH/USDT"], interval_s=0.05)
        async with asyncio.timeout(10):
            async for ticker in tickers:
                if ticker["last"] == 3_100.0:
                    break
        await tickers.aclose()

        chart = client.candle_updates("ETH/USDT")  # the ETH chart opens: ETH streams every trade
        forming = asyncio.create_task(anext(chart))  # (this test market has no history: no bar before a trade)
        await until(lambda: client.connection == "connected" and "ETH/USDT" in client._seq)
        await feed.trade("ETH/USDT", 3_200.0)
        eth = await take(ticks, 1)
        assert eth[0].symbol == "ETH/USDT" and eth[0].price == 3_200.0
        bar = await forming
        assert bar.close == 3_200.0
        await chart.aclose()
        await ticks.aclose()


async def test_a_refused_token_is_reported_and_retried(gateway_backend: Running) -> None:
    async def bad() -> str:
        return "not-a-token"

    async with GatewayFeed(gateway_backend.base_url, token=bad, backoff=fast_backoff()) as client:
        ticks = client.ticks(["BTC/USDT"])
        waiting = asyncio.create_task(anext(ticks))
        await until(lambda: client.last_error is not None and "refused the sign-in" in client.last_error)
        assert client.status("BTC/USDT") == "reconnecting"
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await ticks.aclose()



async def test_the_client_config_picks_the_gateway_and_the_badge_says_so(gateway_backend: Running) -> None:
    from client.__main__ import build_feed
    from client.config import ClientConfig

    config = ClientConfig.load(env={"SKEET_MARKET": "gateway"})
    assert config.market == "gateway"
    feed, badge = build_feed(config.market, config, backend_url=gateway_backend.base_url, token=token_for("al"))
    async with feed:
        assert isinstance(feed, GatewayFeed) and badge == "Live via gateway"
        assert "BTC/USDT" in await feed.markets()
