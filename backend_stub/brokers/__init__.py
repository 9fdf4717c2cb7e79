"""Brokers: `Broker` protocol, `PaperBroker` (simulated) and `CcxtBroker` (a real exchange)."""

from backend_stub.brokers.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRequest,
    idempotency_create,
)

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "InsufficientFunds",
    "InvalidOrder",
    "OrderNotCancelable",
    "OrderNotFound",
    "OrderRequest",
    "idempotency_create",
]
