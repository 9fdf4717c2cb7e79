"""The loopback exchange's signed private endpoints, as ccxt's binance client sees them, and the recorder."""

from __future__ import annotations

import time

import ccxt
import ccxt.pro
import pytest

from services.market.ccxt_feed import CcxtFeed
from services.market.record import record
from services.market.recording import load_recording, write_recording


async def test_signed_orders_balances_and_binance_error_codes(binance, loopback):
    balance = await binance.fetch_balance()
    assert balance["USDT"]["free"] == 100_000
    price = loopback.feed.price_at("BTC/USDT", loopback._now_ms())
    resting = await binance.create_order(
        "BTC/USDT", "limit", "buy", 0.01, round(price * 0.9, 2), params={"clientOrderId": "skeet-1"}
    )
    assert resting["status"] == "open" and resting["clientOrderId"] == "skeet-1"
    assert [o["id"] for o in await binance.fetch_open_orders("BTC/USDT")] == [resting["id"]]
    assert (await binance.fetch_balance())["USDT"]["used"] == pytest.approx(0.01 * round(price * 0.9, 2))
    with pytest.raises(
        ccxt.InvalidOrder
    ):  # same client id while the first is open: Binance's duplicate check
        await binance.create_order(
            "BTC/USDT", "limit", "buy", 0.01, round(price * 0.9, 2), params={"clientOrderId": "skeet-1"}
        )
    assert (await binance.cancel_order(resting["id"], "BTC/USDT"))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await binance.cancel_order(resting["id"], "BTC/USDT")
    filled = await binance.create_order("BTC/USDT", "market", "buy", 0.002)
    assert filled["status"] == "closed" and filled["filled"] == 0.002
    assert (await binance.fetch_balance())["BTC"]["free"] == pytest.approx(1.002)
    with pytest.raises(ccxt.InsufficientFunds):
        await binance.create_order("BTC/USDT", "market", "sell", 5.0)
    # -1013 is BadRequest in ccxt's table; its body check makes LOT_SIZE / PRICE_FILTER failures InvalidOrder.
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        await binance.create_order("BTC/USDT", "limit", "buy", 0.00001, round(price * 0.9, 2))
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await binance.create_order(
            "BTC/USDT", "limit", "buy", 0.000015, round(price * 0.9, 2), params={"quantity": "0.000015"}
        )


async def test_wrong_key_or_secret_is_an_authentication_error(loopback):
    for override in ({"secret": "not-the-secret"}, {"apiKey": "someone-else"}):
        exchange = ccxt.pro.binance(
            loopback.ccxt_config(private=True) | override | {"enableRateLimit": False}
        )
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await exchange.fetch_balance()
        finally:
            await exchange.close()


async def test_recorder_writes_exactly_the_exchange_trades(binance, loopback, tmp_path):
    async with CcxtFeed("binance", exchange=binance) as feed:
        meta, trades = await record(feed, ["BTC/USDT", "ETH/USDT"], 1.5)
    path = tmp_path / "rec.jsonl.gz"
    write_recording(path, meta, trades)
    rec = load_recording(path)
    assert rec.meta.source == "ccxt" and rec.meta.exchange == "binance"
    assert rec.meta.markets["BTC/USDT"]["precision"]["price"] == 0.01
    for symbol in ("BTC/USDT", "ETH/USDT"):
        expected = loopback.feed.trades_between(symbol, meta.start_ms, meta.end_ms)
        got = [t for t in trades if t["symbol"] == symbol]
        # The stream starts at subscription time, a few ms after start_ms: compare from the first trade on.
        tail = [e for e in expected if e.timestamp_ms >= got[0]["timestamp"]]
        assert [(t["timestamp"], t["price"], t["amount"]) for t in got] == [
            (e.timestamp_ms, e.price, e.amount) for e in tail
        ]


async def test_rest_only_exchange_is_polled(loopback):
    import ccxt.async_support

    exchange = ccxt.async_support.binance(loopback.ccxt_config() | {"enableRateLimit": False})
    async with CcxtFeed("binance", exchange=exchange, poll_interval_s=0.2) as feed:
        assert not exchange.has.get("watchTrades")
        ticks = []
        async for tick in feed.ticks(["BTC/USDT", "ETH/USDT"]):
            ticks.append(tick)
            if len(ticks) == 6:
                break
        for symbol in {t.symbol for t in ticks}:
            got = [t for t in ticks if t.symbol == symbol]
            assert (
                got
                == loopback.feed.trades_between(symbol, got[0].timestamp_ms, got[-1].timestamp_ms + 1)[
                    : len(got)
                ]
            )


async def test_the_loopback_exchange_serves_the_synthetic_market_through_ccxt():
    """`--market synthetic`: ccxt's binance sees the same trades, years of klines and prices as the app."""
    from services.market.loopback_exchange import LoopbackExchange
    from services.market.synthetic_feed import SyntheticFeed

    market = SyntheticFeed()
    async with LoopbackExchange(market, push_interval_s=0.02) as exchange:
        client = ccxt.pro.binance(exchange.ccxt_config() | {"enableRateLimit": False})
        try:
            markets = await client.load_markets()
            assert markets["DOGE/USDT"]["precision"]["amount"] == 1.0
            since = int(time.time() * 1000) // 86_400_000 * 86_400_000 - 400 * 86_400_000
            days = await client.fetch_ohlcv("BTC/USDT", "1d", since=since, limit=300)
            expected = market.candles_at("BTC/USDT", "1d", since_ms=since, limit=300)
            assert [row[4] for row in days] == [c.close for c in expected] and len(days) == 300
            trades = await client.watch_trades("ETH/USDT")
            first = trades[0]
            same_ms = market.trades_between("ETH/USDT", first["timestamp"], first["timestamp"] + 1)
            assert (first["price"], first["amount"]) in {(t.price, t.amount) for t in same_ms}
        finally:
            await client.close()
