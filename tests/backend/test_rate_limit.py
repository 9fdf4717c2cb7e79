"""Order writes are rate limited per user (token bucket) with 429 and Retry-After."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backend_stub.ratelimit import RateLimiter
from tests.backend.conftest import auth, make_settings, serve
from tests.backend.listfeed import ListFeed


async def test_burst_then_429_with_retry_after(tmp_path: Path) -> None:
    settings = replace(make_settings(tmp_path), rate_per_s=0.5, rate_burst=3)
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:
        codes = []
        for i in range(4):
            r = await backend.order(
                "alice",
                symbol="BTC/USDT",
                side="buy",
                type="limit",
                amount="0.01",
                price="40000",
                clientOrderId=f"r{i}",
            )
            codes.append(r.status_code)
        assert codes == [201, 201, 201, 429]
        assert r.headers["Retry-After"] == "2"
        assert "Too many order requests" in r.json()["error"]
        # cancels spend the same bucket; reads are not limited; other users have their own bucket
        assert (await backend.http.delete("/v1/orders/x", headers=auth("alice"))).status_code == 429
        assert (await backend.get("alice", "/v1/orders")).status_code == 200
        r = await backend.order(
            "bob", symbol="BTC/USDT", side="buy", type="limit", amount="0.01", price="40000"
        )
        assert r.status_code == 201


def test_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=20, burst=40, clock=lambda: now[0])
    assert all(limiter.take("u") == 0 for _ in range(40))
    assert limiter.take("u") > 0
    now[0] += 0.5  # 10 tokens
    assert sum(limiter.take("u") == 0 for _ in range(20)) == 10
