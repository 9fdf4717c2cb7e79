"""FanOut: one upstream per key, every subscriber gets every item, upstreams end with their last subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from services.backoff import Backoff
from services.market.fanout import FanOut


async def test_one_upstream_per_key_and_every_item_to_every_subscriber():
    started: list[str] = []
    cancelled: list[str] = []

    async def source(key: str):
        started.append(key)
        try:
            for i in range(1_000_000):
                yield (key, i)
                await asyncio.sleep(0.001)
        finally:
            cancelled.append(key)

    async with FanOut(source) as hub:

        async def take(keys, n):
            out = []
            async with contextlib.aclosing(hub.subscribe(keys)) as stream:
                async for item in stream:
                    out.append(item)
                    if len(out) == n:
                        return out
            return out

        first = asyncio.create_task(take(["a"], 50))
        await asyncio.sleep(0.005)
        second, both = await asyncio.gather(take(["a"], 20), take(["a", "b"], 40))
        one = await first
        assert started == ["a", "b"]
        # Items a subscriber saw are consecutive: nothing skipped, nothing repeated.
        for seen in (one, second, [x for x in both if x[0] == "a"], [x for x in both if x[0] == "b"]):
            numbers = [i for _, i in seen]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        await asyncio.sleep(0.01)
        assert sorted(cancelled) == ["a", "b"] and hub.active_keys == set()


async def test_upstream_errors_reach_subscribers_and_close_ends_streams():
    async def failing(key: str):
        yield 1
        raise RuntimeError(f"{key} broke")

    async with FanOut(failing) as hub:
        with pytest.raises(RuntimeError, match="x broke"):
            async for _ in hub.subscribe(["x"]):
                pass

    async def forever(key: str):
        while True:
            await asyncio.sleep(0.01)
            yield key

    hub2: FanOut[str, str] = FanOut(forever)
    stream = hub2.subscribe(["k"])
    assert await anext(stream) == "k"
    await hub2.aclose()
    assert [x async for x in stream] == []


def test_backoff_grows_exponentially_with_bounded_jitter():
    backoff = Backoff(initial_s=0.5, factor=2.0, max_s=30.0, jitter=0.5, rng=random.Random(1))
    for attempt, base in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1
