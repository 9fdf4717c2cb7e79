"""Rule conditions (`services/signals/rules.py`'s language) evaluated over whole columns at once.

`fires(cond, column)` gives, for every candle close, whether the condition's rising edge happens there:
exactly what `RuleRunner.evaluate` returns when fed the same values close by close (proved in
tests/backtest/test_conditions.py). O(n × size of the condition) numpy work, no Python loop per candle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from services.backtest.candles import FloatArray

BoolArray = npt.NDArray[np.bool_]
Column = Callable[[str], FloatArray]  # operand text -> values at each close


def holds(cond: Mapping[str, Any], column: Column, n: int) -> BoolArray:
    """Whether the condition holds at each close (the state RuleRunner keeps as 'previous truth')."""
    op = cond["op"]
    if op in ("all", "any"):
        parts = [holds(p, column, n) for p in cond["of"]]
        out = parts[0].copy()
        for part in parts[1:]:
            out = (out & part) if op == "all" else (out | part)
        return out
    left, right = _operand(cond["left"], column, n), _operand(cond["right"], column, n)
    if op in ("gt", "lt"):
        diff = left - right if op == "gt" else right - left
        h = float(cond.get("hysteresis", 0.0))
        if not h:
            return np.asarray(diff > 0.0)
        # A latch: on when diff > 0, off when diff <= -h or NaN, else as before (forward fill of events).
        on, off = diff > 0.0, ~(diff > -h)
        event = np.where(on | off, np.arange(n), -1)
        last = np.maximum.accumulate(event)
        return np.asarray(np.where(last >= 0, on[np.maximum(last, 0)], False))
    if op in ("cross_above", "cross_below"):
        diff = left - right if op == "cross_above" else right - left
        prev = np.concatenate(([np.nan], diff[:-1]))
        return np.asarray((diff > 0.0) & (prev <= 0.0))
    sign = 1.0 if op == "breakout_above" else -1.0
    prev_level = np.concatenate(([np.nan], right[:-1]))
    return np.asarray(sign * (left - prev_level) > 0.0)


def fires(cond: Mapping[str, Any], column: Column, n: int) -> BoolArray:
    """Rising edges of `holds` (false → true), as a rule fires."""
    now = holds(cond, column, n)
    out = now.copy()
    out[1:] &= ~now[:-1]
    return out


def _operand(x: Any, column: Column, n: int) -> FloatArray:
    if isinstance(x, str):
        return column(x)
    return np.full(n, float(x))
