"""A live limit order that fills later on the exchange reaches the store (and so the app's live state) by
itself, and the trader's positions follow: the broker's order follower against the loopback Binance."""

from __future__ import annotations

import asyncio
import time

from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.ccxt_broker import CcxtBroker
from backend_stub.money import dec
from backend_stub.store.base import ORDERS, POSITIONS
from services.market import ReplayFeed
from tests.ccxt_broker.conftest import TRADER


async def test_a_resting_order_filled_on_the_exchange_reaches_the_store_with_the_position(
    store, keys, exchange
) -> None:
    config = exchange.ccxt_config() | {"enableRateLimit": False}
    async with CcxtBroker(store=store, keys=keys, exchange_config=config, sync_s=0.3) as broker:
        await broker.start()
        # The exchange replays a known recording in step with the clock: bid at the low it is about to
        # print, below the price now (or offer at the coming high, where the market only rises), so the
        # order rests first and fills a few seconds later.
        script, now_ms = ReplayFeed(), int(time.time() * 1000)
        choices = []
        for symbol, amount in (("BTC/USDT", "0.001"), ("ETH/USDT", "0.01")):
            coming = [t.price for t in script.trades_between(symbol, now_ms + 2_000, now_ms + 8_000)]
            last = (await script.ticker(symbol))["last"]
            if coming and min(coming) < last:
                choices.append((symbol, amount, "buy", min(coming)))
            elif coming and max(coming) > last:
                choices.append((symbol, amount, "sell", max(coming)))  # the account holds the coins
        assert choices, "the replay is flat over the next seconds"
        symbol, amount, side, price = choices[0]
        changes = store.subscribe(TRADER)
        order = await broker.create_order(TRADER, OrderRequest(
            symbol=symbol, side=side, type="limit", amount=dec(amount), price=dec(str(price)),
            client_order_id="follow-1"))
        assert order["status"] == "open"

        seen: dict[str, dict] = {}
        async with asyncio.timeout(30):  # nobody asks for the orders: the follower finds the fill
            async for change in changes:
                seen[change.collection] = change.doc or {}
                if seen.get(ORDERS, {}).get("status") == "closed" and POSITIONS in seen:
                    break
        assert seen[ORDERS]["id"] == order["id"] and seen[ORDERS]["filled"] == float(amount)
        stored = {p["symbol"]: p for p in await store.list(TRADER, POSITIONS)}
        base_held = {"BTC/USDT": 1, "ETH/USDT": 10}[symbol]  # the account's coins before the order
        moved = dec(amount) if side == "buy" else -dec(amount)
        assert stored[symbol]["amount"] == float(dec(base_held) + moved)
