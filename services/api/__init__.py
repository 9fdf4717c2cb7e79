"""The backend client: orders, price alerts, markets, positions and insights over HTTP (httpx)."""

from services.api.client import (
    ApiError,
    BackendUnreachable,
    OrderRejected,
    SkeetApi,
    Unauthorized,
    new_client_alert_id,
    new_client_order_id,
)

__all__ = [
    "ApiError",
    "BackendUnreachable",
    "OrderRejected",
    "SkeetApi",
    "Unauthorized",
    "new_client_alert_id",
    "new_client_order_id",
]
