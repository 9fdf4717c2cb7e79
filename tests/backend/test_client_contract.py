"""The app's own clients against the real server: `SkeetApi` (orders with idempotent retries) and
`StreamLive` (the /v1/stream listener), so the two sides of the contract cannot drift apart."""

from __future__ import annotations

import asyncio

from services.api.client import OrderRejected, SkeetApi
from services.live.stream import StreamLive
from tests.backend.conftest import Running, token


async def test_skeet_api_and_stream_live_against_the_backend(backend: Running) -> None:
    async def alice_token() -> str:
        return token("alice")

    async with (
        SkeetApi(base_url=backend.base_url, token=alice_token) as api,
        StreamLive(base_url=backend.base_url, token=alice_token) as live,
    ):
        changes = live.changes()
        order = await api.place_order(
            symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="45000", client_order_id="app-1"
        )
        again = await api.place_order(
            symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="45000", client_order_id="app-1"
        )
        assert again["id"] == order["id"]
        first = await asyncio.wait_for(anext(changes), 5)
        assert (first.collection, first.doc_id, first.kind) == ("orders", order["id"], "added")
        canceled = await api.cancel_order(order["id"])
        assert canceled["status"] == "canceled"
        second = await asyncio.wait_for(anext(changes), 5)
        assert (second.kind, second.doc["status"], second.version) == ("modified", "canceled", 2)
        assert live.status == "connected" and live.version == 2
        try:
            await api.place_order(
                symbol="BTC/USDT", side="buy", type="limit", amount="0.00001", price="45000"
            )
        except OrderRejected as exc:
            assert "step 0.0001 BTC" in str(exc) and exc.status == 400
        else:
            raise AssertionError("an off-step amount must be rejected")
        assert [o["id"] for o in await api.orders("closed")] == [order["id"]]
        assert (await api.balance())["total"]["USDT"] == 100_000
