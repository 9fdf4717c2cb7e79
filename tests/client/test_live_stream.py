"""The app's API client and live listener against the real backend process on loopback."""

from __future__ import annotations

import asyncio

import pytest

from services.api import OrderRejected, SkeetApi, Unauthorized
from services.auth import devtoken
from services.auth.local import LocalIdentity
from services.live import Change
from services.live.stream import StreamLive
from tests.support import free_port, start_backend, stop

KEY = "live-stream-test-key-long-enough-for-hmac"


@pytest.fixture
def backend_env(tmp_path):  # type: ignore[no-untyped-def]
    return {"SKEET_DATA_DIR": str(tmp_path), "SKEET_DEV_KEY": KEY}


async def next_change(changes, timeout_s: float = 10.0) -> Change:  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(anext(changes), timeout_s)


async def test_orders_reach_listener_and_survive_backend_restart(backend_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_backend(backend_env, port, tmp_path / "backend.log")
    alice = LocalIdentity("alice", key=KEY.encode())
    api = SkeetApi(base_url=url, token=alice.token, retries=1)
    live = StreamLive(base_url=url, token=alice.token, backoff_initial_s=0.05, backoff_max_s=0.5)
    statuses: list[str] = []
    live.on_status(statuses.append)
    changes = live.changes()
    try:
        placed = await api.place_order(symbol="BTC/USDT", side="buy", type="market", amount="0.01",
                                       client_order_id="restart-1")
        seen = await next_change(changes)
        while seen.collection != "orders" or seen.doc_id != placed["id"]:
            seen = await next_change(changes)
        assert seen.doc and seen.doc["clientOrderId"] == "restart-1"

        # The backend dies hard; an order placed after its restart still reaches the listener, and
        # nothing delivered before is delivered again.
        stop(process, kill=True)
        process = start_backend(backend_env, port, tmp_path / "backend.log")
        second = await api.place_order(symbol="ETH/USDT", side="buy", type="market", amount="0.1",
                                       client_order_id="restart-2")
        after: list[Change] = []
        while not any(c.doc_id == second["id"] for c in after):
            after.append(await next_change(changes))
        assert all(c.version > seen.version for c in after)
        assert "reconnecting" in statuses and statuses[-1] == "connected"
    finally:
        await live.aclose()
        await api.aclose()
        stop(process)


async def test_retry_with_same_key_is_one_order_and_bad_input_is_readable(backend_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_backend(backend_env, port, tmp_path / "backend.log")
    bob = LocalIdentity("bob", key=KEY.encode())
    try:
        async with SkeetApi(base_url=url, token=bob.token, retries=0) as api:
            first = await api.place_order(symbol="BTC/USDT", side="buy", type="market", amount="0.01",
                                          client_order_id="same-key")
            again = await api.place_order(symbol="BTC/USDT", side="buy", type="market", amount="0.01",
                                          client_order_id="same-key")
            assert again["id"] == first["id"]
            assert len([o for o in await api.orders() if o["clientOrderId"] == "same-key"]) == 1
            with pytest.raises(OrderRejected) as rejected:
                await api.place_order(symbol="NOPE/USDT", side="buy", type="market", amount="1")
            assert "NOPE/USDT" in rejected.value.message
        async def expired() -> str:
            return devtoken.mint("bob", key=KEY.encode(), ttl_s=-10)
        async with SkeetApi(base_url=url, token=expired, retries=0) as api:
            with pytest.raises(Unauthorized):
                await api.orders()
    finally:
        stop(process)
