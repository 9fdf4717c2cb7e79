"""Traded value and volume over the last T ms of stream time: VWAP and the volume-spike ratio."""

from __future__ import annotations

import math

from services.signals.sums import CompensatedSum
from services.signals.time_order import TimeOrder


class FlowWindow:
    """VWAP over `horizon_ms`, and the recent volume rate against it over `spike_horizon_ms`.

    Time is the stream's own (the newest tick of the symbol), so replays and live behave alike.

    Only sums are asked of these windows, never an order statistic, so (timestamp_ms, price*amount,
    amount) points in timestamp order are the right structure: O(1) append and evict for in-order
    ticks; a late tick is placed by bisection and one memmove of the k points newer than it (k is
    bounded by the late tolerance). The points are a `TimeOrder`'s typed arrays, not a tuple per trade: a
    15-minute window at 20 trades/s holds 18,000 points, which as tuples were ~72,000 small objects
    per symbol kept for 15 minutes (and the allocator's slabs they pinned). The spike window is the
    newest part of the same points: it has its own start (`short_head`) and volume sum, not a copy.
    """

    __slots__ = ("horizon_ms", "spike_horizon_ms", "_order", "_ts", "_pv", "_am", "_short_head",
                 "_value", "_volume", "_short_volume", "_evicted", "_short_evicted")

    def __init__(self, horizon_ms: int, spike_horizon_ms: int) -> None:
        if not 0 < spike_horizon_ms <= horizon_ms:
            raise ValueError("need 0 < spike_horizon_ms <= horizon_ms")
        self.horizon_ms = horizon_ms
        self.spike_horizon_ms = spike_horizon_ms
        # The time order's head is the oldest point inside `horizon_ms`.
        self._order = TimeOrder(2)
        self._ts, (self._pv, self._am) = self._order.ts, self._order.columns  # the same arrays, read directly
        self._short_head = 0  # the oldest inside `spike_horizon_ms` (>= _head: the spike window is shorter)
        self._value = CompensatedSum()
        self._volume = CompensatedSum()
        self._short_volume = CompensatedSum()  # the spike window needs only volume
        self._evicted = self._short_evicted = 0

    def __len__(self) -> int:
        return len(self._order)

    def insert(self, timestamp_ms: int, price: float, amount: float) -> None:
        """O(1) amortised in order; O(k) for a tick k points late."""
        pv = price * amount
        order, times, pvs, ams, short = self._order, self._ts, self._pv, self._am, self._short_head
        head = order.head
        in_short = True
        if len(times) == head or timestamp_ms >= times[-1]:  # in order: an append (see TimeOrder)
            times.append(timestamp_ms)
            pvs.append(pv)
            ams.append(amount)
        else:
            newest = times[-1]
            if timestamp_ms <= newest - self.horizon_ms:
                return  # already outside both windows
            order.insert_late(timestamp_ms, (pv, amount))
            if timestamp_ms <= newest - self.spike_horizon_ms:
                in_short = False  # it lands before the spike window's start (k <= short): outside it
                short += 1
        value, volume = self._value, self._volume
        value.add(pv)
        volume.add(amount)
        cutoff = times[-1] - self.horizon_ms
        while times[head] <= cutoff:
            value.sub(pvs[head])
            volume.sub(ams[head])
            head += 1
            self._evicted += 1
        short_volume = self._short_volume
        if in_short:
            short_volume.add(amount)
        cutoff = times[-1] - self.spike_horizon_ms
        while times[short] <= cutoff:
            short_volume.sub(ams[short])
            short += 1
            self._short_evicted += 1
        # Exact re-summation once per window turn (amortised O(1)): compensation keeps the error tiny,
        # this keeps it from accumulating at all.
        if self._evicted >= max(len(times) - head, 64):
            value.reset(pvs[head:].tolist())
            volume.reset(ams[head:].tolist())
            self._evicted = 0
        if self._short_evicted >= max(len(times) - short, 64):
            short_volume.reset(ams[short:].tolist())
            self._short_evicted = 0
        order.head = head
        self._short_head = short - order.compact()

    @property
    def volume(self) -> float:
        return self._volume.value

    @property
    def vwap(self) -> float:
        volume = self._volume.value
        return self._value.value / volume if volume > 0.0 else math.nan

    @property
    def volume_ratio(self) -> float:
        """Volume rate over the short horizon / rate over the long one (1.0 = usual activity)."""
        long_rate = self._volume.value / self.horizon_ms
        if not long_rate > 0.0:
            return math.nan
        return (self._short_volume.value / self.spike_horizon_ms) / long_rate
