"""`Bus`: order events from the API to the workers, published after the store has committed them.

An event only says "look at this document now": the store is the truth, so a lost or repeated event costs
latency, never correctness (a worker that takes a symbol over rebuilds from the store, and reconciles with
it periodically). Each named subscription gets every event published after it was opened (fan-out per
name; consumers sharing a name share its events). A delivery is redelivered until it is acked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

EventKind = Literal["order", "alert", "strategy"]
EVENT_KINDS: tuple[EventKind, ...] = ("order", "alert", "strategy")


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A document a worker may have to act on: an order placed or canceled, an alert made or removed, a
    strategy saved or deleted (`doc_id` its id)."""

    kind: EventKind
    uid: str
    doc_id: str
    symbol: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> OrderEvent:
        raw = json.loads(data)
        if raw.get("kind") not in EVENT_KINDS:
            raise ValueError(f"not an order event: {raw.get('kind')!r}")
        return cls(kind=raw["kind"], uid=str(raw["uid"]), doc_id=str(raw["doc_id"]), symbol=str(raw["symbol"]))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as received; `ack()` once it is handled (otherwise it comes again)."""

    event: OrderEvent
    ack: Callable[[], Awaitable[None]]


class Bus(Protocol):
    """Publish order events; subscribe to them with acks. An async context manager (`aclose`)."""

    mode: str

    async def publish(self, event: OrderEvent) -> None:
        """Send `event` to every subscription; returns once the bus holds it."""
        ...

    async def subscribe(self, name: str, *, temporary: bool = False) -> AsyncIterator[Delivery]:
        """Every event published from now on (and any not acked on this subscription), until closed.
        The subscription exists once this returns, so nothing published after the call is missed.
        `temporary`: the subscription is one consumer's own (a worker's), removed at a clean close."""
        ...

    async def aclose(self) -> None: ...


def open_bus(mode: str, *, project: str | None = None, topic: str = "skeet-orders") -> AbstractAsyncContextManager[Bus]:
    """`memory` (in-process) or `pubsub` (Google Cloud Pub/Sub; `PUBSUB_EMULATOR_HOST` for the emulator)."""
    if mode == "pubsub":
        from backend_stub.bus.pubsub import PubSubBus

        return PubSubBus(project=project, topic=topic)
    from backend_stub.bus.memory import MemoryBus

    return MemoryBus()
