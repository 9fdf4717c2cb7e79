"""PaperBroker through the HTTP API: market fills at the feed price with slippage and fee, limits rest and
fill when crossed (partially against small trades), stops trigger, balances and P&L follow."""

from __future__ import annotations

import asyncio

import pytest

from tests.backend.conftest import Running, auth


async def test_market_buy_fills_at_last_price_plus_slippage_with_taker_fee(backend: Running) -> None:
    r = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    assert r.status_code == 201, r.text
    order = r.json()
    # 50,000 × (1 + 0.0005) = 50,025 exactly on the 0.01 tick
    assert order["status"] == "closed"
    assert order["filled"] == 0.1 and order["remaining"] == 0
    assert order["average"] == 50_025
    assert order["cost"] == pytest.approx(5002.5)
    assert order["fee"] == {"cost": 5.0025, "currency": "USDT"}
    assert order["trades"][0]["takerOrMaker"] == "taker"
    for key in (
        "id",
        "clientOrderId",
        "datetime",
        "timestamp",
        "lastTradeTimestamp",
        "symbol",
        "type",
        "side",
        "price",
        "stopPrice",
        "amount",
        "cost",
        "average",
        "filled",
        "remaining",
        "status",
        "fee",
        "trades",
    ):
        assert key in order

    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["total"]["USDT"] == pytest.approx(100_000 - 5002.5 - 5.0025)
    assert balance["total"]["BTC"] == 0.1
    assert balance["USDT"]["free"] == balance["total"]["USDT"]


async def test_market_sell_realises_pnl_net_of_fees(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    backend.feed.set_price("BTC/USDT", 60_000.0)
    r = await backend.order("alice", symbol="BTC/USDT", side="sell", type="market", amount="0.1")
    assert r.status_code == 201, r.text
    sell = r.json()
    assert sell["average"] == 59_970  # 60,000 × (1 − 0.0005)
    [position] = (await backend.get("alice", "/v1/positions")).json()
    bought = 5002.5 + 5.0025
    sold = 5997.0 - 5.997
    assert position["amount"] == 0
    assert position["realizedPnl"] == pytest.approx(sold - bought)
    assert position["fees"]["cost"] == pytest.approx(5.0025 + 5.997)
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["total"]["USDT"] == pytest.approx(100_000 - bought + sold)


async def test_unrealised_pnl_follows_the_mark_price(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.2")
    backend.feed.set_price("BTC/USDT", 51_000.0)
    [position] = (await backend.get("alice", "/v1/positions")).json()
    basis = 0.2 * 50_025 * 1.001
    assert position["side"] == "long"
    assert position["entryPrice"] == pytest.approx(basis / 0.2)
    assert position["markPrice"] == 51_000
    assert position["unrealizedPnl"] == pytest.approx(0.2 * 51_000 - basis)


async def test_limit_buy_rests_then_fills_at_its_price_when_a_trade_crosses(backend: Running) -> None:
    r = await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.5", price="49000")
    assert r.status_code == 201
    order = r.json()
    assert order["status"] == "open" and order["filled"] == 0
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["used"]["USDT"] == pytest.approx(0.5 * 49_000 * 1.001)

    await backend.feed.trade("BTC/USDT", 49_500.0)  # not crossed
    assert (await backend.get("alice", f"/v1/orders/{order['id']}")).json()["status"] == "open"

    await backend.feed.trade("BTC/USDT", 48_900.0, amount=5)
    filled = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
    assert filled["status"] == "closed"
    assert filled["average"] == 49_000  # a resting order fills at its limit
    assert filled["fee"]["cost"] == pytest.approx(0.5 * 49_000 * 0.001)
    assert filled["trades"][0]["takerOrMaker"] == "maker"
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["used"].get("USDT", 0) == 0
    assert balance["total"]["BTC"] == 0.5


async def test_limit_fills_in_parts_against_smaller_trades(backend: Running) -> None:
    order = (
        await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="1", price="49000")
    ).json()
    await backend.feed.trade("BTC/USDT", 48_990.0, amount=0.3)
    part = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
    assert (part["status"], part["filled"], part["remaining"]) == ("open", 0.3, 0.7)
    await backend.feed.trade("BTC/USDT", 48_980.0, amount=0.25)
    await backend.feed.trade("BTC/USDT", 48_970.0, amount=2)
    done = (await backend.get("alice", f"/v1/orders/{order['id']}")).json()
    assert done["status"] == "closed"
    assert [t["amount"] for t in done["trades"]] == [0.3, 0.25, 0.45]
    assert done["filled"] == 1 and done["remaining"] == 0


async def test_one_trade_is_shared_by_resting_orders_in_time_priority(backend: Running) -> None:
    first = (
        await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.4", price="49000")
    ).json()
    second = (
        await backend.order("bob", symbol="BTC/USDT", side="buy", type="limit", amount="0.4", price="49000")
    ).json()
    await backend.feed.trade("BTC/USDT", 49_000.0, amount=0.5)
    a = (await backend.get("alice", f"/v1/orders/{first['id']}")).json()
    b = (await backend.get("bob", f"/v1/orders/{second['id']}")).json()
    assert a["filled"] == 0.4 and b["filled"] == 0.1


async def test_marketable_limit_fills_at_once_at_the_last_price(backend: Running) -> None:
    r = await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="51000")
    order = r.json()
    assert order["status"] == "closed" and order["average"] == 50_000


