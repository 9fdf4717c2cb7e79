"""Per-user token buckets: `rate_per_s` refills, `burst` capacity. In-process (one Cloud Run instance
limits its own traffic; good enough for abuse protection, not for billing)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """`take(uid)` spends one token; returns 0 when allowed, else the seconds until one is available."""

    def __init__(self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # uid → (tokens, at)
        self._max_users = 10_000

    def take(self, uid: str) -> float:
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        if len(self._buckets) > self._max_users:
            self._forget_full(now)
        tokens, at = self._buckets.get(uid, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[uid] = (tokens - 1, now)
            return 0.0
        self._buckets[uid] = (tokens, now)
        return (1 - tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        """Drop users whose bucket has refilled: they are indistinguishable from new ones."""
        full_after_s = self._burst / self._rate
        self._buckets = {u: b for u, b in self._buckets.items() if now - b[1] < full_after_s}
