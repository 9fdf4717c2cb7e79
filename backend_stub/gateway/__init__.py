"""The market gateway: live prices and candles for clients without an exchange library (see `hub.py`)."""

from backend_stub.gateway.hub import GatewayLimits, MarketGateway, TooManyStreams
from backend_stub.gateway.routes import build_router

__all__ = ["GatewayLimits", "MarketGateway", "TooManyStreams", "build_router"]
