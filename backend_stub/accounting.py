"""Paper-account positions as stored documents (ccxt-style), booked by the one ledger (`services.ledger`).

The bookkeeping rules (average cost, fees in quote, realised/unrealised P&L) are `services.ledger`'s; this
module only reads a stored position document into a `Position`, applies a fill and writes the document back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backend_stub.money import num
from backend_stub.timefmt import iso
from services.ledger import ZERO, Fill, Position, apply_to_balances, dec

__all__ = ["ZERO", "Fill", "apply_to_balances", "apply_to_position", "position_doc", "position_doc_id", "remark"]


def position_doc_id(symbol: str) -> str:
    """Document id of a symbol's position: Firestore ids cannot hold '/' ("BTC/USDT" → "BTC-USDT")."""
    return symbol.replace("/", "-")


def apply_to_position(doc: dict[str, Any] | None, fill: Fill, *, symbol: str, quote: str) -> dict[str, Any]:
    """The position document after `fill`, average-cost method (`services.ledger.Position`)."""
    position = Position()
    if doc:
        position = Position(amount=dec(doc["amount"]), basis=dec(doc["costBasis"]),
                            realised=dec(doc["realizedPnl"]), fees=dec(doc["fees"]["cost"]))
    position.apply(fill)
    return position_doc(
        symbol=symbol,
        quote=quote,
        amount=position.amount,
        cost_basis=position.basis,
        realised=position.realised,
        fees=position.fees,
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
