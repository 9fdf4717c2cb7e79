"""Pydantic models at the API edge: what a request body may hold. Market rules live in `validation`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend_stub.brokers.base import OrderRequest

_LARGEST = Decimal("1e15")
_FINEST_EXPONENT = -18


def _sane(value: Decimal) -> Decimal:
    # Finite but absurd numbers ("1e400") would overflow Decimal arithmetic later: refuse them here.
    if abs(value) >= _LARGEST or (value != 0 and value.as_tuple().exponent < _FINEST_EXPONENT):  # type: ignore[operator]
        raise ValueError("is out of range")
    return value


# JSON numbers or numeric strings; NaN and ±Infinity are refused here (before any arithmetic).
Number = Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_sane)]


class OrderIn(BaseModel):
    """Body of `POST /v1/orders` (ccxt's createOrder arguments)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=64, description='ccxt symbol, e.g. "BTC/USDT"')
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop_market", "stop_limit"]
    amount: Number = Field(description="base-currency amount, on the market's step")
    price: Number | None = Field(default=None, description="limit price (limit and stop_limit)")
    stopPrice: Number | None = Field(default=None, description="trigger price (stop_market, stop_limit)")
    clientOrderId: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="idempotency key: retries with the same key never make a second order",
    )

    def to_request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            price=self.price,
            stop_price=self.stopPrice,
            client_order_id=self.clientOrderId,
        )


class AlertIn(BaseModel):
    """Body of `POST /v1/alerts`: tell me when `symbol` trades at `price`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=64, description='ccxt symbol, e.g. "BTC/USDT"')
    price: Number = Field(description="the level; above the last price it fires on a rise, below it on a fall")
    note: str = Field(default="", max_length=140, description="the trader's own words, shown when it fires")
    clientAlertId: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="idempotency key and the alert's id: retries with the same key never make a second alert",
    )


class ErrorOut(BaseModel):
    """Every error response: one readable sentence."""

    error: str
