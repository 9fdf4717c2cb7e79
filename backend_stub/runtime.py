"""`Backend`: the running service's parts, built by the app's lifespan, and the FastAPI dependencies
that hand them (and the caller's uid) to routes — including routers of other packages (insights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request, WebSocket

from backend_stub.alerts import AlertBook
from backend_stub.auth import AuthError
from backend_stub.brokers.base import Broker
from backend_stub.orders import OrderDesk
from backend_stub.ratelimit import RateLimiter
from backend_stub.settings import Settings
from backend_stub.store.base import StateStore
from services.market.types import MarketFeed

if TYPE_CHECKING:  # strategies.py imports this module's dependencies
    from backend_stub.strategies import StrategyBook


@dataclass(frozen=True, slots=True)
class Backend:
    """Everything a request may need; one per app, on `app.state.backend`."""

    settings: Settings
    store: StateStore
    feed: MarketFeed
    broker: Broker
    desk: OrderDesk
    limiter: RateLimiter
    alerts: AlertBook
    strategies: StrategyBook | None = None  # saved strategies (and the paper strategy runner behind them)


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency on a worker
# thread, which cost every request ~0.1-0.2 ms of server CPU (bench/backend.py) for two attribute reads.
async def current_backend(request: Request) -> Backend:
    return request.app.state.backend


def websocket_backend(websocket: WebSocket) -> Backend:
    return websocket.app.state.backend


async def current_uid(request: Request) -> str:
    """The verified caller (set by the `BearerAuth` middleware)."""
    uid = getattr(request.state, "uid", None)
    if not uid:
        raise AuthError("missing Authorization header (expected 'Bearer <token>')")
    return uid
