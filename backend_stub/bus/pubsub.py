"""`PubSubBus`: order events through Google Cloud Pub/Sub (`SKEET_BUS=pubsub`), so API instances and
workers on different machines see each other's events. `PUBSUB_EMULATOR_HOST` points it at the emulator.

One topic (`SKEET_PUBSUB_TOPIC`, created when missing); each named subscription is a Pub/Sub subscription
`<topic>-<name>` on it (a worker uses its own id: every worker sees every event), created when missing and
expiring a day after its last use, so a killed worker's subscription goes away by itself. The client's
streaming pull calls back on its own threads; deliveries are handed to the event loop in order received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.protobuf import duration_pb2

from backend_stub.bus.base import Delivery, OrderEvent

log = logging.getLogger(__name__)

ACK_DEADLINE_S = 10  # unacked this long, Pub/Sub redelivers (the client extends it while a message is held)
EXPIRE_UNUSED_S = 24 * 3600  # Pub/Sub's minimum: a dead worker's subscription is dropped after a day


class PubSubBus:
    """`async with PubSubBus(project=..., topic=...) as bus:`."""

    mode = "pubsub"

    def __init__(self, *, project: str | None = None, topic: str = "skeet-orders") -> None:
        self._project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        if not self._project:
            raise ValueError("SKEET_BUS=pubsub needs a project id: set GOOGLE_CLOUD_PROJECT")
        self._publisher = pubsub_v1.PublisherClient()
        self._subscriber = pubsub_v1.SubscriberClient()
        self._topic = self._publisher.topic_path(self._project, topic)
        self._topic_id = topic
        self._pulls: list[Any] = []  # StreamingPullFutures
        self._temporary: list[str] = []  # subscriptions deleted at a clean close
        # Handed out and not acked yet: nacked at a clean close, so they go back to the subscription at once
        # rather than when their lease runs out (a SIGKILLed process leaves them to the ack deadline).
        self._held: dict[str, Any] = {}

    async def __aenter__(self) -> PubSubBus:
        await asyncio.to_thread(self._ensure_topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _ensure_topic(self) -> None:
        with contextlib.suppress(gexc.AlreadyExists):
            self._publisher.create_topic(name=self._topic)

    async def publish(self, event: OrderEvent) -> None:
        future = self._publisher.publish(self._topic, event.encode())
        await asyncio.wrap_future(future)  # the server has it (a message id) once this returns

    async def subscribe(self, name: str, *, temporary: bool = False) -> AsyncIterator[Delivery]:
        """With `temporary`, the subscription is deleted at a clean `aclose` (a worker's own)."""
        path = self._subscriber.subscription_path(self._project, f"{self._topic_id}-{name}")
        await asyncio.to_thread(self._ensure_subscription, path)
        if temporary:
            self._temporary.append(path)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def received(message: Any) -> None:  # on the client's threads
            with contextlib.suppress(RuntimeError):  # the loop closed
                loop.call_soon_threadsafe(queue.put_nowait, message)

        pull = self._subscriber.subscribe(
            path, callback=received, flow_control=pubsub_v1.types.FlowControl(max_messages=1000)
        )
        self._pulls.append(pull)
        pull.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, None))
        return self._deliveries(queue, self._held)

    def _ensure_subscription(self, path: str) -> None:
        with contextlib.suppress(gexc.AlreadyExists):
            self._subscriber.create_subscription(
                request={
                    "name": path,
                    "topic": self._topic,
                    "ack_deadline_seconds": ACK_DEADLINE_S,
                    "expiration_policy": {"ttl": duration_pb2.Duration(seconds=EXPIRE_UNUSED_S)},
                }
            )

    @staticmethod
    async def _deliveries(queue: asyncio.Queue[Any], held: dict[str, Any]) -> AsyncIterator[Delivery]:
        while True:
            message = await queue.get()
            if message is None:
                return
            try:
                event = OrderEvent.decode(message.data)
            except (ValueError, KeyError, TypeError):
                log.warning("bus: dropping a message that is not an order event")
                message.ack()
                continue
            held[message.ack_id] = message

            async def ack(message: Any = message) -> None:
                held.pop(message.ack_id, None)
                message.ack()

            yield Delivery(event, ack)

    async def aclose(self) -> None:
        for message in self._held.values():
            message.nack()
        self._held.clear()
        for pull in self._pulls:
            pull.cancel()
        for pull in self._pulls:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(pull.result, 10)
        self._pulls.clear()
        for path in self._temporary:
            with contextlib.suppress(gexc.GoogleAPICallError):
                await asyncio.to_thread(self._subscriber.delete_subscription, subscription=path)
        self._temporary.clear()
        await asyncio.to_thread(self._subscriber.close)
        await asyncio.to_thread(self._publisher.stop)
