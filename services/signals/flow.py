"""Traded value and volume over the last T ms of stream time: VWAP and the volume-spike ratio."""

from __future__ import annotations

import math
from collections import deque

from services.signals.sums import CompensatedSum


class _Span:
    """(timestamp_ms, price*amount, amount) points over the last `horizon_ms`, with their sums.

    Only sums are asked of this window, never an order statistic, so a deque in timestamp order
    is the right structure: O(1) append and evict for in-order ticks; a late tick is placed by
    scanning back over the k points newer than it (O(k); k is bounded by the late tolerance).
    """

    __slots__ = ("horizon_ms", "pts", "value", "volume", "evicted")

    def __init__(self, horizon_ms: int, *, with_value: bool = True) -> None:
        self.horizon_ms = horizon_ms
        self.pts: deque[tuple[int, float, float]] = deque()
        # The spike window only needs volume: skipping the value sum saves two calls a tick.
        self.value = CompensatedSum() if with_value else None
        self.volume = CompensatedSum()
        self.evicted = 0

    def insert(self, ts: int, pv: float, amount: float) -> None:
        pts = self.pts
        if not pts or ts >= pts[-1][0]:
            pts.append((ts, pv, amount))
        else:
            if ts <= pts[-1][0] - self.horizon_ms:
                return  # already outside the window
            k = len(pts)
            while k and pts[k - 1][0] > ts:
                k -= 1
            pts.insert(k, (ts, pv, amount))
        value, volume = self.value, self.volume
        if value is not None:
            value.add(pv)
        volume.add(amount)
        cutoff = pts[-1][0] - self.horizon_ms
        while pts[0][0] <= cutoff:
            _, old_pv, old_amount = pts.popleft()
            if value is not None:
                value.sub(old_pv)
            volume.sub(old_amount)
            self.evicted += 1
        if self.evicted >= max(len(pts), 64):
            # Exact re-summation once per window turn (amortised O(1)): compensation keeps the
            # error tiny, this keeps it from accumulating at all.
            if value is not None:
                value.reset([p[1] for p in pts])
            volume.reset([p[2] for p in pts])
            self.evicted = 0


class FlowWindow:
    """VWAP over `horizon_ms`, and the recent volume rate against it over `spike_horizon_ms`.

    Time is the stream's own (the newest tick of the symbol), so replays and live behave alike.
    """

    __slots__ = ("_long", "_short")

    def __init__(self, horizon_ms: int, spike_horizon_ms: int) -> None:
        if not 0 < spike_horizon_ms <= horizon_ms:
            raise ValueError("need 0 < spike_horizon_ms <= horizon_ms")
        self._long = _Span(horizon_ms)
        self._short = _Span(spike_horizon_ms, with_value=False)

    def __len__(self) -> int:
        return len(self._long.pts)

    def insert(self, timestamp_ms: int, price: float, amount: float) -> None:
        """O(1) amortised in order; O(k) for a tick k points late."""
        pv = price * amount
        self._long.insert(timestamp_ms, pv, amount)
        self._short.insert(timestamp_ms, pv, amount)

    @property
    def volume(self) -> float:
        return self._long.volume.value

    @property
    def vwap(self) -> float:
        volume = self._long.volume.value
        value = self._long.value
        return value.value / volume if volume > 0.0 and value is not None else math.nan

    @property
    def volume_ratio(self) -> float:
        """Volume rate over the short horizon / rate over the long one (1.0 = usual activity)."""
        long_rate = self._long.volume.value / self._long.horizon_ms
        if not long_rate > 0.0:
            return math.nan
        return (self._short.volume.value / self._short.horizon_ms) / long_rate
