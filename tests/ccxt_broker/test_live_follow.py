"""A live limit order that fills later on the exchange reaches the store (and so the app's live state),
and the trader's positions follow: found by the broker's order follower, or by a trader listing orders,
against the loopback Binance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.ccxt_broker import CcxtBroker
from backend_stub.money import dec
from backend_stub.store.base import ORDERS, POSITIONS
from services.market import ReplayFeed
from tests.ccxt_broker.conftest import TRADER

BASE_HELD = {"BTC/USDT": 1, "ETH/USDT": 10}  # the loopback account's coins before the order


# The order must be resting when it reaches the exchange: the price it waits for comes no sooner than this after
# it is chosen (with a 2 s margin the test failed once, in a CI run with two CPU hogs beside it), and within the
# window's end.
PLACING_S = 5.0
WINDOW_S = 20.0


async def resting_order_about_to_fill() -> tuple[str, str, str, float]:
    """(symbol, amount, side, price) of a limit order that rests now and fills some seconds later.

    The exchange replays a known recording in step with the clock: bid at the lowest price it prints between
    `PLACING_S` and `WINDOW_S` from now, where it stays above that until then (or offer at the coming high,
    where the market only rises), so the order rests however long placing it takes, up to `PLACING_S`."""
    script, now_ms = ReplayFeed(), int(time.time() * 1000)
    placing_ms = now_ms + int(PLACING_S * 1000)
    choices = []
    for symbol, amount in (("BTC/USDT", "0.001"), ("ETH/USDT", "0.01")):
        soon = [t.price for t in script.trades_between(symbol, now_ms, placing_ms)]
        coming = [t.price for t in script.trades_between(symbol, placing_ms, now_ms + int(WINDOW_S * 1000))]
        last = (await script.ticker(symbol))["last"]
        before = [last, *soon]
        if coming and min(coming) < min(before):
            choices.append((symbol, amount, "buy", min(coming)))
        elif coming and max(coming) > max(before):
            choices.append((symbol, amount, "sell", max(coming)))  # the account holds the coins
    assert choices, "the replay makes no new low or high in the coming seconds"
    return choices[0]


@pytest.mark.parametrize(
    ("sync_s", "trader_lists_orders"),
    [(0.3, False), (3_600.0, True)],
    ids=["the follower finds the fill", "a trader listing orders finds it"],
)
async def test_a_resting_order_filled_on_the_exchange_reaches_the_store_with_the_position(
    store: Any, keys: Any, exchange: Any, sync_s: float, trader_lists_orders: bool
) -> None:
    config = exchange.ccxt_config() | {"enableRateLimit": False}
    async with CcxtBroker(store=store, keys=keys, exchange_config=config, sync_s=sync_s) as broker:
        await broker.start()
        symbol, amount, side, price = await resting_order_about_to_fill()
        changes = store.subscribe(TRADER)
        order = await broker.create_order(TRADER, OrderRequest(
            symbol=symbol, side=side, type="limit", amount=dec(amount), price=dec(str(price)),
            client_order_id="follow-1"))
        assert order["status"] == "open"

        async def list_orders() -> None:
            while True:
                await asyncio.sleep(0.3)
                await broker.fetch_orders(TRADER)

        lister = asyncio.create_task(list_orders()) if trader_lists_orders else None
        seen: dict[str, dict] = {}
        try:
            async with asyncio.timeout(WINDOW_S + 30):
                async for change in changes:
                    seen[change.collection] = change.doc or {}
                    if seen.get(ORDERS, {}).get("status") == "closed" and POSITIONS in seen:
                        break
        finally:
            if lister is not None:
                lister.cancel()
        assert seen[ORDERS]["id"] == order["id"] and seen[ORDERS]["filled"] == float(amount)
        stored = {p["symbol"]: p for p in await store.list(TRADER, POSITIONS)}
        moved = dec(amount) if side == "buy" else -dec(amount)
        assert stored[symbol]["amount"] == float(dec(BASE_HELD[symbol]) + moved)
