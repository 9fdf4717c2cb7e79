"""OrderDesk across instances: two desks (two Cloud Run instances) on one store never make two orders for
one clientOrderId — the broker's atomic claim of the key decides, and the loser replays the winner's."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.paper import PaperBroker
from backend_stub.errors import ApiError
from backend_stub.orders import OrderDesk
from backend_stub.store.base import ORDERS
from backend_stub.store.sqlite import SqliteStore
from tests.backend.listfeed import ListFeed

REQUEST = OrderRequest(
    symbol="BTC/USDT", side="buy", type="market", amount=Decimal("0.1"), client_order_id="k"
)


async def test_two_desks_racing_on_one_key_make_one_order(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0})
    async with SqliteStore(tmp_path / "state.db") as store, PaperBroker(store=store, feed=feed) as broker:
        desks = [OrderDesk(broker=broker, store=store) for _ in range(8)]
        results = await asyncio.gather(*(desk.place("alice", REQUEST) for desk in desks))
        assert sum(created for _, created in results) == 1
        assert len({order["id"] for order, _ in results}) == 1
        assert len(await store.list("alice", ORDERS)) == 1
        balance = await broker.fetch_balance("alice")
        assert balance["total"]["BTC"] == 0.1


async def test_a_different_order_under_a_used_key_is_refused(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0})
    async with SqliteStore(tmp_path / "state.db") as store, PaperBroker(store=store, feed=feed) as broker:
        desk = OrderDesk(broker=broker, store=store)
        await desk.place("alice", REQUEST)
        other = OrderRequest(
            symbol="BTC/USDT", side="sell", type="market", amount=Decimal("0.1"), client_order_id="k"
        )
        with pytest.raises(ApiError) as refused:
            await desk.place("alice", other)
        assert refused.value.status == 409
        assert desk._locks == {}  # idle keys are forgotten


def test_fingerprint_normalises_numbers() -> None:
    a = OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=Decimal("1.0"),
        price=Decimal("100"),
        client_order_id="x",
    )
    b = OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=Decimal("1"),
        price=Decimal("1E2"),
        client_order_id="x",
    )
    assert a.fingerprint() == b.fingerprint()
    c = OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=Decimal("1"),
        price=Decimal("101"),
        client_order_id="x",
    )
    assert a.fingerprint() != c.fingerprint()
