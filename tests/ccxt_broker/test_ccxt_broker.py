"""CcxtBroker placing, cancelling and listing real orders through ccxt against the loopback Binance
exchange (signed private REST, HMAC checked by the exchange), and turning its errors into broker errors."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import ccxt
import pytest

from backend_stub.brokers.base import (
    Broker,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRequest,
)
from backend_stub.brokers.ccxt_broker import (
    ApiCredentials,
    CcxtBroker,
    ExchangeFailed,
    ExchangeKeysMissing,
    ExchangeKeysRejected,
    RateLimited,
    _broker_error,
)
from backend_stub.store.base import IDEMPOTENCY, ORDERS, AlreadyExists

TRADER = "trader-1"


def limit_buy(client_order_id: str, *, amount: str = "0.01", price: str = "90000") -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=Decimal(amount),
        price=Decimal(price),
        client_order_id=client_order_id,
    )


def market(side: str, client_order_id: str, amount: str = "0.01") -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT", side=side, type="market", amount=Decimal(amount), client_order_id=client_order_id
    )  # type: ignore[arg-type]


async def test_a_resting_limit_order_reaches_the_book_with_our_client_order_id(
    broker, store, exchange
) -> None:
    order = await broker.create_order(TRADER, limit_buy("ticket-001"))
    assert order["status"] == "open"
    assert (order["symbol"], order["side"], order["type"]) == ("BTC/USDT", "buy", "limit")
    assert (order["amount"], order["price"], order["filled"], order["remaining"]) == (0.01, 90000, 0, 0.01)
    assert order["clientOrderId"] == "ticket-001" and order["exchangeOrderId"]
    # ccxt sent it as Binance's newClientOrderId: the exchange's own open-orders list knows it by that id.
    [on_exchange] = await broker.fetch_open_orders(TRADER)
    assert on_exchange["clientOrderId"] == "ticket-001"
    assert on_exchange["id"] == order["exchangeOrderId"]
    assert ("POST", "/api/v3/order") in exchange.requests
    # Persisted with its idempotency claim.
    assert await store.get(TRADER, ORDERS, order["id"]) == order
    claim = await store.get(TRADER, IDEMPOTENCY, "ticket-001")
    assert claim is not None and claim["orderId"] == order["id"]
    assert [o["id"] for o in await broker.fetch_orders(TRADER, "open")] == [order["id"]]


async def test_a_market_order_fills_at_the_touch(broker, exchange) -> None:
    order = await broker.create_order(TRADER, market("buy", "mkt-1"))
    assert order["status"] == "closed"
    assert order["filled"] == 0.01 and order["remaining"] == 0
    assert order["average"] > 0 and order["cost"] == pytest.approx(order["average"] * 0.01)
    assert [o["id"] for o in await broker.fetch_orders(TRADER, "closed")] == [order["id"]]
    balance = await broker.fetch_balance(TRADER)
    assert balance["BTC"]["total"] == pytest.approx(1.01)
    assert balance["total"]["USDT"] < 50_000
    positions = await broker.fetch_positions(TRADER)
    assert [(p["symbol"], p["amount"]) for p in positions if p["symbol"] == "BTC/USDT"] == [
        ("BTC/USDT", 1.01)
    ]


async def test_cancel_an_open_order_then_refuse_a_second_cancel(broker) -> None:
    order = await broker.create_order(TRADER, limit_buy("to-cancel"))
    canceled = await broker.cancel_order(TRADER, order["id"])
    assert canceled["status"] == "canceled" and canceled["id"] == order["id"]
    assert await broker.fetch_open_orders(TRADER) == []
    with pytest.raises(OrderNotCancelable, match="only open orders"):
        await broker.cancel_order(TRADER, order["id"])
    with pytest.raises(OrderNotFound):
        await broker.cancel_order(TRADER, "no-such-order")
    with pytest.raises(OrderNotFound):
        await broker.fetch_order("someone-else", order["id"])


async def test_an_order_gone_from_the_exchange_is_not_cancelable(broker, store) -> None:
    order = await broker.create_order(TRADER, limit_buy("gone"))
    # The exchange answers -2011 "Unknown order sent." (ccxt OrderNotFound) for an id it does not hold.
    await store.transact(TRADER, [_put({**order, "exchangeOrderId": "987654"})])
    with pytest.raises(OrderNotCancelable, match="no longer open on binance"):
        await broker.cancel_order(TRADER, order["id"])


async def test_listing_orders_catches_up_with_the_exchange(broker, exchange) -> None:
    order = await broker.create_order(TRADER, limit_buy("cancelled-elsewhere"))
    # The trader cancels it on Binance's own website: the next listing shows it canceled.
    exchange.account.cancel({"symbol": "BTCUSDT", "origClientOrderId": "cancelled-elsewhere"})
    [listed] = await broker.fetch_orders(TRADER)
    assert listed["id"] == order["id"] and listed["status"] == "canceled"
    assert await broker.fetch_orders(TRADER, "open") == []


async def test_a_claimed_client_order_id_never_reaches_the_exchange_twice(broker, exchange) -> None:
    await broker.create_order(TRADER, limit_buy("dup-1"))
    posts = exchange.requests.count(("POST", "/api/v3/order"))
    with pytest.raises(AlreadyExists):
        await broker.create_order(TRADER, limit_buy("dup-1"))
    assert exchange.requests.count(("POST", "/api/v3/order")) == posts


async def test_insufficient_funds_is_reported_and_the_order_rejected(broker, store) -> None:
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        await broker.create_order(TRADER, limit_buy("too-big", amount="1", price="90000"))
    [doc] = await store.list(TRADER, ORDERS)
    assert doc["status"] == "rejected" and doc["clientOrderId"] == "too-big"


async def test_an_order_the_exchange_filters_out_is_an_invalid_order(broker) -> None:
    # 0.00001 BTC at 90,000 is 0.90 USDT, under the 5 USDT minimum notional: "Filter failure: NOTIONAL".
    with pytest.raises(InvalidOrder, match="NOTIONAL"):
        await broker.create_order(TRADER, limit_buy("tiny", amount="0.00001"))


async def test_rate_limiting_is_its_own_error_and_nothing_was_placed(broker, store, exchange) -> None:
    await broker.markets()
    exchange.throttle_next(1)
    with pytest.raises(RateLimited) as caught:
        await broker.create_order(TRADER, limit_buy("throttled"))
    assert caught.value.status_code == 429
    [doc] = await store.list(TRADER, ORDERS)
    assert doc["status"] == "rejected"
    assert await broker.fetch_open_orders(TRADER) == []


async def test_an_unreachable_exchange_leaves_the_order_unconfirmed(broker, store, exchange) -> None:
    await broker.markets()
    await exchange.aclose()  # the exchange goes down after the markets were loaded
    with pytest.raises(BrokerUnavailable, match="may have been placed") as caught:
        await broker.create_order(TRADER, limit_buy("in-doubt"))
    assert caught.value.status_code == 503
    [doc] = await store.list(TRADER, ORDERS)
    assert doc["status"] == "open" and doc["info"] == {"confirmed": False}
    with pytest.raises(BrokerUnavailable, match="cannot be reached"):
        await broker.fetch_balance(TRADER)


@pytest.mark.parametrize(
    ("status", "code", "msg", "error", "http_status"),
    [
        (503, -1000, "An unknown error occurred while processing the request.", BrokerUnavailable, 503),
        (500, -1001, "Internal error; unable to process your request.", BrokerUnavailable, 503),
        (400, -9999, "Something this client has no name for.", ExchangeFailed, 502),
    ],
)
async def test_exchange_side_failures_are_told_apart_from_the_traders(
    broker, exchange, status, code, msg, error, http_status
) -> None:
    await broker.markets()
    exchange.fail_next(1, status=status, code=code, msg=msg)
    with pytest.raises(error) as caught:
        await broker.fetch_balance(TRADER)
    assert caught.value.status_code == http_status


async def test_without_stored_keys_nothing_is_sent(broker, exchange) -> None:
    with pytest.raises(ExchangeKeysMissing, match="add them in Settings") as caught:
        await broker.create_order("no-keys-user", limit_buy("x"))
    assert caught.value.status_code == 403
    assert ("POST", "/api/v3/order") not in exchange.requests


async def test_keys_the_exchange_rejects_are_reported_without_being_shown(
    broker, keys, exchange, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = ApiCredentials(api_key="wrong-api-key-4f1c9a7e", secret="wrong-secret-b02d6e11")
    await keys.put("wrong-keys-user", "binance", wrong)
    with pytest.raises(ExchangeKeysRejected) as caught:
        await broker.create_order("wrong-keys-user", limit_buy("k-1"))
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert wrong.api_key not in text and wrong.secret not in text


async def test_keys_never_reach_logs_errors_or_documents(broker, store, exchange, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt's and aiohttp's own loggers included
    errors: list[BaseException] = []
    placed = await broker.create_order(TRADER, limit_buy("audit-1"))
    await broker.cancel_order(TRADER, placed["id"])
    await broker.create_order(TRADER, market("sell", "audit-2"))
    for request in (limit_buy("audit-3", amount="5"), limit_buy("audit-4", amount="0.00001")):
        try:
            await broker.create_order(TRADER, request)
        except Exception as exc:  # noqa: BLE001 - collected to inspect their text
            errors.append(exc)
    exchange.throttle_next(1)
    try:
        await broker.fetch_balance(TRADER)
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)
    assert len(errors) == 3
    stored = json.dumps(await store.list(TRADER, ORDERS)) + json.dumps(await broker.fetch_orders(TRADER))
    texts = [caplog.text, stored, repr(broker), repr(await broker._keys.get(TRADER, "binance"))]
    texts += [f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors]
    for text in texts:
        assert exchange.api_key not in text
        assert exchange.secret not in text


async def test_markets_are_public_and_json_ready(broker) -> None:
    markets = await broker.markets()
    btc = markets["BTC/USDT"]
    assert (btc["base"], btc["quote"], btc["precision"]["amount"], btc["limits"]["cost"]["min"]) == (
        "BTC",
        "USDT",
        1e-05,
        5.0,
    )
    assert "info" not in btc
    json.dumps(markets)
    assert broker.mode == "Live · binance"
    assert isinstance(broker, Broker)  # the core's runtime-checkable protocol


def test_an_unknown_exchange_is_refused_at_construction(store, keys) -> None:
    with pytest.raises(ValueError, match="no exchange"):
        CcxtBroker(store=store, keys=keys, exchange_id="not-an-exchange")


def _put(doc: dict):
    from backend_stub.store.base import Put

    return Put(ORDERS, doc["id"], doc)


EXECUTION_STATUS_UNKNOWN = (
    "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
)


async def test_an_unknown_outcome_is_settled_by_the_next_listing_when_it_never_landed(
    broker, store, exchange
):
    await broker.markets()
    exchange.fail_next(1, status=504, code=-1007, msg=EXECUTION_STATUS_UNKNOWN)
    with pytest.raises(BrokerUnavailable, match="may have been placed"):
        await broker.create_order(TRADER, limit_buy("unknown-1"))
    [doc] = await store.list(TRADER, ORDERS)
    assert (doc["status"], doc["exchangeOrderId"], doc["info"]) == ("open", None, {"confirmed": False})
    [listed] = await broker.fetch_orders(TRADER)
    assert listed["status"] == "rejected" and listed["info"] == {"reason": "binance never received the order"}
    assert (await store.get(TRADER, ORDERS, doc["id"]))["status"] == "rejected"


async def test_an_unknown_outcome_is_settled_by_the_next_listing_when_it_did_land(broker, store, exchange):
    await broker.markets()
    exchange.fail_next(1, status=504, code=-1007, msg=EXECUTION_STATUS_UNKNOWN)
    with pytest.raises(BrokerUnavailable):
        await broker.create_order(TRADER, limit_buy("unknown-2"))
    # What the timeout hid: the order did reach the book.
    landed = exchange.account.place(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "price": "90000",
            "timeInForce": "GTC",
            "newClientOrderId": "unknown-2",
        }
    )
    [listed] = await broker.fetch_orders(TRADER, "open")
    assert listed["exchangeOrderId"] == str(landed["orderId"])
    assert listed["status"] == "open" and "info" not in listed
    canceled = await broker.cancel_order(TRADER, listed["id"])
    assert canceled["status"] == "canceled"


SIGNED_URL = "https://api.binance.com/api/v3/account?timestamp=1&signature=abc"


@pytest.mark.parametrize(
    ("raised", "expected", "status", "reason"),
    [
        (
            ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}'),
            OrderNotFound,
            404,
            "Order does not exist.",
        ),
        (
            ccxt.InsufficientFunds("binance Account has insufficient balance for requested action."),
            InsufficientFunds,
            400,
            "Account has insufficient balance for requested action.",
        ),
        (
            ccxt.InvalidOrder('binance {"code": -1013, "msg": "Filter failure: LOT_SIZE"}'),
            InvalidOrder,
            400,
            "Filter failure: LOT_SIZE",
        ),
        (
            ccxt.BadSymbol("binance does not have market symbol FOO/BAR"),
            InvalidOrder,
            400,
            "does not have market symbol FOO/BAR",
        ),
        (
            ccxt.AuthenticationError(
                'binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'
            ),
            ExchangeKeysRejected,
            403,
            None,
        ),
        (ccxt.DDoSProtection("binance 429 Too Many Requests"), RateLimited, 429, None),
        (ccxt.RateLimitExceeded("binance rate limit"), RateLimited, 429, None),
        (ccxt.ExchangeNotAvailable(f"binance GET {SIGNED_URL} 503"), BrokerUnavailable, 503, None),
        (
            ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order request timeout"),
            BrokerUnavailable,
            503,
            None,
        ),
        (ccxt.ExchangeError(f"binance GET {SIGNED_URL} 400 odd"), ExchangeFailed, 502, None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_every_ccxt_error_becomes_a_broker_error_a_trader_can_read(raised, expected, status, reason) -> None:
    error = _broker_error(raised, ApiCredentials(api_key="k" * 16, secret="s" * 16), action="place the order")
    assert type(error) is expected and error.status_code == status
    text = str(error)
    assert "http" not in text and "signature" not in text and "{" not in text  # never ccxt's raw text
    if reason:  # the exchange's own reason, when it is plain prose, helps the trader fix the order
        assert text.endswith(f": {reason}")
