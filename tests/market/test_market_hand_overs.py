"""A paced feed hands over due trades on its own pace and at once when hurried (`services.market.pacing.
HandOvers`): a session about to repaint asks, and what it paints is what was due at that moment, while the
feed itself wakes the process seldom. Real time, the real synthetic feed and the real hub."""

from __future__ import annotations

import asyncio
import contextlib
import time

from client.hub import MarketHub
from services.market import PacedFeed, Tick
from services.market.pacing import HandOvers
from services.market.synthetic_feed import SyntheticFeed
from services.signals import SignalEngine
from tests.client.test_alerts import until
from tests.client.test_hub import Trader

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT", "AVAX/USDT"]


async def never(_seconds: float) -> None:
    """The feed's own pace here: it never wakes by itself, so whatever it hands over was hurried."""
    await asyncio.Event().wait()


async def test_a_hurried_feed_hands_over_every_trade_due_before_the_hurry_is_done() -> None:
    feed = SyntheticFeed(sleep=never)
    assert isinstance(feed, PacedFeed)
    got: list[Tick] = []

    async def consume() -> None:
        async with contextlib.aclosing(feed.ticks(SYMBOLS)) as ticks:
            async for tick in ticks:
                got.append(tick)

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.05)  # parked after its first hand-over (empty: it starts with what comes after it)
        since_ms = int(time.time() * 1000)
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:  # this market trades a few times a second
            await asyncio.sleep(0.15)
            at_ms = int(time.time() * 1000)
            waiting = feed.hurry()
            assert waiting is not None  # parked for longer than HURRY_LEAST_S: hurried
            await asyncio.wait_for(waiting, 1.0)
            due = [t for s in SYMBOLS for t in feed.trades_between(s, since_ms + 1, at_ms + 1)]
            # Everything due at the hurry has been through the consumer (nothing waits for the feed's own pace).
            assert sorted(due, key=lambda t: (t.timestamp_ms, t.symbol)) == sorted(
                [t for t in got if since_ms < t.timestamp_ms <= at_ms], key=lambda t: (t.timestamp_ms, t.symbol))
        assert len(got) >= 5
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_stream_that_just_handed_over_is_not_hurried_and_an_ended_one_holds_no_one_back() -> None:
    """Hand-overs stay at most one per `least_s` however many sessions ask; a hurry on its way is shared; a
    stream that ends while hurried releases whoever waits on it."""
    hand_overs = HandOvers(least_s=0.2)
    woke: list[float] = []

    async def stream() -> None:
        with hand_overs.stream() as pause:
            while True:
                woke.append(time.monotonic())
                await pause(30.0)

    assert hand_overs.hurry() is None  # no stream
    task = asyncio.create_task(stream())
    await until(lambda: len(woke) == 1)
    assert hand_overs.hurry() is None  # it handed over just now
    await asyncio.sleep(0.25)
    first = hand_overs.hurry()
    assert first is not None and hand_overs.hurry() is first  # a second session waits on the same hand-over
    await asyncio.wait_for(first, 1.0)
    assert len(woke) == 2
    await asyncio.sleep(0.25)
    waiting = hand_overs.hurry()
    assert waiting is not None
    task.cancel()  # the stream ends before it hands over
    await asyncio.wait_for(waiting, 1.0)  # no one is left waiting for it
    assert hand_overs.hurry() is None


async def test_a_session_catching_up_gets_the_due_trades_of_the_shared_market_first() -> None:
    """Through the hub: the subscription's `catch_up` (what a session's repaint calls) has the trades due
    now delivered to that session before it is done."""

    def open_feed(_source: str) -> tuple[SyntheticFeed, str]:
        feed = SyntheticFeed(sleep=never)
        return feed, feed.mode

    async with MarketHub(open_feed, engine=SignalEngine) as hub:
        trader = Trader()
        sub = await hub.join("synthetic", trader)
        await sub.watch(SYMBOLS)
        feed = sub.feed
        assert isinstance(feed, SyntheticFeed)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            at_ms = int(time.time() * 1000)
            waiting = sub.catch_up()
            if waiting is None:  # the stream not started yet, or it handed over in the last few ms by itself
                continue
            await asyncio.wait_for(waiting, 1.0)
            newest = max((t for s in SYMBOLS for t in feed.trades_between(s, at_ms - 200, at_ms + 1)),
                         key=lambda t: t.timestamp_ms, default=None)
            if newest is not None:
                assert newest in trader.ticks
                break
        else:
            raise AssertionError("no trade in 20 s")
        await sub.aclose()
        assert sub.catch_up() is None  # a session that left waits for nothing
