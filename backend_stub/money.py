"""Decimal helpers for money and market steps: exact in, exact out, floats only at the JSON edge."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from services.ledger import FEE_QUANTUM, dec, fee_of, opt_dec  # the one dec(): finite Decimal or NotANumber

__all__ = ["FEE_QUANTUM", "ceil_to", "dec", "fee_of", "floor_to", "is_multiple", "num", "opt_dec", "text"]


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether `value` lies on the grid of `step` (exactly)."""
    if step <= 0:
        return True
    try:
        return value % step == 0
    except InvalidOperation:  # the quotient has more digits than the context: far off any grid
        return False


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of `step` not above `value`."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of `step` not below `value`."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_CEILING) * step


def num(value: Decimal | None) -> float | int | None:
    """A JSON number for a Decimal (ccxt structures carry numbers, not strings)."""
    if value is None:
        return None
    if value == value.to_integral_value():  # 2, 2.00, 2E+3 → int (no normalize: the same answer)
        return int(value)
    return float(value)


def text(value: Decimal) -> str:
    """Plain text for messages: 0.0001, 100000, never 1E-4."""
    s = format(value.normalize(), "f")
    return s
