"""How the simulated feeds (synthetic, replay) pace their wake-ups in wall time: one rule for both."""

from __future__ import annotations

MAX_SLEEP_S = 1.0  # re-read the clock at least this often (it may jump: suspend, NTP, a test's fake clock)


def wake_delay_s(due_ms: float, woke_s: float, clock_s: float, batch_s: float) -> float:
    """Seconds to sleep before handing over the next trades: until the trade at `due_ms` (wall-clock ms) is
    due, the clock inside its millisecond (aimed mid-ms, so float rounding cannot leave it just short), but
    not sooner than `batch_s` after the wake-up at `woke_s` (one wake-up hands over a batch), and never
    longer than MAX_SLEEP_S. `clock_s` is the clock now."""
    return min(max((due_ms + 0.5) / 1000 - clock_s, woke_s + batch_s - clock_s, 0.0), MAX_SLEEP_S)
