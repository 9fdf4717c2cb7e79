"""PaperBroker on the shipped recording (`ReplayFeed`): the backend fills at the same price the app sees
at the same moment, and resting orders fill when the replayed market reaches them."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from backend_stub.money import ceil_to, dec
from services.market.replay import ReplayFeed
from tests.backend.conftest import auth, make_settings, serve

FROZEN_S = 1_790_000_000.0


async def test_market_order_fills_at_the_replayed_price(tmp_path: Path) -> None:
    feed = ReplayFeed(clock=lambda: FROZEN_S)
    app_view = ReplayFeed(clock=lambda: FROZEN_S)  # what the app, in another process, would show
    async with serve(make_settings(tmp_path), feed) as backend:
        markets = (await backend.get("alice", "/v1/markets")).json()
        tick = dec(markets["ETH/USDT"]["precision"]["price"])
        last = dec((await app_view.ticker("ETH/USDT"))["last"])
        assert last == dec(app_view.price_at("ETH/USDT", int(FROZEN_S * 1000)))
        r = await backend.order("alice", symbol="ETH/USDT", side="buy", type="market", amount="1")
        assert r.status_code == 201, r.text
        order = r.json()
        assert dec(order["average"]) == ceil_to(last * Decimal("1.0005"), tick)
        assert dec(order["fee"]["cost"]) == (dec(order["cost"]) * Decimal("0.001")).quantize(Decimal("1e-8"))
    await feed.aclose()
    await app_view.aclose()


async def test_resting_limit_fills_when_the_replay_reaches_it(tmp_path: Path) -> None:
    feed = ReplayFeed(speed=30)
    async with serve(make_settings(tmp_path), feed) as backend:
        symbol = "BTC/USDT"
        now_ms = int(time.time() * 1000)
        last = dec((await feed.ticker(symbol))["last"])
        # Trades big enough to fill the whole order: at a smaller one the order only fills in part.
        ahead = [t for t in feed.trades_between(symbol, now_ms + 400, now_ms + 2_500) if t.amount >= 0.01]
        low, high = min(ahead, key=lambda t: t.price), max(ahead, key=lambda t: t.price)
        if dec(low.price) < last:
            side, price = "buy", dec(low.price)
        else:
            assert dec(high.price) > last, "the recording is flat here"
            side, price = "sell", dec(high.price)
            await backend.order("alice", symbol=symbol, side="buy", type="market", amount="0.01")
        r = await backend.order(
            "alice", symbol=symbol, side=side, type="limit", amount="0.01", price=str(price)
        )
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "open"
        for _ in range(100):
            current = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
            if current["status"] != "open":
                break
            await asyncio.sleep(0.05)
        assert current["status"] == "closed", current
        assert dec(current["average"]) == price
        headers = auth("alice")
        assert (await backend.http.get("/v1/positions", headers=headers)).json()[0]["symbol"] == symbol
    await feed.aclose()
