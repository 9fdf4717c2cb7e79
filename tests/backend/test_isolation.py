"""A user sees and touches only their own orders, positions, balance and stream."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from tests.backend.conftest import Running, auth, token


async def _alice_trades(backend: Running) -> tuple[dict, dict]:
    filled = (await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1")).json()
    resting = (
        await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="40000")
    ).json()
    return filled, resting


async def test_bob_cannot_read_or_cancel_alices_orders(backend: Running) -> None:
    filled, resting = await _alice_trades(backend)
    assert (await backend.get("bob", "/v1/orders")).json() == []
    assert (await backend.get("bob", "/v1/orders", params={"status": "open"})).json() == []
    for order in (filled, resting):
        r = await backend.get("bob", f"/v1/orders/{order['id']}")
        missing = await backend.get("bob", "/v1/orders/does-not-exist")
        assert r.status_code == missing.status_code == 404
        # Same answer as for an order that does not exist: existence is not revealed.
        assert r.json()["error"] == f"Order {order['id']} not found"
        r = await backend.http.delete(f"/v1/orders/{order['id']}", headers=auth("bob"))
        assert r.status_code == 404
    assert (await backend.get("alice", f"/v1/orders/{resting['id']}")).json()["status"] == "open"


async def test_positions_and_balances_are_per_user(backend: Running) -> None:
    await _alice_trades(backend)
    assert (await backend.get("bob", "/v1/positions")).json() == []
    bob = (await backend.get("bob", "/v1/balance")).json()
    assert bob["total"] == {"USDT": 100_000}
    alice = (await backend.get("alice", "/v1/balance")).json()
    assert alice["total"]["BTC"] == 0.1


async def test_idempotency_keys_do_not_leak_between_users(backend: Running) -> None:
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.1", "clientOrderId": "same"}
    a = await backend.http.post("/v1/orders", json=body, headers=auth("alice"))
    b = await backend.http.post("/v1/orders", json={**body, "amount": "0.2"}, headers=auth("bob"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.json()["amount"] == 0.2


async def test_each_stream_carries_only_its_users_changes(backend: Running) -> None:
    async with (
        connect(backend.ws_url, additional_headers=auth("alice")) as alice_ws,
        connect(f"{backend.ws_url}?token={token('bob')}") as bob_ws,
    ):
        for ws in (alice_ws, bob_ws):
            assert json.loads(await ws.recv()) == {"type": "synced", "version": 0}
        await _alice_trades(backend)
        await backend.order("bob", symbol="ETH/USDT", side="buy", type="market", amount="1")
        alice_seen = [json.loads(await alice_ws.recv()) for _ in range(3)]
        bob_seen = [json.loads(await bob_ws.recv()) for _ in range(2)]
        assert {m["doc"]["symbol"] for m in alice_seen} == {"BTC/USDT"}
        assert {m["doc"]["symbol"] for m in bob_seen} == {"ETH/USDT"}
        # nothing else is queued for bob
        try:
            extra = await asyncio.wait_for(bob_ws.recv(), 0.3)
        except TimeoutError:
            extra = None
        assert extra is None
    # a fresh snapshot for bob holds only bob's docs
    async with connect(backend.ws_url, additional_headers=auth("bob")) as ws:
        messages = []
        while (m := json.loads(await ws.recv()))["type"] != "synced":
            messages.append(m)
        assert {(m["collection"], m["doc"]["symbol"]) for m in messages} == {
            ("orders", "ETH/USDT"),
            ("positions", "ETH/USDT"),
        }
