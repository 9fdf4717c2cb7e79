"""Traded value and volume over the last T ms of stream time: VWAP and volume-spike inputs."""

from __future__ import annotations

import math

from sortedcontainers import SortedList

from services.signals.sums import CompensatedSum


class FlowWindow:
    """(timestamp_ms, price*amount, amount) over the last `horizon_ms` before the newest point.

    Time is the stream's own (the newest tick of the symbol), so replays and live behave alike.
    Points are kept by (timestamp, seq) in a SortedList so a late tick lands in its place.
    Sums are compensated and re-summed exactly once per window's worth of evictions (amortised
    O(1)), so hours of add/evict cannot drift.
    """

    __slots__ = ("horizon_ms", "_pts", "_value", "_volume", "_seq", "_evicted_since_resum")

    def __init__(self, horizon_ms: int) -> None:
        if horizon_ms < 1:
            raise ValueError("horizon_ms must be positive")
        self.horizon_ms = horizon_ms
        self._pts: SortedList = SortedList()
        self._value = CompensatedSum()
        self._volume = CompensatedSum()
        self._seq = 0
        self._evicted_since_resum = 0

    def __len__(self) -> int:
        return len(self._pts)

    def insert(self, timestamp_ms: int, price: float, amount: float) -> None:
        """O(log n) amortised (each point is evicted once)."""
        self._seq += 1
        pv = price * amount
        self._pts.add((timestamp_ms, self._seq, pv, amount))
        self._value.add(pv)
        self._volume.add(amount)
        pts = self._pts
        cutoff = pts[-1][0] - self.horizon_ms
        evicted = 0
        while pts[0][0] <= cutoff:
            _, _, old_pv, old_amount = pts.pop(0)
            self._value.sub(old_pv)
            self._volume.sub(old_amount)
            evicted += 1
        if evicted:
            self._evicted_since_resum += evicted
            if self._evicted_since_resum >= max(len(pts), 64):
                self._value.reset([p[2] for p in pts])
                self._volume.reset([p[3] for p in pts])
                self._evicted_since_resum = 0

    @property
    def volume(self) -> float:
        return self._volume.value

    @property
    def vwap(self) -> float:
        volume = self._volume.value
        return self._value.value / volume if volume > 0.0 else math.nan
