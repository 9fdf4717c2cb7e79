"""`Broker`: where a validated order goes — `PaperBroker` (simulated fills against the market feed) or
`CcxtBroker` (a real exchange with the user's keys). Brokers are the only code that places orders.

The API validates an order against the market's rules (`backend_stub.validation`) before it reaches a
broker, and keeps idempotency: a broker persists every order with its idempotency key in ONE store
transaction (`idempotency_create`), so a retried or racing request can never make a second order.

Orders, positions and balances are ccxt unified structures (dicts of JSON values); money inside a broker
is `Decimal`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from backend_stub.store.base import IDEMPOTENCY, Create, Page, PageKey

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop_market", "stop_limit", "trailing_stop", "oco"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
StatusFilter = Literal["open", "closed", "all"]

ORDER_TYPES: tuple[str, ...] = ("market", "limit", "stop_market", "stop_limit", "trailing_stop", "oco")
LIMIT_TYPES: frozenset[str] = frozenset({"limit", "stop_limit", "oco"})  # types that need `price`
STOP_TYPES: frozenset[str] = frozenset({"stop_market", "stop_limit", "oco"})  # types that need `stopPrice`


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A trader's order as the API accepted it (already shape-checked; market rules not yet)."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    client_order_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_percent: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None

    @property
    def has_bracket(self) -> bool:
        return self.take_profit_price is not None or self.stop_loss_price is not None

    def fingerprint(self) -> str:
        """Canonical text of what the order asks for: equal for retries of the same order.

        Numbers are normalised, so `1`, `1.0` and `1.00` are the same amount.
        """

        def num(value: Decimal | None) -> str | None:
            return None if value is None else format(value.normalize(), "f")

        fields: list[object] = [
            self.symbol, self.side, self.type, num(self.amount), num(self.price), num(self.stop_price)
        ]
        extra = [
            num(self.trailing_percent),
            self.time_in_force,
            self.post_only,
            num(self.take_profit_price),
            num(self.stop_loss_price),
        ]
        if extra != [None, "GTC", False, None, None]:  # keys claimed before these fields keep matching
            fields.extend(extra)
        return json.dumps(fields, separators=(",", ":"))


def idempotency_create(request: OrderRequest, order_id: str) -> Create:
    """The write that claims `request.client_order_id`: commit it with the order's first write.

    The transaction then fails with `store.AlreadyExists` when another request already claimed the key.
    """
    return Create(
        IDEMPOTENCY,
        request.client_order_id,
        {"orderId": order_id, "fingerprint": request.fingerprint()},
    )


class BrokerError(Exception):
    """Base of broker errors; the message is shown to the trader as is."""

    status_code = 400


class InvalidOrder(BrokerError):
    """The order breaks a market rule or makes no sense now (e.g. a stop already crossed)."""


class OrderWouldTrade(InvalidOrder):
    """A post-only order that would trade at once (the trader asked it never to)."""

    status_code = 422


class InsufficientFunds(BrokerError):
    """The account cannot pay for the order."""


class TooManyOpenOrders(BrokerError):
    """The trader already has the most open orders one account may hold."""

    status_code = 409


class OrderNotFound(BrokerError):
    """No such order for this user (also when it belongs to someone else)."""

    status_code = 404


class OrderNotCancelable(BrokerError):
    """The order is already closed, canceled or rejected."""

    status_code = 409


class BrokerUnavailable(BrokerError):
    """The exchange or the market feed cannot be reached right now."""

    status_code = 503


@runtime_checkable
class Broker(Protocol):
    """Places, cancels and reports one user's orders. An async context manager; `aclose` stops its
    background tasks and releases its connections."""

    @property
    def mode(self) -> str:
        """Label for the mode badge, e.g. "Paper" or "Live · binance"."""
        ...

    @property
    def claims_with_placement(self) -> bool:
        """True when `create_order` claims the key in the one transaction that writes everything the
        order does, so a call that fails has claimed nothing (paper); False when the key is claimed before
        the order goes on (a live exchange: the outcome, a rejection too, is then recorded under it).
        The order desk reads the claim before placing only when False."""
        ...

    async def start(self) -> None:
        """Start background work (the paper broker's matching loop). Idempotent."""
        ...

    async def markets(self) -> dict[str, dict[str, Any]]:
        """Tradable symbols → ccxt market structure (precision, limits)."""
        ...

    async def create_order(self, uid: str, request: OrderRequest) -> dict[str, Any]:
        """Place the order; returns the ccxt order as first persisted.

        Persists the order together with `idempotency_create(request, order_id)` in one transaction,
        letting `store.AlreadyExists` propagate when the key was claimed meanwhile. Raises
        `InvalidOrder`, `InsufficientFunds` or `BrokerUnavailable`.
        """
        ...

    async def cancel_order(self, uid: str, order_id: str) -> dict[str, Any]:
        """Cancel an open order; returns it canceled. `OrderNotFound`, `OrderNotCancelable`."""
        ...

    async def fetch_order(self, uid: str, order_id: str) -> dict[str, Any]:
        """One of the user's orders; `OrderNotFound` otherwise."""
        ...

    async def fetch_orders(self, uid: str, status: StatusFilter = "all") -> list[dict[str, Any]]:
        """The user's orders, newest first; "closed" means every order no longer open."""
        ...

    async def fetch_order_page(
        self, uid: str, status: StatusFilter = "all", *, limit: int, after: PageKey | None = None
    ) -> Page:
        """One page of `fetch_orders` (newest first by timestamp, then id), read from the store's index;
        `Page.next` continues it (`backend_stub.listing`)."""
        ...

    async def fetch_positions(self, uid: str) -> list[dict[str, Any]]:
        """Open positions with entry price, mark price, realised and unrealised P&L (fees included)."""
        ...

    async def fetch_balance(self, uid: str) -> dict[str, Any]:
        """ccxt balance structure: {"free": {...}, "used": {...}, "total": {...}, CUR: {...}}."""
        ...

    async def aclose(self) -> None: ...