async def test_sell_limit_fills_when_price_rises_to_it(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.3")
    order = (
        await backend.order(
            "alice", symbol="BTC/USDT", side="sell", type="limit", amount="0.3", price="52000"
        )
    ).json()
    assert (await backend.get("alice", "/v1/balance")).json()["used"]["BTC"] == 0.3
    await backend.feed.trade("BTC/USDT", 51_999.99)
    assert (await backend.get("alice", f"/v1/orders/{order['id']}")).json()["status"] == "open"
    await backend.feed.trade("BTC/USDT", 52_000.0)
    assert (await backend.get("alice", f"/v1/orders/{order['id']}")).json()["status"] == "closed"


async def test_stop_market_sell_triggers_when_price_falls_to_it(backend: Running) -> None:
    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.2")
    stop = (
        await backend.order(
            "alice", symbol="BTC/USDT", side="sell", type="stop_market", amount="0.2", stopPrice="48000"
        )
    ).json()
    assert stop["status"] == "open" and stop["info"]["triggered"] is False
    await backend.feed.trade("BTC/USDT", 48_500.0)
    assert (await backend.get("alice", f"/v1/orders/{stop['id']}")).json()["status"] == "open"
    await backend.feed.trade("BTC/USDT", 47_900.0)
    done = (await backend.get("alice", f"/v1/orders/{stop['id']}")).json()
    assert done["status"] == "closed"
    assert done["info"]["triggered"] is True
    assert done["average"] == pytest.approx(47_900 * (1 - 0.0005), abs=0.01)


async def test_stop_limit_buy_triggers_then_rests_as_a_limit(backend: Running) -> None:
    stop = (
        await backend.order(
            "alice",
            symbol="BTC/USDT",
            side="buy",
            type="stop_limit",
            amount="0.1",
            stopPrice="51000",
            price="51200",
        )
    ).json()
    await backend.feed.trade("BTC/USDT", 51_500.0)  # triggers; 51,500 is above the limit: rests
    rested = (await backend.get("alice", f"/v1/orders/{stop['id']}")).json()
    assert rested["status"] == "open" and rested["info"]["triggered"] is True and rested["filled"] == 0
    await backend.feed.trade("BTC/USDT", 51_100.0)
    done = (await backend.get("alice", f"/v1/orders/{stop['id']}")).json()
    assert done["status"] == "closed" and done["average"] == 51_200


async def test_stop_already_crossed_is_refused(backend: Running) -> None:
    r = await backend.order(
        "alice", symbol="BTC/USDT", side="buy", type="stop_market", amount="0.1", stopPrice="49000"
    )
    assert r.status_code == 400
    assert "above the last price 50,000 USDT" in r.json()["error"]


async def test_cancel_releases_the_reservation_and_a_closed_order_cannot_be_canceled(
    backend: Running,
) -> None:
    order = (
        await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="1", price="40000")
    ).json()
    r = await backend.http.delete(f"/v1/orders/{order['id']}", headers=auth("alice"))
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert (await backend.get("alice", "/v1/balance")).json()["used"].get("USDT", 0) == 0
    again = await backend.http.delete(f"/v1/orders/{order['id']}", headers=auth("alice"))
    assert again.status_code == 409 and "already canceled" in again.json()["error"]
    filled = (await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")).json()
    r = await backend.http.delete(f"/v1/orders/{filled['id']}", headers=auth("alice"))
    assert r.status_code == 409 and "already closed" in r.json()["error"]
    # a canceled order never fills
    await backend.feed.trade("BTC/USDT", 39_000.0)
    assert (await backend.get("alice", f"/v1/orders/{order['id']}")).json()["status"] == "canceled"


async def test_orders_list_filters_by_status_newest_first(backend: Running) -> None:
    ids = []
    for price in ("40000", "41000", "42000"):
        ids.append(
            (
                await backend.order(
                    "alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price=price
                )
            ).json()["id"]
        )
    closed = (await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")).json()
    await backend.http.delete(f"/v1/orders/{ids[0]}", headers=auth("alice"))
    all_ = [o["id"] for o in (await backend.get("alice", "/v1/orders")).json()]
    assert all_ == [closed["id"], *reversed(ids)]
    assert [
        o["id"] for o in (await backend.get("alice", "/v1/orders", params={"status": "open"})).json()
    ] == [ids[2], ids[1]]
    assert [
        o["id"] for o in (await backend.get("alice", "/v1/orders", params={"status": "closed"})).json()
    ] == [closed["id"], ids[0]]
    bad = await backend.get("alice", "/v1/orders", params={"status": "filled"})
    assert bad.status_code == 422 and "Status" in bad.json()["error"]


async def test_racing_orders_cannot_spend_the_same_money_twice(backend: Running) -> None:
    # Each needs ~60% of the 100,000 USDT: exactly one may pass, whichever comes first.
    bodies = [
        {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "1.2", "price": "49000"},
        {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1.2"},
        {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "1.2", "price": "48000"},
    ]
    responses = await asyncio.gather(*(backend.order("alice", **body) for body in bodies))
    assert sorted(r.status_code for r in responses) == [201, 400, 400]
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["free"]["USDT"] >= 0


async def test_balances_stay_right_across_a_retried_order(backend: Running) -> None:
    """The broker remembers each account as last committed; a retry (its claim refused in the commit)
    leaves nothing behind, so the next order is funded from the one real fill only."""
    first = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1",
                                clientOrderId="once")
    retry = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1",
                                clientOrderId="once")
    assert (first.status_code, retry.status_code) == (201, 200) and retry.json()["id"] == first.json()["id"]
    second = await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")
    assert second.status_code == 201, second.text
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["total"]["USDT"] == pytest.approx(100_000 - 2 * (5002.5 + 5.0025))
    assert balance["total"]["BTC"] == pytest.approx(0.2)
    [position] = (await backend.get("alice", "/v1/positions")).json()
    assert position["amount"] == pytest.approx(0.2)
