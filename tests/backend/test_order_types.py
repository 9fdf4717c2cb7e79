"""Every order type through the HTTP API against trades: time in force, post-only, trailing stops, OCO,
brackets; the strict order schema (unknown fields, strict decimals); the open-order cap; and every resting
type rebuilt after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend_stub.brokers.paper import PaperBroker
from backend_stub.store.sqlite import SqliteStore
from tests.backend.conftest import Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed

BTC = "BTC/USDT"


async def place(backend: Running, **body: Any) -> dict[str, Any]:
    r = await backend.order("alice", symbol=BTC, **body)
    assert r.status_code == 201, r.text
    return r.json()


async def order(backend: Running, order_id: str) -> dict[str, Any]:
    return (await backend.get("alice", f"/v1/orders/{order_id}")).json()


async def open_orders(backend: Running) -> list[dict[str, Any]]:
    return (await backend.get("alice", "/v1/orders", params={"status": "open"})).json()


async def balance(backend: Running) -> dict[str, Any]:
    return (await backend.get("alice", "/v1/balance")).json()


# -- time in force and post-only -------------------------------------------------------------------------


async def test_ioc_trades_what_the_market_shows_and_cancels_the_rest(backend: Running) -> None:
    await backend.feed.trade(BTC, 50_000.0, amount=0.4)
    ioc = await place(backend, side="buy", type="limit", amount="1", price="50100", timeInForce="IOC")
    assert ioc["status"] == "canceled" and ioc["timeInForce"] == "IOC"
    assert ioc["filled"] == 0.4 and ioc["remaining"] == 0.6 and ioc["average"] == 50_000
    assert "IOC" in ioc["info"]["reason"]
    money = await balance(backend)
    assert money["total"]["BTC"] == 0.4 and money["used"].get("USDT", 0) == 0
    away = await place(backend, side="buy", type="limit", amount="0.1", price="40000", timeInForce="IOC")
    assert away["status"] == "canceled" and away["filled"] == 0
    assert await open_orders(backend) == []


async def test_fok_trades_all_or_nothing(backend: Running) -> None:
    await backend.feed.trade(BTC, 50_000.0, amount=0.4)
    too_big = await place(backend, side="buy", type="limit", amount="1", price="50100", timeInForce="FOK")
    assert too_big["status"] == "canceled" and too_big["filled"] == 0 and too_big["trades"] == []
    fits = await place(backend, side="buy", type="limit", amount="0.3", price="50100", timeInForce="FOK")
    assert fits["status"] == "closed" and fits["filled"] == 0.3
    assert (await balance(backend))["total"]["BTC"] == 0.3


async def test_post_only_that_would_trade_is_refused_and_one_that_rests_fills_as_maker(backend: Running) -> None:
    r = await backend.order("alice", symbol=BTC, side="buy", type="limit", amount="0.1", price="50000", postOnly=True)
    assert r.status_code == 422
    assert r.json()["error"] == (
        "A post-only buy at 50,000 is at or above the last price 50,000, so it would trade at once; it was not placed"
    )
    assert await open_orders(backend) == []
    resting = await place(backend, side="buy", type="limit", amount="0.1", price="49000", postOnly=True)
    assert resting["status"] == "open" and resting["postOnly"] is True
    await backend.feed.trade(BTC, 48_900.0)
    filled = await order(backend, resting["id"])
    assert filled["status"] == "closed" and filled["trades"][0]["takerOrMaker"] == "maker"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "market", "postOnly": True}, "Post-only applies to limit orders"),
        ({"type": "limit", "price": "49000", "postOnly": True, "timeInForce": "IOC"}, "cannot be IOC"),
        ({"type": "stop_market", "stopPrice": "51000", "timeInForce": "FOK"}, "Time in force FOK applies to"),
        ({"type": "trailing_stop"}, "needs a trailing percent"),
        ({"type": "trailing_stop", "trailingPercent": "60"}, "at most 50 %"),
        ({"type": "limit", "price": "49000", "trailingPercent": "1"}, "takes no trailing percent"),
        ({"type": "oco", "price": "52000"}, "An OCO order needs a stop price"),
        ({"type": "oco", "price": "53000", "stopPrice": "52000"}, "limit price below its stop price"),
        ({"type": "oco", "price": "49000", "stopPrice": "51000", "side": "sell"}, "stop price below its limit"),
        ({"type": "oco", "price": "51000", "stopPrice": "52000"}, "limit price must be below the last price"),
        ({"type": "limit", "price": "49000", "takeProfitPrice": "48000"}, "take-profit price 48,000 USDT must be above"),
        ({"type": "market", "stopLossPrice": "50500"}, "stop-loss price 50,500 USDT must be below the entry at 50,000"),
        ({"type": "limit", "price": "49000", "stopLossPrice": "48000.001"}, "Stop-loss price 48,000.001 USDT is not"),
    ],
)
async def test_order_options_that_make_no_sense_are_refused_in_words(
    backend: Running, body: dict[str, Any], message: str
) -> None:
    r = await backend.order("alice", **{"symbol": BTC, "side": "buy", "amount": "0.1", **body})
    assert r.status_code in (400, 422), r.text
    assert message in r.json()["error"]


# -- stops that move, OCO, brackets ----------------------------------------------------------------------


async def test_trailing_stop_follows_the_high_and_fires_percent_below_it(backend: Running) -> None:
    await place(backend, side="buy", type="market", amount="0.1")
    trail = await place(backend, side="sell", type="trailing_stop", amount="0.1", trailingPercent="2")
    assert trail["stopPrice"] == 49_000 and trail["trailingPercent"] == 2
    await backend.feed.trade(BTC, 55_000.0)
    await backend.feed.trade(BTC, 54_000.0)  # above 55,000 × 0.98 = 53,900
    moved = await order(backend, trail["id"])
    assert moved["status"] == "open" and moved["stopPrice"] == 53_900  # the trigger followed the high
    [listed] = await open_orders(backend)
    assert listed["stopPrice"] == 53_900
    await backend.feed.trade(BTC, 53_900.0)
    done = await order(backend, trail["id"])
    assert done["status"] == "closed" and done["average"] == 53_873.05  # 53,900 × (1 − 0.0005)
    assert done["trades"][0]["takerOrMaker"] == "taker"


async def test_oco_stop_leg_fires_and_the_limit_leg_is_gone(backend: Running) -> None:
    await place(backend, side="buy", type="market", amount="0.2")
    oco = await place(backend, side="sell", type="oco", amount="0.2", price="52000", stopPrice="48000")
    assert oco["ocoId"] == oco["id"] and (await balance(backend))["used"]["BTC"] == 0.2
    await backend.feed.trade(BTC, 47_900.0)
    done = await order(backend, oco["id"])
    assert done["status"] == "closed" and done["info"]["leg"] == "stop" and done["average"] == 47_876.05
    await backend.feed.trade(BTC, 52_000.0)
    assert len((await order(backend, oco["id"]))["trades"]) == 1  # the limit leg no longer exists
    money = await balance(backend)
    assert money["total"]["BTC"] == 0 and money["used"].get("BTC", 0) == 0


async def test_oco_limit_leg_fills_and_cancels_the_stop(backend: Running) -> None:
    await place(backend, side="buy", type="market", amount="0.2")
    oco = await place(backend, side="sell", type="oco", amount="0.2", price="52000", stopPrice="48000")
    await backend.feed.trade(BTC, 52_000.0)
    await backend.feed.trade(BTC, 40_000.0)
    done = await order(backend, oco["id"])
    assert done["status"] == "closed" and done["info"]["leg"] == "limit" and done["average"] == 52_000
    assert len(done["trades"]) == 1


async def test_bracket_on_a_market_entry_places_an_oco_exit_that_takes_the_profit(backend: Running) -> None:
    entry = await place(
        backend, side="buy", type="market", amount="0.1", takeProfitPrice="55000", stopLossPrice="45000"
    )
    assert entry["status"] == "closed" and entry["takeProfitPrice"] == 55_000
    [exit_] = await open_orders(backend)
    assert entry["exitId"] == exit_["id"]
    assert (exit_["type"], exit_["side"], exit_["amount"], exit_["parentId"]) == ("oco", "sell", 0.1, entry["id"])
    assert (exit_["price"], exit_["stopPrice"]) == (55_000, 45_000)
    await backend.feed.trade(BTC, 55_000.0)
    done = await order(backend, exit_["id"])
    assert done["status"] == "closed" and done["average"] == 55_000
    [position] = (await backend.get("alice", "/v1/positions")).json()
    assert position["amount"] == 0 and position["realizedPnl"] > 0


async def test_bracket_exit_waits_for_the_entry_to_fill(backend: Running) -> None:
    entry = await place(backend, side="buy", type="limit", amount="0.1", price="49000", stopLossPrice="47000")
    assert [o["id"] for o in await open_orders(backend)] == [entry["id"]]
    await backend.feed.trade(BTC, 48_900.0, amount=0.04)  # fills in part: no exit yet
    assert [o["id"] for o in await open_orders(backend)] == [entry["id"]]
    await backend.feed.trade(BTC, 48_900.0)
    [exit_] = await open_orders(backend)
    assert (exit_["type"], exit_["side"], exit_["stopPrice"], exit_["amount"]) == ("stop_market", "sell", 47_000, 0.1)
    await backend.feed.trade(BTC, 46_000.0)
    assert (await order(backend, exit_["id"]))["status"] == "closed"
    assert (await balance(backend))["total"]["BTC"] == 0


async def test_canceling_a_partly_filled_bracket_entry_protects_what_it_bought(backend: Running) -> None:
    entry = await place(backend, side="buy", type="limit", amount="0.1", price="49000", takeProfitPrice="52000")
    await backend.feed.trade(BTC, 48_900.0, amount=0.04)
    r = await backend.http.delete(f"/v1/orders/{entry['id']}", headers=auth("alice"))
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    [exit_] = await open_orders(backend)
    assert (exit_["type"], exit_["price"], exit_["amount"]) == ("limit", 52_000, 0.04)


# -- the schema ------------------------------------------------------------------------------------------

OK = {"symbol": BTC, "side": "buy", "type": "limit", "amount": "0.01", "price": "45000"}


async def post_raw(backend: Running, raw: str) -> tuple[int, str]:
    r = await backend.http.post(
        "/v1/orders", content=raw, headers={**auth("alice"), "Content-Type": "application/json"}
    )
    return r.status_code, r.json().get("error", "")


async def test_an_unknown_field_is_refused_by_name_never_dropped(backend: Running) -> None:
    r = await backend.order("alice", **OK, reduceOnly=True)
    assert r.status_code == 422
    assert r.json()["error"] == "Unknown field reduceOnly: the API does not take it, so nothing was done"
    sneaky = "x\u202eevil\u0000"
    r = await backend.order("alice", **{**OK, sneaky: 1})
    assert r.status_code == 422 and "Unknown field" in r.json()["error"] and "evil" not in r.text
    assert await open_orders(backend) == []
    r = await backend.alert("alice", symbol=BTC, price="51000", repeat=True)
    assert r.status_code == 422 and "Unknown field repeat" in r.json()["error"]


@pytest.mark.parametrize("text", ["0.00_1", "\u0660.\u0660\u0661", "\uff10.01", " 0.01", "0.01\n", "+0.01", "0x1", "1,000"])
async def test_numbers_are_ascii_decimal_text_only(backend: Running, text: str) -> None:
    code, error = await post_raw(backend, _json({**OK, "amount": text}))
    assert (code, error) == (422, "Amount must be a number")


async def test_json_numbers_are_read_as_written_not_through_float(backend: Running) -> None:
    # As a float 45000.0000000000001 is 45000.0: read exactly, it is off the tick and refused.
    code, error = await post_raw(backend, _json(OK).replace('"45000"', "45000.0000000000001"))
    assert (code, error) == (400, "Price 45,000.0000000000001 USDT is not a multiple of the tick 0.01 USDT")
    code, error = await post_raw(backend, _json(OK).replace('"0.01"', "0.1000000000000000055511151231257827"))
    assert (code, error) == (422, "Amount has more than 18 decimal places")
    r = await backend.http.post(
        "/v1/orders",
        content=_json(OK).replace('"0.01"', "0.0100").replace('"45000"', "4.5e4"),
        headers={**auth("alice"), "Content-Type": "application/json"},
    )
    assert r.status_code == 201 and (r.json()["amount"], r.json()["price"]) == (0.01, 45_000)
    code, error = await post_raw(backend, '{"symbol": "BTC/USDT", "price": 51000.000000000001, "clientAlertId": "a1"}')
    assert code == 422  # alerts go through the same reading


async def test_order_value_is_said_with_thousands_separators(backend: Running) -> None:
    code, error = await post_raw(backend, _json({**OK, "amount": "0.0001", "price": "40000"}))
    assert (code, error) == (400, "Order value 4 USDT is below the minimum 5 USDT")
    code, error = await post_raw(backend, _json({**OK, "amount": "0.0001", "price": "49999.5"}))
    assert code == 201 or "49,999.5" not in error


def _json(body: dict[str, Any]) -> str:
    import json

    return json.dumps({**body, "clientOrderId": f"raw-{id(body)}"})


# -- cap and restart -------------------------------------------------------------------------------------


async def test_open_orders_per_trader_are_capped_with_a_clear_409(tmp_path: Path) -> None:
    feed = ListFeed({BTC: 50_000.0})
    async with SqliteStore(tmp_path / "state.db") as store, PaperBroker(
        store=store, feed=feed, max_open_orders=3
    ) as broker:
        async with serve(make_settings(tmp_path), feed, store=store, broker=broker) as backend:
            for price in ("49000", "48000", "47000"):
                await place(backend, side="buy", type="limit", amount="0.01", price=price)
            r = await backend.order("alice", symbol=BTC, side="buy", type="limit", amount="0.01", price="46000")
            assert r.status_code == 409
            assert r.json()["error"] == (
                "You have 3 open orders, the most one account may hold; cancel one before placing another"
            )
            other = await backend.order("bob", symbol=BTC, side="buy", type="limit", amount="0.01", price="46000")
            assert other.status_code == 201
            market = await backend.order("alice", symbol=BTC, side="buy", type="market", amount="0.01")
            assert market.status_code == 409  # the cap counts what rests, and says so before anything trades


async def test_every_resting_type_is_rebuilt_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    feed = ListFeed({BTC: 50_000.0})
    async with serve(settings, feed) as backend:
        await feed.until_consumers(1)
        await place(backend, side="buy", type="market", amount="0.3")
        placed = {
            "limit": await place(backend, side="buy", type="limit", amount="0.1", price="49000", postOnly=True),
            "stop_market": await place(backend, side="buy", type="stop_market", amount="0.1", stopPrice="51000"),
            "stop_limit": await place(
                backend, side="sell", type="stop_limit", amount="0.1", stopPrice="48500", price="48400"
            ),
            "triggered": await place(
                backend, side="buy", type="stop_limit", amount="0.1", stopPrice="50500", price="50400"
            ),
            "trailing": await place(backend, side="sell", type="trailing_stop", amount="0.1", trailingPercent="5"),
            "oco": await place(backend, side="sell", type="oco", amount="0.1", price="53000", stopPrice="47000"),
            "bracket": await place(
                backend, side="buy", type="limit", amount="0.1", price="49500", takeProfitPrice="60000"
            ),
        }
        ids: dict[str, str] = {k: v["id"] for k, v in placed.items()}
        await feed.trade(BTC, 50_600.0)  # triggers the buy stop-limit, which rests at 50,400
        await feed.trade(BTC, 49_450.0, amount=0.05)  # the bracket entry fills in part...
        await feed.trade(BTC, 50_000.0)
        assert (await order(backend, ids["triggered"]))["info"]["triggered"] is True
        before = await balance(backend)
    feed = ListFeed({BTC: 50_000.0})
    async with serve(settings, feed) as backend:
        await feed.until_consumers(1)
        assert (await balance(backend))["used"] == before["used"]
        await feed.trade(BTC, 51_000.0)  # stop-market buy fires; the trailing stop's peak follows
        assert (await order(backend, ids["stop_market"]))["status"] == "closed"
        await feed.trade(BTC, 49_400.0)  # ...and the rest of the bracket entry fills: its exit is placed
        entry = await order(backend, ids["bracket"])
        assert entry["status"] == "closed" and entry["filled"] == 0.1
        exit_ = await order(backend, entry["exitId"])
        assert (exit_["status"], exit_["price"], exit_["amount"]) == ("open", 60_000, 0.1)
        await feed.trade(BTC, 48_900.0)  # the post-only limit and the triggered stop-limit (50,400) fill
        assert (await order(backend, ids["limit"]))["status"] == "closed"
        assert (await order(backend, ids["triggered"]))["average"] == 50_400
        assert (await order(backend, ids["trailing"]))["status"] == "open"  # 51,000 × 0.95 = 48,450
        await feed.trade(BTC, 48_450.0)  # the trailing stop fires; the sell stop-limit triggers and fills
        assert (await order(backend, ids["trailing"]))["status"] == "closed"
        assert (await order(backend, ids["stop_limit"]))["average"] == 48_400
        assert (await order(backend, ids["oco"]))["status"] == "open"
        await feed.trade(BTC, 46_900.0)
        oco = await order(backend, ids["oco"])
        assert oco["status"] == "closed" and oco["info"]["leg"] == "stop"
        assert [o["id"] for o in await open_orders(backend)] == [exit_["id"]]


async def test_a_clean_restart_keeps_where_a_trailing_stop_had_followed_the_market(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    feed = ListFeed({BTC: 50_000.0})
    async with serve(settings, feed) as backend:
        await feed.until_consumers(1)
        await place(backend, side="buy", type="market", amount="0.1")
        trail = await place(backend, side="sell", type="trailing_stop", amount="0.1", trailingPercent="2")
        await feed.trade(BTC, 55_000.0)
    feed = ListFeed({BTC: 54_000.0})
    async with serve(settings, feed) as backend:
        await feed.until_consumers(1)
        assert (await order(backend, trail["id"]))["stopPrice"] == 53_900
        await feed.trade(BTC, 53_900.0)
        assert (await order(backend, trail["id"]))["status"] == "closed"
