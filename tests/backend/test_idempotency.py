"""clientOrderId makes order placement idempotent: a retry returns the first order, a different order
under the same key is refused, and racing retries over real HTTP still make exactly one order."""

from __future__ import annotations

import asyncio

import httpx

from tests.backend.conftest import Running, auth

BODY = {
    "symbol": "BTC/USDT",
    "side": "buy",
    "type": "limit",
    "amount": "0.1",
    "price": "45000",
    "clientOrderId": "ticket-1",
}


async def test_retry_returns_the_first_order_with_200(backend: Running) -> None:
    first = await backend.http.post("/v1/orders", json=BODY, headers=auth("alice"))
    retry = await backend.http.post("/v1/orders", json=BODY, headers=auth("alice"))
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json() == first.json()
    assert len((await backend.get("alice", "/v1/orders")).json()) == 1


async def test_same_numbers_written_differently_are_the_same_order(backend: Running) -> None:
    await backend.http.post("/v1/orders", json=BODY, headers=auth("alice"))
    same = {**BODY, "amount": 0.10, "price": 45000.0}
    r = await backend.http.post("/v1/orders", json=same, headers=auth("alice"))
    assert r.status_code == 200


async def test_same_key_with_a_different_order_is_409(backend: Running) -> None:
    await backend.http.post("/v1/orders", json=BODY, headers=auth("alice"))
    for change in (
        {"amount": "0.2"},
        {"side": "sell"},
        {"price": "45001"},
        {"type": "market", "price": None},
    ):
        r = await backend.http.post("/v1/orders", json={**BODY, **change}, headers=auth("alice"))
        assert r.status_code == 409, change
        assert "ticket-1" in r.json()["error"]
    assert len((await backend.get("alice", "/v1/orders")).json()) == 1


async def test_keys_are_per_user(backend: Running) -> None:
    a = await backend.http.post("/v1/orders", json=BODY, headers=auth("alice"))
    b = await backend.http.post("/v1/orders", json=BODY, headers=auth("bob"))
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_racing_retries_make_one_order(backend: Running) -> None:
    # Separate connections, so the requests really are in flight together.
    async def attempt() -> httpx.Response:
        async with httpx.AsyncClient(base_url=backend.base_url, timeout=10) as client:
            return await client.post(
                "/v1/orders", json={**BODY, "type": "market", "price": None}, headers=auth("alice")
            )

    responses = await asyncio.gather(*(attempt() for _ in range(16)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 15 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    orders = (await backend.get("alice", "/v1/orders")).json()
    assert len(orders) == 1
    balance = (await backend.get("alice", "/v1/balance")).json()
    assert balance["total"]["BTC"] == 0.1  # filled once


async def test_racing_different_keys_each_make_an_order(backend: Running) -> None:
    responses = await asyncio.gather(
        *(
            backend.http.post("/v1/orders", json={**BODY, "clientOrderId": f"k{i}"}, headers=auth("alice"))
            for i in range(10)
        )
    )
    assert all(r.status_code == 201 for r in responses)
    assert len((await backend.get("alice", "/v1/orders")).json()) == 10
