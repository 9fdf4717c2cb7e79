"""PaperBroker on the synthetic market (the default): the backend fills at the price the app sees at the
same moment, computed apart in each process, and a resting order fills when the market reaches it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from backend_stub.money import ceil_to, dec
from services.market import SyntheticFeed
from tests.backend.conftest import make_settings, serve

FROZEN_S = 1_790_000_000.0


async def test_market_order_fills_at_the_synthetic_price(tmp_path: Path) -> None:
    feed = SyntheticFeed(clock=lambda: FROZEN_S)
    app_view = SyntheticFeed(clock=lambda: FROZEN_S)  # what the app, in another process, computes
    async with serve(make_settings(tmp_path), feed) as backend:
        markets = (await backend.get("alice", "/v1/markets")).json()
        tick = dec(markets["SOL/USDT"]["precision"]["price"])
        last = dec((await app_view.ticker("SOL/USDT"))["last"])
        assert last == dec(app_view.price_at("SOL/USDT", int(FROZEN_S * 1000)))
        r = await backend.order("alice", symbol="SOL/USDT", side="buy", type="market", amount="1")
        assert r.status_code == 201, r.text
        assert dec(r.json()["average"]) == ceil_to(last * Decimal("1.0005"), tick)


async def test_resting_limit_fills_when_the_market_reaches_it(tmp_path: Path) -> None:
    feed = SyntheticFeed()
    async with serve(make_settings(tmp_path), feed) as backend:
        symbol = "BTC/USDT"
        now_ms = int(time.time() * 1000)
        last = dec((await feed.ticker(symbol))["last"])
        # A level the market trades through soon, with a trade big enough to fill the whole order.
        ahead = [t for t in feed.trades_between(symbol, now_ms + 800, now_ms + 60_000) if t.amount >= 0.001]
        below = [t for t in ahead if dec(t.price) < last]
        if below:
            side, price = "buy", dec(below[0].price)
        else:
            side, price = "sell", dec(next(t for t in ahead if dec(t.price) > last).price)
            await backend.order("alice", symbol=symbol, side="buy", type="market", amount="0.001")
        r = await backend.order("alice", symbol=symbol, side=side, type="limit", amount="0.001", price=str(price))
        assert r.status_code == 201, r.text
        order = r.json()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            current = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
            if current["status"] != "open":
                break
            await asyncio.sleep(0.1)
        assert current["status"] == "closed", current
        assert dec(current["average"]) == price
