"""Numbers for money: one `dec()` for every part (paper broker, backtester, analytics), exact through `str`.

Bad input has one behaviour everywhere: `dec` raises `NotANumber` (a `ValueError` and a decimal
`InvalidOperation`, so callers written against either keep catching it) for None, text that is not a number,
and NaN or infinity. A caller that wants "missing means nothing" says so with `opt_dec` or `dec_or_zero`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
FEE_QUANTUM = Decimal("0.00000001")


class NotANumber(InvalidOperation, ValueError):
    """A value that should be a finite number is not one."""


def dec(value: Any) -> Decimal:
    """A finite Decimal from an int, float, str or Decimal, through `str` so 0.1 stays 0.1. O(1)."""
    kind = type(value)
    if kind is Decimal:  # the hot paths: already exact, or a float (a candle's price)
        if value.is_finite():
            return value
        raise NotANumber(f"{value} is not a finite number")
    if kind is float:
        out = Decimal(repr(value))
        if out.is_finite():
            return out
        raise NotANumber(f"{value!r} is not a finite number")
    if value is None or isinstance(value, bool):
        raise NotANumber(f"{value!r} is not a number")
    try:
        out = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise NotANumber(f"{value!r} is not a number") from None
    if not out.is_finite():
        raise NotANumber(f"{value!r} is not a finite number")
    return out


def opt_dec(value: Any) -> Decimal | None:
    """`dec(value)`, or None when the value is missing (None). Garbage still raises."""
    return None if value is None else dec(value)


def dec_or_zero(value: Any) -> Decimal:
    """`dec(value)`, or 0 for anything that is not a finite number: for reading third-party documents
    (exchange order histories) where one bad field must not hide the rest."""
    try:
        return dec(value)
    except NotANumber:
        return ZERO


def fee_of(cost: Decimal, rate: Decimal) -> Decimal:
    """Fee on `cost` at `rate`, to 1e-8 (banker's rounding): the paper broker's and the backtester's."""
    return (cost * rate).quantize(FEE_QUANTUM, ROUND_HALF_EVEN)
