"""Per-symbol freshness: when did data last arrive, and is the symbol live, stale or reconnecting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

FeedStatus = Literal["live", "stale", "reconnecting"]


def status_for(last_tick_ms: int | None, now_ms: float, stale_after_s: float) -> FeedStatus:
    """ "live" when the last data is younger than `stale_after_s`, "stale" otherwise (or when none came yet)."""
    if last_tick_ms is None or now_ms - last_tick_ms > stale_after_s * 1000:
        return "stale"
    return "live"


class FreshnessBoard:
    """What a streaming feed knows about each symbol's data: last arrival time and reconnecting state.

    The arrival time is the local clock when data was received (an exchange timestamp can lag or lead),
    so a stalled socket turns a symbol stale even while the exchange's own clock moves on.
    """

    def __init__(self, *, stale_after_s: float = 10.0, clock: Callable[[], float]) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._last_ms: dict[str, int] = {}
        self._reconnecting: set[str] = set()

    def mark(self, symbol: str) -> None:
        self._last_ms[symbol] = int(self._clock() * 1000)
        self._reconnecting.discard(symbol)

    def mark_reconnecting(self, symbol: str) -> None:
        self._reconnecting.add(symbol)

    def last_tick_ms(self, symbol: str) -> int | None:
        return self._last_ms.get(symbol)

    def status(self, symbol: str) -> FeedStatus:
        if symbol in self._reconnecting:
            return "reconnecting"
        return status_for(self._last_ms.get(symbol), self._clock() * 1000, self.stale_after_s)
