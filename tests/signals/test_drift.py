"""Running sums stay exact over millions of updates: no drift however long the app runs."""

from __future__ import annotations

import math
import random

from services.market.types import Tick
from services.signals import EngineConfig
from services.signals.indicators import SymbolIndicators
from services.signals.sums import CompensatedSum


def test_compensated_window_sum_does_not_drift_over_ten_million_updates() -> None:
    """A 64-value window slid 5 million times (10M add/sub) over values spanning 1e-6..1e9.

    A plain float running sum ends up wrong in the integer digits here; the compensated one stays
    within a few ulps of the exact sum of what is in the window.
    """
    rng = random.Random(42)
    pool = [rng.choice((1e9, -1e9, 1e-6, 0.1, 123.456, -7.0)) * rng.random() for _ in range(4_096)]
    size = 64
    window = pool[:size]
    acc = CompensatedSum(window)
    naive = math.fsum(window)
    j = 0
    add, sub = acc.add, acc.sub
    for k in range(5_000_000):
        x = pool[k & 4_095]
        old = window[j]
        window[j] = x
        j = j + 1 if j + 1 < size else 0
        add(x)
        sub(old)
        naive += x - old
    exact = math.fsum(window)
    assert abs(acc.value - exact) <= 4 * math.ulp(max(abs(exact), 1.0))
    assert abs(naive - exact) > 1e3 * abs(acc.value - exact)  # the test data does make naive sums drift


def test_fused_indicators_do_not_drift_over_a_million_ticks_of_adversarial_magnitudes() -> None:
    """Prices jump between 1e-3 and 1e7 (window sums rebase once per turn); 1M ticks."""
    cfg = EngineConfig(sma_period=20, stats_points=0, vwap_horizon_ms=0, rvol_points=0, drop_duplicates=False)
    ind = SymbolIndicators("A", cfg)
    rng = random.Random(3)
    levels = [1e-3, 1.0, 1e7, 3e4]
    update = ind.update
    last = []
    for k in range(1_000_000):
        p = levels[(k // 5_000) % 4] * (1.0 + 1e-4 * rng.random())
        update(Tick("A", k, p, 1.0))
        if k >= 999_980:
            last.append(p)
    v = ind.read()
    mean = math.fsum(last) / 20
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in last) / 20)
    assert math.isclose(v["sma_20"], mean, rel_tol=1e-12)
    assert math.isclose(v["bb_upper"] - v["sma_20"], 2 * std, rel_tol=1e-6)


def test_compensated_sum_keeps_small_values_next_to_huge_ones() -> None:
    acc = CompensatedSum()
    for x in (1e16, 1.0, -1e16, 1.0, 1e-3):
        acc.add(x)
    acc.sub(1e-3)
    assert acc.value == 2.0  # a plain float sum gives 1.0 (1e16 + 1.0 rounds the 1.0 away)
