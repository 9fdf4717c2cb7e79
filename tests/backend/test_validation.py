"""Bad orders get a 4xx with a sentence a trader understands, never a 5xx, and never the input echoed."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backend.conftest import Running, auth

OK = {
    "symbol": "BTC/USDT",
    "side": "buy",
    "type": "limit",
    "amount": "0.01",
    "price": "45000",
    "clientOrderId": "v1",
}


async def post(backend: Running, body: object) -> tuple[int, str]:
    r = await backend.http.post("/v1/orders", json=body, headers=auth("alice"))
    return r.status_code, r.json()["error"] if r.status_code >= 400 else ""


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"symbol": "DOGE/EUR"}, 400, "Unknown symbol DOGE/EUR"),
        ({"amount": "0.00001"}, 400, "Amount 0.00001 BTC is not a multiple of the step 0.0001 BTC"),
        ({"amount": "0.00015"}, 400, "Amount 0.00015 BTC is not a multiple of the step 0.0001 BTC"),
        ({"amount": "101"}, 400, "Amount 101 BTC is above the maximum 100 BTC"),
        ({"amount": "0"}, 400, "Amount must be greater than 0 BTC"),
        ({"amount": "-1"}, 400, "Amount must be greater than 0 BTC"),
        ({"price": "45000.001"}, 400, "Price 45,000.001 USDT is not a multiple of the tick 0.01 USDT"),
        ({"price": "-5"}, 400, "Price must be greater than 0 USDT"),
        ({"price": "2000000"}, 400, "Price 2,000,000 USDT is above the maximum 1,000,000 USDT"),
        ({"amount": "0.0001", "price": "40000"}, 400, "Order value 4 USDT is below the minimum 5 USDT"),
        ({"price": None}, 400, "A limit order needs a price"),
        ({"type": "stop_limit"}, 400, "A stop-limit order needs a stop price"),
        ({"type": "stop_market", "price": None}, 400, "A stop-market order needs a stop price"),
        ({"type": "market"}, 400, "A market order takes no price"),
        ({"stopPrice": "44000"}, 400, "A limit order takes no stop price"),
        ({"side": "long"}, 422, "Side must be buy or sell"),
        ({"type": "trailing"}, 422, "Order type must be market, limit, stop_market"),
        ({"amount": "lots"}, 422, "Amount must be a number"),
        ({"amount": [1]}, 422, "Amount must be a number"),
        ({"amount": True}, 422, "Amount must be a number"),
        ({"clientOrderId": ""}, 422, "clientOrderId"),
        ({"clientOrderId": "has space"}, 422, "clientOrderId"),
        ({"clientOrderId": "x" * 65}, 422, "clientOrderId"),
    ],
)
async def test_each_rule(backend: Running, change: dict, status: int, message: str) -> None:
    body = {k: v for k, v in {**OK, **change}.items() if v is not None}
    code, error = await post(backend, body)
    assert (code, error[: len(message)]) == (status, message)
    assert (await backend.get("alice", "/v1/orders")).json() == []


async def test_market_order_min_notional_uses_the_last_price(backend: Running) -> None:
    backend.feed.set_price("BTC/USDT", 40_000.0)
    market = {**OK, "type": "market", "price": None, "amount": "0.0001"}  # null price = no price
    assert await post(backend, market) == (400, "Order value 4 USDT is below the minimum 5 USDT")
    backend.feed.set_price("BTC/USDT", 60_000.0)
    assert await post(backend, market) == (201, "")


async def test_insufficient_balance(backend: Running) -> None:
    code, error = await post(backend, {**OK, "amount": "3", "price": "45000"})
    assert code == 400 and error.startswith("Insufficient balance")
    code, error = await post(backend, {**OK, "side": "sell", "clientOrderId": "v2"})
    assert code == 400 and "you have 0 BTC" in error


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers(backend: Running, literal: str) -> None:
    for field in ("amount", "price"):
        raw = json.dumps({**OK, field: 1}).replace(": 1,", f": {literal},").replace(": 1}", f": {literal}}}")
        r = await backend.http.post(
            "/v1/orders", content=raw, headers={**auth("alice"), "Content-Type": "application/json"}
        )
        assert r.status_code in (400, 422), (field, literal, r.text)
        assert r.json()["error"] == f"{field.capitalize()} must be a finite number"
        code, error = await post(backend, {**OK, field: literal.lower()})
        assert code in (400, 422) and field.capitalize() in error


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "The request body is not valid JSON"),
        ("", "The request needs a JSON body"),
        ("[1, 2]", "The request body must be a JSON object"),
        ('"text"', "The request body must be a JSON object"),
        ("{}", "Symbol is required"),
    ],
)
async def test_malformed_bodies(backend: Running, raw: str, message: str) -> None:
    r = await backend.http.post(
        "/v1/orders", content=raw, headers={**auth("alice"), "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith(message)


async def test_errors_do_not_echo_the_input(backend: Running) -> None:
    secret = "sk-live-DO-NOT-ECHO"
    r = await backend.http.post(
        "/v1/orders", json={**OK, "amount": secret, "side": secret}, headers=auth("alice")
    )
    assert r.status_code == 422 and secret not in r.text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
order_like = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.sampled_from(["BTC/USDT", "ETH/USDT", "X/Y", ""]) | json_values,
        "side": st.sampled_from(["buy", "sell"]) | json_values,
        "type": st.sampled_from(["market", "limit", "stop_market", "stop_limit", "trailing_stop", "oco"])
        | json_values,
        "amount": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
        "price": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
        "stopPrice": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
        "clientOrderId": st.text(min_size=1, max_size=10) | json_values,
        "trailingPercent": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
        "timeInForce": st.sampled_from(["GTC", "IOC", "FOK"]) | json_values,
        "postOnly": st.booleans() | json_values,
        "takeProfitPrice": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
        "stopLossPrice": st.decimals(allow_nan=True, allow_infinity=True).map(str) | json_values,
    },
)


async def test_no_body_makes_a_5xx(backend: Running) -> None:
    bodies: list[object] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(order_like, json_values))
    def collect(body: object) -> None:
        bodies.append(body)

    collect()
    for body in bodies:
        raw = json.dumps(body, allow_nan=True)
        r = await backend.http.post(
            "/v1/orders", content=raw, headers={**auth("fuzz"), "Content-Type": "application/json"}
        )
        assert r.status_code < 500, (raw, r.text)
        assert isinstance(r.json(), dict)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "Amount is out of range (too large)"),
        ("-1e400", "Amount is out of range (too large)"),
        (1e300, "Amount is out of range (too large)"),
        ("1e-400", "Amount has more than 18 decimal places"),
    ],
)
async def test_absurd_magnitudes(backend: Running, value: object, message: str) -> None:
    code, error = await post(backend, {**OK, "amount": value})
    assert (code, error) == (422, message)


async def test_the_fast_and_the_generic_order_path_answer_alike(backend: Running) -> None:
    """`Content-Type: application/json` takes the route's lean path (models.LeanJSONRoute); with a charset
    the same order goes FastAPI's own way. A trader sees the same order, status codes and errors from both."""
    answers = {}
    for content_type in ("application/json", "application/json; charset=utf-8"):
        headers = {**auth("alice"), "Content-Type": content_type}
        body = {**OK, "clientOrderId": f"same-{len(answers)}"}
        first = await backend.http.post("/v1/orders", content=json.dumps(body), headers=headers)
        retry = await backend.http.post("/v1/orders", content=json.dumps(body), headers=headers)
        refused = await backend.http.post(
            "/v1/orders", content=json.dumps({**body, "postOnly": "yes"}), headers=headers
        )
        assert (first.status_code, retry.status_code, refused.status_code) == (201, 200, 422)
        assert retry.json() == first.json() and first.headers["content-type"] == "application/json"
        order = first.json()
        answers[content_type] = (
            sorted(order), {k: order[k] for k in ("symbol", "side", "type", "amount", "price", "status")},
            refused.json(),
        )
    assert answers["application/json"] == answers["application/json; charset=utf-8"]
