"""`MemoryBus`: the embedded default — order events between the API and the worker in one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from backend_stub.bus.base import Delivery, OrderEvent


class MemoryBus:
    """Fan-out per subscription name, in-process. An event not acked when its consumer moves on to the
    next one is put back at the end of the queue (redelivered, as Pub/Sub would)."""

    mode = "memory"

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[OrderEvent | None]] = {}
        self._closed = False

    async def __aenter__(self) -> MemoryBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def publish(self, event: OrderEvent) -> None:
        if self._closed:
            raise RuntimeError("the bus is closed")
        for queue in self._queues.values():
            queue.put_nowait(event)

    async def subscribe(self, name: str, *, temporary: bool = False) -> AsyncIterator[Delivery]:
        queue = self._queues.setdefault(name, asyncio.Queue())  # registered now, not at the first anext
        return self._deliveries(queue)

    async def _deliveries(self, queue: asyncio.Queue[OrderEvent | None]) -> AsyncIterator[Delivery]:
        while True:
            event = await queue.get()
            if event is None:
                return
            acked = False

            async def ack() -> None:
                nonlocal acked
                acked = True

            yield Delivery(event, ack)
            if not acked:
                queue.put_nowait(event)

    async def aclose(self) -> None:
        self._closed = True
        for queue in self._queues.values():
            queue.put_nowait(None)
