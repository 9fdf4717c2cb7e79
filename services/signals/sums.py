"""Running sums that do not drift: Neumaier-compensated add/subtract for long-lived windows.

A window sum updated by `+x` on insert and `-x` on evict for hours accumulates rounding error
(and loses small values next to large ones); the compensation term carries the lost low bits.
"""

from __future__ import annotations

import math


class CompensatedSum:
    """Sum of a changing multiset of floats; `add`/`sub` O(1), error stays ~1 ulp of the true sum."""

    __slots__ = ("_hi", "_lo")

    def __init__(self, values: list[float] | tuple[float, ...] = ()) -> None:
        self._hi = math.fsum(values)
        self._lo = 0.0

    def add(self, x: float) -> None:
        """O(1). Neumaier's variant of Kahan: also exact when |x| > |running sum|."""
        hi = self._hi
        t = hi + x
        if abs(hi) >= abs(x):
            self._lo += (hi - t) + x
        else:
            self._lo += (x - t) + hi
        self._hi = t

    def sub(self, x: float) -> None:
        """O(1). `add(-x)` written out: one call a tick less on every window eviction."""
        hi = self._hi
        t = hi - x
        if abs(hi) >= abs(x):
            self._lo += (hi - t) - x
        else:
            self._lo += (-x - t) + hi
        self._hi = t

    def reset(self, values: list[float] | tuple[float, ...] = ()) -> None:
        """O(n): exact re-summation, used when the window is rebuilt."""
        self._hi = math.fsum(values)
        self._lo = 0.0

    @property
    def value(self) -> float:
        return self._hi + self._lo
