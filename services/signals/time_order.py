"""Points of a stream in timestamp order as typed arrays: the time order `SortedWindow` and `FlowWindow`
both keep (no Python object per point), with its late-point placement and its compaction in one place."""

from __future__ import annotations

from array import array
from bisect import bisect_right

# Evicted slots kept at the front before the live points are moved down: one memmove per this many
# evictions (and at least as many as are live), amortised O(1) a point.
COMPACT_AT = 1024


class TimeOrder:
    """Timestamps (`ts`, int64 ms) and one float64 array per value column (`columns`), in timestamp order,
    equal timestamps in arrival order; the oldest live point is at `head`.

    Points arrive in time order but for the late ones, so no tree is needed: an in-order point (its
    timestamp >= the newest, or none held) is an append to every array, O(1), which owners write inline on
    their hot path (a call per point cost 5-12 % of an insert); a late one goes through `insert_late`, a
    bisection and a memmove of the k points newer than it, O(log n + k). Evicting is the owner's
    `head += 1` (it knows what else leaves with a point: a sum, a value order); `compact` then drops the
    evicted slots now and then. The arrays are changed in place, never replaced, so an owner may hold them.
    """

    __slots__ = ("ts", "columns", "head")

    def __init__(self, columns: int) -> None:
        self.ts = array("q")
        self.columns = tuple(array("d") for _ in range(columns))
        self.head = 0

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def insert_late(self, timestamp_ms: int, values: tuple[float, ...]) -> int:
        """Place a late point (one value per column) after those with a timestamp <= its own; its index.
        O(log n + k) for k points newer than it."""
        k = bisect_right(self.ts, timestamp_ms, self.head)
        self.ts.insert(k, timestamp_ms)
        for column, value in zip(self.columns, values, strict=True):
            column.insert(k, value)
        return k

    def compact(self) -> int:
        """Drop the evicted slots once there are COMPACT_AT of them and no fewer than live points. Returns
        how many went (0: none), by which every index the owner keeps moves down."""
        head = self.head
        if head < COMPACT_AT or 2 * head < len(self.ts):
            return 0
        del self.ts[:head]
        for column in self.columns:
            del column[:head]
        self.head = 0
        return head
