"""Traded value and volume over the last T ms of stream time: VWAP and the volume-spike ratio."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

from services.signals.sums import CompensatedSum
from services.signals.windows import COMPACT_AT


class _Span:
    """(timestamp_ms, price*amount, amount) points over the last `horizon_ms`, with their sums.

    Only sums are asked of this window, never an order statistic, so columns in timestamp order
    are the right structure: O(1) append and evict for in-order ticks; a late tick is placed by
    bisection and one memmove of the k points newer than it (k is bounded by the late tolerance).
    The points are three typed arrays (`head` is the oldest live one), not a tuple per trade: a
    15-minute window at 20 trades/s holds 18,000 points, which as tuples were 72,000 small objects
    per symbol kept for 15 minutes (and the allocator's slabs they pinned).
    """

    __slots__ = ("horizon_ms", "ts", "pv", "am", "head", "value", "volume", "evicted")

    def __init__(self, horizon_ms: int, *, with_value: bool = True) -> None:
        self.horizon_ms = horizon_ms
        self.ts = array("q")
        self.pv = array("d")
        self.am = array("d")
        self.head = 0  # points before it have left the window (moved out at `COMPACT_AT`)
        # The spike window only needs volume: skipping the value sum saves two calls a tick.
        self.value = CompensatedSum() if with_value else None
        self.volume = CompensatedSum()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def insert(self, ts: int, pv: float, amount: float) -> None:
        times, head = self.ts, self.head
        if len(times) == head or ts >= times[-1]:
            times.append(ts)
            self.pv.append(pv)
            self.am.append(amount)
        else:
            if ts <= times[-1] - self.horizon_ms:
                return  # already outside the window
            k = bisect_right(times, ts, head)  # after equal timestamps: arrival order
            times.insert(k, ts)
            self.pv.insert(k, pv)
            self.am.insert(k, amount)
        value, volume = self.value, self.volume
        if value is not None:
            value.add(pv)
        volume.add(amount)
        cutoff = times[-1] - self.horizon_ms
        if times[head] <= cutoff:
            pvs, ams = self.pv, self.am
            while times[head] <= cutoff:
                if value is not None:
                    value.sub(pvs[head])
                volume.sub(ams[head])
                head += 1
                self.evicted += 1
            if head >= COMPACT_AT and 2 * head >= len(times):  # one memmove per ~head evictions
                del times[:head], pvs[:head], ams[:head]
                head = 0
            self.head = head
        if self.evicted >= max(len(times) - head, 64):
            # Exact re-summation once per window turn (amortised O(1)): compensation keeps the
            # error tiny, this keeps it from accumulating at all.
            if value is not None:
                value.reset(self.pv[head:].tolist())
            volume.reset(self.am[head:].tolist())
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
        return len(self._long)

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
