"""The order-event bus: the API publishes what it wrote, workers consume it (`base.py` is the protocol;
`memory.py` the in-process default, `pubsub.py` Google Cloud Pub/Sub)."""

from backend_stub.bus.base import Bus, Delivery, OrderEvent, open_bus

__all__ = ["Bus", "Delivery", "OrderEvent", "open_bus"]
