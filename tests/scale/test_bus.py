"""The order-event bus: in-process and on the official Pub/Sub emulator, behind one protocol. What a
worker relies on: every subscription sees every event published after it opened, in the order a single
publisher sent them (in-process) or at least once (Pub/Sub), and an event not acked comes again."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from backend_stub.bus import Delivery, OrderEvent, open_bus
from backend_stub.bus.memory import MemoryBus

DEADLINE_S = 30.0


def event(n: int) -> OrderEvent:
    return OrderEvent(kind="order", uid=f"user{n % 3}", doc_id=f"order{n}", symbol="BTC/USDT")


async def take(
    deliveries: AsyncIterator[Delivery], count: int, *, ack: bool = True, deadline_s: float = DEADLINE_S
) -> list[OrderEvent]:
    got: list[OrderEvent] = []

    async def run() -> None:
        async for delivery in deliveries:
            got.append(delivery.event)
            if ack:
                await delivery.ack()
            if len(got) == count:
                return

    await asyncio.wait_for(run(), deadline_s)
    return got


def test_an_event_round_trips_through_its_encoding() -> None:
    assert OrderEvent.decode(event(7).encode()) == event(7)
    with pytest.raises(ValueError):
        OrderEvent.decode(b'{"kind": "shutdown", "uid": "a", "doc_id": "b", "symbol": "c"}')


async def test_memory_bus_fans_out_to_every_subscription_in_order() -> None:
    async with MemoryBus() as bus:
        a = await bus.subscribe("worker-a")
        b = await bus.subscribe("worker-b")
        for n in range(20):
            await bus.publish(event(n))
        assert await take(a, 20) == [event(n) for n in range(20)]
        assert await take(b, 20) == [event(n) for n in range(20)]


async def test_memory_bus_redelivers_what_was_not_acked() -> None:
    async with MemoryBus() as bus:
        deliveries = await bus.subscribe("worker")
        await bus.publish(event(1))
        await bus.publish(event(2))
        first = await deliveries.__anext__()  # not acked
        assert first.event == event(1)
        assert await take(deliveries, 2) == [event(2), event(1)]


@pytest.mark.emulator
async def test_pubsub_fans_out_to_each_worker_subscription(pubsub: str) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    async with open_bus("pubsub", topic=topic) as bus:
        assert bus.mode == "pubsub"
        a = await bus.subscribe("worker-a", temporary=True)
        b = await bus.subscribe("worker-b", temporary=True)
        sent = [event(n) for n in range(30)]
        await asyncio.gather(*(bus.publish(e) for e in sent))
        # At least once: a duplicate is possible, a loss is not.
        assert set(await take_distinct(a, 30)) == set(sent)
        assert set(await take_distinct(b, 30)) == set(sent)


@pytest.mark.emulator
async def test_pubsub_gives_back_an_event_whose_consumer_closed_before_acking(pubsub: str) -> None:
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    topic = f"orders-{uuid.uuid4().hex[:8]}"
    async with open_bus("pubsub", topic=topic) as first:
        deliveries = await first.subscribe("shared")
        await first.publish(event(1))
        assert await take(deliveries, 1, ack=False) == [event(1)]
    # The consumer went away without an ack (a clean close nacks what it held): the event is back in the
    # subscription for the next consumer. Read with a plain pull: the emulator's streaming pull is slow to
    # hand out redelivered messages (10-90 s seen), which real Pub/Sub is not.
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(os.environ["GOOGLE_CLOUD_PROJECT"], f"{topic}-shared")
    loop = asyncio.get_running_loop()
    # The nack is sent by the client's own thread; on a loaded machine it can be lost with the closing client,
    # and then the event comes back when its lease runs out (the stream's 60 s at most): wait for that too.
    # A pull that finds nothing before its timeout raises DeadlineExceeded on the emulator: that is "not yet".
    deadline = loop.time() + 150
    received: list[OrderEvent] = []
    while not received:
        assert loop.time() < deadline, "the unacked event never came back to the subscription"
        try:
            answer = await asyncio.to_thread(
                subscriber.pull, request={"subscription": path, "max_messages": 10}, timeout=10
            )
        except DeadlineExceeded:
            continue
        received = [OrderEvent.decode(m.message.data) for m in answer.received_messages]
    # At-least-once: the nack and the lease's end may each give it back, so it may come more than once.
    assert set(received) == {event(1)}
    subscriber.close()


async def take_distinct(deliveries: AsyncIterator[Delivery], count: int) -> list[OrderEvent]:
    seen: list[OrderEvent] = []

    async def run() -> None:
        async for delivery in deliveries:
            await delivery.ack()
            if delivery.event not in seen:
                seen.append(delivery.event)
            if len(seen) == count:
                return

    await asyncio.wait_for(run(), DEADLINE_S)
    return seen
