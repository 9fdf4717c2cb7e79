"""The market gateway over real HTTP and websockets on loopback: candles, the shared trade stream, resume by
seq with no gap, resets, per-user limits and authentication."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.market.replay import ReplayFeed
from tests.backend.conftest import Running, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.gateway.conftest import frame, frames_until, open_stream, stream_url


async def test_candles_are_ccxt_rows_and_bad_input_is_refused_with_a_sentence(tmp_path: Path) -> None:
    feed = ReplayFeed()
    async with serve(make_settings(tmp_path), feed) as running:
        since = (int(time.time() * 1000) // 300_000 - 20) * 300_000  # 5m bars, all closed
        response = await running.get("u1", "/v1/market/candles",
                                     params={"symbol": "BTC/USDT", "timeframe": "5m", "since": since, "limit": 5})
        assert response.status_code == 200, response.text
        expected = feed.candles_at("BTC/USDT", "5m", since_ms=since, limit=5)
        assert response.json() == [[c.timestamp_ms, c.open, c.high, c.low, c.close, c.volume] for c in expected]
        assert [row[0] for row in response.json()] == [since + i * 300_000 for i in range(5)]

        bad_symbol = await running.get("u1", "/v1/market/candles", params={"symbol": "NOPE/USDT"})
        assert bad_symbol.status_code == 404
        assert "NOPE/USDT is not traded" in bad_symbol.json()["error"]
        bad_frame = await running.get("u1", "/v1/market/candles", params={"symbol": "BTC/USDT", "timeframe": "7m"})
        assert bad_frame.status_code == 422
        assert "Timeframe '7m' is not offered" in bad_frame.json()["error"]
        too_many = await running.get("u1", "/v1/market/candles", params={"symbol": "BTC/USDT", "limit": 5000})
        assert too_many.status_code == 422
        anonymous = await running.http.get("/v1/market/candles", params={"symbol": "BTC/USDT"})
        assert anonymous.status_code == 401

        markets = await running.get("u1", "/v1/market/markets")
        assert markets.json()["BTC/USDT"]["symbol"] == "BTC/USDT"
        ticker = await running.get("u1", "/v1/market/ticker", params={"symbol": "ETH/USDT"})
        assert ticker.json()["symbol"] == "ETH/USDT" and ticker.json()["last"] > 0


async def test_every_client_gets_every_trade_in_seq_order_from_one_upstream(
    gateway_backend: Running, feed: ListFeed
) -> None:
    a = await open_stream(gateway_backend, "alice", "BTC/USDT,ETH/USDT")
    b = await open_stream(gateway_backend, "bob", "BTC/USDT")
    hello_a, hello_b = await frame(a), await frame(b)
    assert hello_a["type"] == "hello" and set(hello_a["seq"]) == {"BTC/USDT", "ETH/USDT"}
    await feed.until_followed("BTC/USDT", 2)  # the paper broker and one gateway channel, whatever the clients
    await feed.until_followed("ETH/USDT", 2)
    prices = [50_000.0 + i for i in range(30)]
    for price in prices:
        await feed.trade("BTC/USDT", price, 0.5)
    await feed.trade("ETH/USDT", 3_001.0)
    for ws, hello in ((a, hello_a), (b, hello_b)):
        got = await frames_until(ws, lambda f: f["type"] == "trade" and f["price"] == prices[-1])
        btc = [f for f in got if f.get("symbol") == "BTC/USDT"]
        assert [f["seq"] for f in btc] == list(range(hello["seq"]["BTC/USDT"] + 1, btc[-1]["seq"] + 1))
        trades = [f for f in btc if f["type"] == "trade"]
        assert [t["price"] for t in trades] == prices
        assert trades[0]["amount"] == 0.5 and isinstance(trades[0]["timestamp"], int)
        candles = [f for f in btc if f["type"] == "candle"]
        assert candles and candles[0]["timeframe"] == "1m" and len(candles[0]["candle"]) == 6
    eth = await frames_until(a, lambda f: f["type"] == "trade" and f["symbol"] == "ETH/USDT")
    assert eth[-1]["price"] == 3_001.0
    await a.close()
    await b.close()


async def test_a_client_resumes_after_a_drop_from_its_last_seq_with_no_gap(
    gateway_backend: Running, feed: ListFeed
) -> None:
    ws = await open_stream(gateway_backend, "alice", "BTC/USDT")
    hello = await frame(ws)
    await feed.until_followed("BTC/USDT", 2)
    for i in range(5):
        await feed.trade("BTC/USDT", 100.0 + i)
    before = await frames_until(ws, lambda f: f["type"] == "trade" and f["price"] == 104.0)
    last_seq = before[-1]["seq"]
    await ws.close()  # the phone loses its network

    for i in range(5, 15):  # the market moves on while it is away (the channel keeps its upstream)
        await feed.trade("BTC/USDT", 100.0 + i)
    ws = await open_stream(gateway_backend, "alice", "BTC/USDT",
                           since=f"BTC/USDT:{last_seq}", epoch=hello["epoch"])
    again = await frame(ws)
    assert again["seq"] == {"BTC/USDT": last_seq}
    after = await frames_until(ws, lambda f: f["type"] == "trade" and f["price"] == 114.0)
    assert [f["seq"] for f in after] == list(range(last_seq + 1, last_seq + 1 + len(after)))
    assert [f["price"] for f in after if f["type"] == "trade"] == [100.0 + i for i in range(5, 15)]
    await ws.close()


async def test_too_far_behind_or_another_epoch_gets_an_explicit_reset(
    gateway_backend: Running, feed: ListFeed
) -> None:
    ws = await open_stream(gateway_backend, "alice", "BTC/USDT")
    hello = await frame(ws)
    await feed.until_followed("BTC/USDT", 2)
    await feed.trade("BTC/USDT", 1.0)
    first = await frames_until(ws, lambda f: f["type"] == "trade")
    await ws.close()
    for i in range(60):  # more than the 50 frames the test gateway keeps
        await feed.trade("BTC/USDT", 2.0 + i)

    behind = await open_stream(gateway_backend, "alice", "BTC/USDT",
                               since=f"BTC/USDT:{first[-1]['seq']}", epoch=hello["epoch"])
    await frame(behind)
    reset = await frame(behind)
    assert reset["type"] == "reset" and reset["symbol"] == "BTC/USDT" and reset["reason"] == "too far behind"
    await feed.trade("BTC/USDT", 99.0)
    live = await frames_until(behind, lambda f: f["type"] == "trade")
    assert live[0]["seq"] == reset["seq"] + 1
    await behind.close()

    other = await open_stream(gateway_backend, "alice", "BTC/USDT", since="BTC/USDT:3", epoch="not-this-one")
    await frame(other)
    assert (await frame(other))["type"] == "reset"
    await other.close()


async def test_streams_per_user_are_limited_and_users_do_not_share_the_limit(gateway_backend: Running) -> None:
    first = await open_stream(gateway_backend, "alice", "BTC/USDT")
    second = await open_stream(gateway_backend, "alice", "ETH/USDT")
    await frame(first), await frame(second)
    third = await open_stream(gateway_backend, "alice", "BTC/USDT")
    with pytest.raises(ConnectionClosed):
        await frame(third)
    assert third.close_code == 4429 and "Too many market streams" in third.close_reason
    bob = await open_stream(gateway_backend, "bob", "BTC/USDT")
    assert (await frame(bob))["type"] == "hello"
    await first.close()
    async with asyncio.timeout(10):  # the server frees the slot once it has seen the close
        while True:
            again = await open_stream(gateway_backend, "alice", "BTC/USDT")
            try:
                if (await frame(again))["type"] == "hello":
                    break
            except ConnectionClosed:
                await asyncio.sleep(0.05)
    for ws in (second, again, bob):
        await ws.close()


async def test_bad_token_and_bad_symbols_close_with_the_reason(gateway_backend: Running) -> None:
    anonymous = await connect(stream_url(gateway_backend, "BTC/USDT"))
    with pytest.raises(ConnectionClosed):
        await frame(anonymous)
    assert anonymous.close_code == 4401
    forged = await connect(stream_url(gateway_backend, "BTC/USDT", token="forged"))
    with pytest.raises(ConnectionClosed):
        await frame(forged)
    assert forged.close_code == 4401
    for symbols, reason in (("NOPE/USDT", "NOPE/USDT is not traded"), ("BTCUSDT", "is not a symbol such as"),
                            ("", "Name at least one symbol")):
        ws = await open_stream(gateway_backend, "alice", symbols)
        with pytest.raises(ConnectionClosed):
            await frame(ws)
        assert ws.close_code == 4400 and reason in ws.close_reason, ws.close_reason


async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.gateway.burstfeed import BurstFeed

    monkeypatch.setenv("SKEET_GATEWAY_CLIENT_QUEUE", "500")
    monkeypatch.setenv("SKEET_GATEWAY_REPLAY_FRAMES", "60000")
    feed = BurstFeed("BTC/USDT")
    # Small kernel send buffers (accepted sockets inherit them), so a client that stops reading backs the
    # server up after ~100 kB rather than the 4 MB Linux would grow the buffer to.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16_384)
    listener.bind(("127.0.0.1", 0))
    async with serve(make_settings(tmp_path), feed, sockets=[listener]) as running:
        slow = await open_stream(running, "slow", "BTC/USDT", slow_reader=True)
        fast = await open_stream(running, "fast", "BTC/USDT")
        hello = await frame(fast)
        await frame(slow)
        total = 10_000
        feed.release(total)  # as fast as the gateway takes them; the slow client reads nothing meanwhile
        got = await frames_until(fast, lambda f: f["type"] == "trade" and f["price"] == total - 1, timeout=60)
        trades = [f for f in got if f["type"] == "trade"]
        assert [t["price"] for t in trades] == [float(n) for n in range(total)]
        assert [f["seq"] for f in got] == list(range(hello["seq"]["BTC/USDT"] + 1, got[-1]["seq"] + 1))
        assert feed.emitted == total  # the upstream was never held back by the slow client

        seen: list[dict] = []
        with pytest.raises(ConnectionClosed):
            while True:
                seen.append(await frame(slow, timeout=30))
        assert slow.close_code == 1013 and "fell behind" in slow.close_reason
        assert len(seen) < total
        # It resumes from the last seq it read, and nothing is missing.
        last = max(f["seq"] for f in seen if "seq" in f and f["type"] != "hello")
        resumed = await open_stream(running, "slow", "BTC/USDT", since=f"BTC/USDT:{last}", epoch=hello["epoch"])
        await frame(resumed)
        rest = await frames_until(resumed, lambda f: f["type"] == "trade" and f["price"] == total - 1, timeout=60)
        assert [f["seq"] for f in rest] == list(range(last + 1, last + 1 + len(rest)))
        await resumed.close()
        await fast.close()


@pytest.mark.parametrize("flush_s", ["0.5"])
async def test_a_lines_stream_carries_every_waiting_frame_in_one_message_in_seq_order(
    gateway_backend: Running, feed: ListFeed, flush_s: str
) -> None:
    ws = await open_stream(gateway_backend, "alice", "BTC/USDT", frames="lines")
    hello = await frame(ws)
    await feed.until_followed("BTC/USDT", 2)
    prices = [50_000.0 + i for i in range(40)]
    for price in prices:  # while the writer waits out its flush after the hello: frames gather
        await feed.trade("BTC/USDT", price)
    messages: list[list[dict[str, object]]] = []
    async with asyncio.timeout(10):
        while not messages or messages[-1][-1].get("price") != prices[-1]:
            messages.append([json.loads(line) for line in str(await ws.recv()).split("\n")])
    frames = [f for message in messages for f in message]
    assert [f["seq"] for f in frames] == list(range(hello["seq"]["BTC/USDT"] + 1, frames[-1]["seq"] + 1))
    assert [f["price"] for f in frames if f["type"] == "trade"] == prices
    assert max(len(message) for message in messages) > 1  # batched, not one frame a message
    await ws.close()
