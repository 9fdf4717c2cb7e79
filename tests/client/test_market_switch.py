"""Switching the market source from Settings: a reachable exchange takes over; an unreachable one
is refused with a message and the replay stays."""

from __future__ import annotations

import asyncio

from client.app import SessionServices, SkeetSession
from client.launcher import loopback_exchange
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.market import ReplayFeed
from services.signals import SignalEngine


def session(tmp_path) -> SkeetSession:  # type: ignore[no-untyped-def]
    identity = LocalIdentity("switcher", key=b"k")
    services = SessionServices(
        feed=ReplayFeed(), engine=SignalEngine(), modes={"market": "Replay · simulated"}, backend_url="",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    return SkeetSession(None, services, watchlist=["BTC/USDT", "ETH/USDT"])  # type: ignore[arg-type]


async def test_unreachable_exchange_keeps_the_replay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = session(tmp_path)
    before = s.market.feed
    await asyncio.wait_for(s.market.switch("loopback:127.0.0.1:9"), 60)  # nothing listens on port 9
    assert s.market.feed is before and s.state.market_source == "replay"
    assert s.state.notice and s.state.notice.kind == "error" and "Could not switch" in s.state.notice.message
    await s.close()


async def test_loopback_exchange_takes_over_through_ccxt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exchange = loopback_exchange(log_path=tmp_path / "exchange.log")
    await asyncio.to_thread(exchange.start)
    s = session(tmp_path)
    try:
        await asyncio.wait_for(s.market.switch(f"loopback:127.0.0.1:{exchange.port}"), 60)
        assert s.state.modes["market"].startswith("Live · binance")
        assert "BTC/USDT" in s.state.markets and s.state.watchlist == ["BTC/USDT", "ETH/USDT"]
        for _ in range(100):  # history, then live trades through ccxt's websocket
            await asyncio.sleep(0.1)
            if "BTC/USDT" in s.state.quotes and s.state.candles.get("BTC/USDT"):
                break
        assert s.state.candles["BTC/USDT"] and s.state.quotes["BTC/USDT"].last > 0
    finally:
        await s.close()
        exchange.stop()
