"""Rolling windows over (timestamp_ms, value) points, kept sorted so order statistics never rescan.

`SortedWindow` is the general one (time- and/or count-bounded, late points placed by timestamp);
`RollingQuantile` is the lean count window that streams one quantile (arrival order).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from heapq import heapify, heappop, heappush
from itertools import chain

from sortedcontainers import SortedList

from services.signals.time_order import TimeOrder

# Below this many points a flat Python list with bisect beats a split into heaps: `insort`/`del`
# move at most a few KB with memmove. Above it the memmove grows linearly and the heaps win.
FLAT_LIST_MAX_POINTS = 4096


def _between(lo: float, hi: float, frac: float) -> float:
    """Linear interpolation; exactly (lo + hi) / 2 at the midpoint, as medians are defined."""
    return (lo + hi) * 0.5 if frac == 0.5 else lo + (hi - lo) * frac


def interpolate(sorted_values: SortedList | list[float], q: float) -> float:
    """Quantile `q` of already-sorted values, linear interpolation (numpy's default). O(log n)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    h = q * (n - 1)
    i = int(h)
    lo = sorted_values[i]
    frac = h - i
    if frac == 0.0 or i + 1 >= n:
        return float(lo)
    return float(_between(lo, sorted_values[i + 1], frac))


class SortedWindow:
    """Points of one series over the last `max_points` and/or the last `horizon_ms` of time.

    Both orders are kept: by value in a SortedList of the plain values (min, max, quantiles and
    rank in O(log n)), and by time in a `TimeOrder` (typed arrays in timestamp order: eviction from
    the oldest end, time ranges by bisection, an in-order point an append, a late one a bisection
    and a memmove of the points newer than it). Arrays hold no Python object per point (a tuple,
    an int and a float each were ~3 small objects per point kept for the window's life).
    A point older than the window when it arrives is evicted at once (and returned as evicted).
    """

    __slots__ = ("max_points", "horizon_ms", "_order", "_ts", "_vals", "_by_value")

    def __init__(self, *, max_points: int | None = None, horizon_ms: int | None = None) -> None:
        if max_points is None and horizon_ms is None:
            raise ValueError("a window needs max_points, horizon_ms or both")
        if (max_points is not None and max_points < 1) or (horizon_ms is not None and horizon_ms < 1):
            raise ValueError("window bounds must be positive")
        self.max_points = max_points
        self.horizon_ms = horizon_ms
        self._order = TimeOrder(1)
        self._ts, (self._vals,) = self._order.ts, self._order.columns  # the same arrays, read directly
        self._by_value: SortedList = SortedList()

    def __len__(self) -> int:
        return len(self._order)

    def insert(self, timestamp_ms: int, value: float) -> list[tuple[int, float]]:
        """Place a point by timestamp and evict what falls out. O(log n) amortised.

        Returns the evicted points so callers can subtract them from running sums.
        """
        order, times, vals = self._order, self._ts, self._vals
        if len(times) == order.head or timestamp_ms >= times[-1]:  # in order: an append (see TimeOrder)
            times.append(timestamp_ms)
            vals.append(value)
        else:
            order.insert_late(timestamp_ms, (value,))
        self._by_value.add(value)
        evicted: list[tuple[int, float]] = []
        if self.max_points is not None and len(times) - order.head > self.max_points:
            by_value, head = self._by_value, order.head
            while len(times) - head > self.max_points:
                v = vals[head]
                by_value.remove(v)
                evicted.append((times[head], v))
                head += 1
            order.head = head
            order.compact()
        if self.horizon_ms is not None:
            evicted.extend(self.evict_through(times[-1] - self.horizon_ms))
        return evicted

    def evict_through(self, cutoff_ms: int) -> list[tuple[int, float]]:
        """Drop points with timestamp <= cutoff_ms (time passing). O(k log n) for k evicted."""
        evicted: list[tuple[int, float]] = []
        order, times, vals, by_value = self._order, self._ts, self._vals, self._by_value
        head = order.head
        while head < len(times) and times[head] <= cutoff_ms:
            v = vals[head]
            by_value.remove(v)
            evicted.append((times[head], v))
            head += 1
        if head != order.head:
            order.head = head
            order.compact()
        return evicted

    # -- order statistics, all O(log n) ---------------------------------------------------
    def min(self) -> float:
        return float(self._by_value[0]) if self._by_value else math.nan

    def max(self) -> float:
        return float(self._by_value[-1]) if self._by_value else math.nan

    def quantile(self, q: float) -> float:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        return interpolate(self._by_value, q)

    def median(self) -> float:
        return interpolate(self._by_value, 0.5)

    def rank(self, value: float) -> int:
        """How many points are strictly below `value`. O(log n)."""
        return self._by_value.bisect_left(value)

    # -- time order -------------------------------------------------------------------------
    def newest(self) -> tuple[int, float] | None:
        if not len(self._order):
            return None
        return self._ts[-1], self._vals[-1]

    def _span(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        times, head = self._ts, self._order.head
        return bisect_left(times, start_ms, head), bisect_left(times, end_ms + 1, head)

    def count_between(self, start_ms: int, end_ms: int) -> int:
        """Points with start_ms <= timestamp <= end_ms. O(log n)."""
        lo, hi = self._span(start_ms, end_ms)
        return max(0, hi - lo)

    def between(self, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Points with start_ms <= timestamp <= end_ms, oldest first. O(log n + k)."""
        lo, hi = self._span(start_ms, end_ms)
        return list(zip(self._ts[lo:hi], self._vals[lo:hi], strict=True))

    def points(self) -> list[tuple[int, float]]:
        """Every point, oldest first. O(n): for tests and snapshots, not the hot path."""
        head = self._order.head
        return list(zip(self._ts[head:], self._vals[head:], strict=True))


class RollingQuantile:
    """Quantile `q` (linear interpolation) of the last `size` values, in arrival order.

    Small windows keep one flat sorted list (bisect: O(log n) search + an O(n) memmove that is
    cheap up to FLAT_LIST_MAX_POINTS). Large windows split the values at the quantile into two
    heaps: `lower` (a max-heap, stored negated) holds exactly the values up to the quantile's
    index and `upper` (a min-heap) the rest, so a read is the top of each. A value leaving the
    window is only counted as dead on its side and popped when it reaches that side's top (lazy
    deletion); a heap holding more dead than live entries is rebuilt. O(log n) amortised per
    update, all in heapq's C: ~4x cheaper here than the same split over two SortedLists, whose
    every add and remove is Python-level bookkeeping (1.3-1.5 us each at 500,000 points).
    """

    __slots__ = ("q", "size", "_ring", "_flat", "_split", "_lo", "_hi", "_lo_dead", "_hi_dead", "_nl", "_nh")

    def __init__(self, q: float, size: int) -> None:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if size < 1:
            raise ValueError("size must be positive")
        self.q = q
        self.size = size
        self._ring: deque[float] = deque()
        self._split = size > FLAT_LIST_MAX_POINTS
        self._flat: list[float] = []
        self._lo: list[float] = []  # -value: heapq is a min-heap
        self._hi: list[float] = []
        self._lo_dead: dict[float, int] = {}  # value -> copies left the window, still in the heap
        self._hi_dead: dict[float, int] = {}
        self._nl = self._nh = 0  # live values on each side

    def __len__(self) -> int:
        return len(self._ring)

    def update(self, value: float) -> float:
        """Add a value (evicting the oldest once full) and return the current quantile.

        O(log n) compares + an O(n) memmove of pointers (flat, n <= FLAT_LIST_MAX_POINTS), or
        O(log n) (split). Values must not be NaN: NaN has no place in a sorted order.
        """
        if self._split:
            return self._update_split(value)
        ring = self._ring
        flat = self._flat
        ring.append(value)
        if len(ring) > self.size:
            del flat[bisect_left(flat, ring.popleft())]
        insort(flat, value)
        n = len(flat)
        h = self.q * (n - 1)
        i = int(h)
        lo = flat[i]
        frac = h - i
        if frac == 0.0:
            return lo
        return _between(lo, flat[i + 1], frac)

    def update_many(self, values: Iterable[float]) -> list[float]:
        """`update` for each value (a backfill, a replay), returning every quantile.

        Same results as calling `update` in a loop; once the window is full the flat-list case
        pairs each new value with the one it evicts by zipping the input with itself, so the
        loop does no ring bookkeeping: per value, one bisect + del, one insort, two reads.
        """
        values = values if isinstance(values, list) else list(values)
        if self._split:
            return self._update_many_split(values)
        size = self.size
        fill = min(len(values), size - len(self._ring))
        update = self.update
        out = [update(x) for x in values[:fill]]
        if fill == len(values):
            return out
        ring, flat = self._ring, self._flat
        emit = out.append
        h = self.q * (size - 1)
        i = int(h)
        frac = h - i
        i1 = min(i + 1, size - 1)
        rest = values[fill:]
        find, put = bisect_left, insort
        # The value evicted by rest[k] is the k-th oldest of (window now, then rest).
        evicted = chain(list(ring), rest)  # runs longer than `rest`: zip stops with rest
        if frac == 0.5:  # an even window's median: the mean of the middle two, one op fewer
            for x, old in zip(rest, evicted, strict=False):
                del flat[find(flat, old)]
                put(flat, x)
                emit((flat[i] + flat[i1]) * 0.5)
        else:
            for x, old in zip(rest, evicted, strict=False):
                del flat[find(flat, old)]
                put(flat, x)
                lo = flat[i]
                emit(lo + (flat[i1] - lo) * frac)
        ring.extend(rest[-size:])  # deque(maxlen) is not used, so trim by hand
        while len(ring) > size:
            ring.popleft()
        return out

    def _update_many_split(self, values: list[float]) -> list[float]:
        update = self._update_split
        return [update(x) for x in values]

    def _update_split(self, value: float) -> float:
        """O(log n) amortised: one heap push, a dead count, and a move between the heaps when
        the new and the leaving value fall on different sides of the quantile."""
        ring, lo, hi = self._ring, self._lo, self._hi
        nl, nh = self._nl, self._nh
        ring.append(value)
        if nl and value <= -lo[0]:
            heappush(lo, -value)
            nl += 1
        else:
            heappush(hi, value)
            nh += 1
        if len(ring) > self.size:
            old = ring.popleft()
            # Every live value in `lower` is <= every one in `upper`, so old <= max(lower) means
            # it (or an equal one, the same for order statistics) is in `lower`.
            if nl and old <= -lo[0]:
                dead = self._lo_dead
                dead[old] = dead.get(old, 0) + 1
                nl -= 1
                if old == -lo[0]:
                    self._prune(lo, dead, True)
            else:
                dead = self._hi_dead
                dead[old] = dead.get(old, 0) + 1
                nh -= 1
                if old == hi[0]:
                    self._prune(hi, dead, False)
        h = self.q * (nl + nh - 1)
        i = int(h)
        want = i + 1  # lower holds sorted[0..i]
        while nl > want:
            heappush(hi, -heappop(lo))
            nl -= 1
            nh += 1
            self._prune(lo, self._lo_dead, True)
        while nl < want:
            heappush(lo, -heappop(hi))
            nl += 1
            nh -= 1
            self._prune(hi, self._hi_dead, False)
        self._nl, self._nh = nl, nh
        if len(lo) > 2 * nl + 64:
            self._lo = lo = self._rebuild(lo, self._lo_dead, True)
        if len(hi) > 2 * nh + 64:
            self._hi = hi = self._rebuild(hi, self._hi_dead, False)
        top = -lo[0]
        frac = h - i
        if frac == 0.0 or not nh:
            return top
        return _between(top, hi[0], frac)

    @staticmethod
    def _prune(heap: list[float], dead: dict[float, int], negated: bool) -> None:
        """Pop dead entries off the top, so the top is always a live value. O(k log n)."""
        while heap:
            v = -heap[0] if negated else heap[0]
            left = dead.get(v)
            if not left:
                return
            if left == 1:
                del dead[v]
            else:
                dead[v] = left - 1
            heappop(heap)

    @staticmethod
    def _rebuild(heap: list[float], dead: dict[float, int], negated: bool) -> list[float]:
        """Drop every dead entry and re-heapify: O(n), once the dead outnumber the live. Which
        of several equal copies goes does not matter: equal values are one order statistic."""
        keep = []
        for entry in heap:
            v = -entry if negated else entry
            left = dead.get(v)
            if left:
                if left == 1:
                    del dead[v]
                else:
                    dead[v] = left - 1
                continue
            keep.append(entry)
        heapify(keep)
        return keep

    def value(self) -> float:
        """Current quantile without updating. O(1)."""
        if not self._ring:
            return math.nan
        if not self._split:
            return interpolate(self._flat, self.q)
        h = self.q * (len(self._ring) - 1)
        top = -self._lo[0]
        frac = h - int(h)
        if frac == 0.0 or not self._nh:
            return top
        return _between(top, self._hi[0], frac)
