"""The live broker's order options against the loopback Binance: time in force and post-only go as ccxt's
native params; what the exchange cannot take is refused in words before anything is claimed or sent; a
bracket with one exit is emulated (the follower places the exit once the entry fills) and says so."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from backend_stub.brokers.base import BrokerError, InvalidOrder, OrderRequest
from backend_stub.brokers.ccxt_broker import CcxtBroker
from backend_stub.money import dec
from backend_stub.store.base import IDEMPOTENCY, ORDERS
from tests.ccxt_broker.conftest import TRADER
from tests.ccxt_broker.test_live_follow import resting_order_about_to_fill


def limit(client_order_id: str, **options: Any) -> OrderRequest:
    fields = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": Decimal("0.01"),
              "price": Decimal("90000"), "client_order_id": client_order_id, **options}
    return OrderRequest(**fields)


async def test_post_only_and_time_in_force_go_to_the_exchange_natively(broker: Any) -> None:
    maker = await broker.create_order(TRADER, limit("po-1", post_only=True))
    ioc_rest = await broker.create_order(TRADER, limit("tif-1", time_in_force="FOK"))
    assert (maker["postOnly"], maker["emulated"], ioc_rest["timeInForce"]) == (True, False, "FOK")
    on_exchange = {o["clientOrderId"]: o for o in await broker.fetch_open_orders(TRADER)}
    assert on_exchange["po-1"]["postOnly"] is True  # sent as Binance's LIMIT_MAKER
    assert on_exchange["tif-1"]["timeInForce"] == "FOK"


async def test_a_post_only_order_that_would_trade_is_refused_by_the_exchange(broker: Any, store: Any) -> None:
    with pytest.raises(BrokerError) as refused:
        await broker.create_order(TRADER, limit("po-2", post_only=True, price=Decimal("500000")))
    assert 400 <= refused.value.status_code < 500
    [doc] = [d for d in await store.list(TRADER, ORDERS) if d["clientOrderId"] == "po-2"]
    assert doc["status"] == "rejected"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"type": "oco", "stop_price": Decimal("99000")}, "OCO orders are not sent to Binance"),
        ({"type": "trailing_stop", "price": None, "trailing_percent": Decimal(2)}, "offers no trailing stop"),
        ({"take_profit_price": Decimal("95000"), "stop_loss_price": Decimal("85000")}, "not both"),
    ],
)
async def test_what_the_exchange_cannot_take_is_refused_before_anything_is_sent(
    broker: Any, store: Any, exchange: Any, options: dict[str, Any], message: str
) -> None:
    fields = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": Decimal("0.01"),
              "price": Decimal("90000"), "client_order_id": "refused-1", **options}
    with pytest.raises(InvalidOrder, match=message):
        await broker.create_order(TRADER, OrderRequest(**fields))
    assert ("POST", "/api/v3/order") not in exchange.requests
    assert await store.get(TRADER, IDEMPOTENCY, "refused-1") is None


async def test_a_bracket_exit_is_emulated_once_the_entry_fills(store: Any, keys: Any, exchange: Any) -> None:
    config = exchange.ccxt_config() | {"enableRateLimit": False}
    async with CcxtBroker(store=store, keys=keys, exchange_config=config, sync_s=0.3) as broker:
        await broker.start()
        symbol, amount, side, price = await resting_order_about_to_fill()
        entry_price = dec(str(price))
        take_profit = (entry_price * Decimal("1.2") if side == "buy" else entry_price * Decimal("0.8")).quantize(
            Decimal("0.01")
        )
        changes = store.subscribe(TRADER)
        entry = await broker.create_order(TRADER, OrderRequest(
            symbol=symbol, side=side, type="limit", amount=dec(amount), price=entry_price,  # type: ignore[arg-type]
            take_profit_price=take_profit, client_order_id="bracket-1"))
        assert entry["status"] == "open" and entry["emulated"] is True
        exit_: dict[str, Any] = {}
        linked = False
        async with asyncio.timeout(30):
            async for change in changes:  # the exit, then the entry pointing at it
                doc = change.doc or {}
                if change.collection == ORDERS and doc.get("parentId") == entry["id"]:
                    exit_ = doc
                linked = linked or (doc.get("id") == entry["id"] and bool(doc.get("exitId")))
                if exit_ and linked:
                    break
        assert (await store.get(TRADER, ORDERS, entry["id"]))["exitId"] == exit_["id"]
        assert (exit_["side"], exit_["type"], exit_["price"], exit_["amount"], exit_["status"]) == (
            "buy" if side == "sell" else "sell", "limit", float(take_profit), float(amount), "open"
        )
        assert exit_["exchangeOrderId"]
        await broker.sync_open_orders()  # another pass places nothing more
        assert len([d for d in await store.list(TRADER, ORDERS) if d.get("parentId") == entry["id"]]) == 1
