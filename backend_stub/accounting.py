"""Paper-account bookkeeping: positions at average cost, balances, reservations. Pure Decimal functions.

Fees are charged in the quote currency. A buy adds its cost and fee to the position's cost basis; a sell
realises `proceeds - fee - cost basis of the amount sold`. Unrealised P&L is `amount × mark - cost basis`,
so the entry fees are in it and the exit fee is not (it is not paid yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from backend_stub.money import dec, num
from backend_stub.timefmt import iso

ZERO = Decimal(0)


def position_doc_id(symbol: str) -> str:
    """Document id of a symbol's position: Firestore ids cannot hold '/' ("BTC/USDT" → "BTC-USDT")."""
    return symbol.replace("/", "-")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order."""

    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    timestamp_ms: int

    @property
    def cost(self) -> Decimal:
        return self.amount * self.price


def apply_to_balances(totals: dict[str, Decimal], fill: Fill, *, base: str, quote: str) -> dict[str, Decimal]:
    """Balances after `fill` (fees in quote)."""
    out = dict(totals)
    if fill.side == "buy":
        out[quote] = out.get(quote, ZERO) - fill.cost - fill.fee
        out[base] = out.get(base, ZERO) + fill.amount
    else:
        out[quote] = out.get(quote, ZERO) + fill.cost - fill.fee
        out[base] = out.get(base, ZERO) - fill.amount
    return out


def apply_to_position(doc: dict[str, Any] | None, fill: Fill, *, symbol: str, quote: str) -> dict[str, Any]:
    """The position document after `fill`, average-cost method."""
    amount = dec(doc["amount"]) if doc else ZERO
    basis = dec(doc["costBasis"]) if doc else ZERO
    realised = dec(doc["realizedPnl"]) if doc else ZERO
    fees = dec(doc["fees"]["cost"]) if doc else ZERO
    if fill.side == "buy":
        basis += fill.cost + fill.fee
        amount += fill.amount
    else:
        sold_basis = basis * fill.amount / amount if amount > 0 else ZERO
        realised += fill.cost - fill.fee - sold_basis
        basis -= sold_basis
        amount -= fill.amount
        if amount == 0:
            basis = ZERO
    fees += fill.fee
    return position_doc(
        symbol=symbol,
        quote=quote,
        amount=amount,
        cost_basis=basis,
        realised=realised,
        fees=fees,
        mark=fill.price,
        timestamp_ms=fill.timestamp_ms,
    )


def position_doc(
    *,
    symbol: str,
    quote: str,
    amount: Decimal,
    cost_basis: Decimal,
    realised: Decimal,
    fees: Decimal,
    mark: Decimal | None,
    timestamp_ms: int,
) -> dict[str, Any]:
    """A ccxt-style position (spot: long or flat) with P&L marked at `mark`."""
    q8 = Decimal("0.00000001")
    entry = (cost_basis / amount).quantize(q8) if amount > 0 else None
    unrealised = (amount * mark - cost_basis).quantize(q8) if mark is not None and amount > 0 else ZERO
    return {
        "id": position_doc_id(symbol),
        "symbol": symbol,
        "side": "long" if amount > 0 else None,
        "amount": num(amount),
        "contracts": num(amount),
        "entryPrice": num(entry),
        "markPrice": num(mark),
        "notional": num(amount * mark) if mark is not None else None,
        "costBasis": num(cost_basis.quantize(q8)),
        "realizedPnl": num(realised.quantize(q8)),
        "unrealizedPnl": num(unrealised),
        "fees": {"cost": num(fees), "currency": quote},
        "timestamp": timestamp_ms,
        "datetime": iso(timestamp_ms),
    }


def remark(doc: dict[str, Any], mark: Decimal, timestamp_ms: int) -> dict[str, Any]:
    """The stored position re-marked at the current price (for GET /v1/positions)."""
    return position_doc(
        symbol=doc["symbol"],
        quote=doc["fees"]["currency"],
        amount=dec(doc["amount"]),
        cost_basis=dec(doc["costBasis"]),
        realised=dec(doc["realizedPnl"]),
        fees=dec(doc["fees"]["cost"]),
        mark=mark,
        timestamp_ms=timestamp_ms,
    )
