"""Sorted windows answer min/max/quantiles/rank/time ranges exactly as a rescan would."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.signals import windows
from services.signals.time_order import COMPACT_AT
from services.signals.windows import RollingQuantile, SortedWindow, interpolate

values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(1, 12)),
    st.one_of(st.none(), st.integers(1, 5_000)),
    st.lists(
        st.tuples(st.integers(-3_000, 2_000), st.one_of(values, st.sampled_from([1.0, 2.0]))), max_size=60
    ),
    st.floats(0.0, 1.0),
)
def test_sorted_window_equals_a_rescan_of_the_points_it_should_hold(
    max_points: int | None, horizon_ms: int | None, steps: list[tuple[int, float]], q: float
) -> None:
    if max_points is None and horizon_ms is None:
        max_points = 5
    window = SortedWindow(max_points=max_points, horizon_ms=horizon_ms)
    model: list[tuple[int, int, float]] = []  # (ts, seq, value)
    ts = 0
    for seq, (dt, value) in enumerate(steps):
        ts = max(ts, ts + dt)
        t = ts + dt if dt < 0 else ts  # negative steps are late points
        evicted = window.insert(t, value)
        model.append((t, seq, value))
        model.sort()
        kept = model[-max_points:] if max_points else model
        if horizon_ms is not None:
            kept = [p for p in kept if p[0] > kept[-1][0] - horizon_ms]
        gone = sorted(set(model) - set(kept))
        model = kept
        assert sorted(evicted) == sorted((p[0], p[2]) for p in gone)
        vals = sorted(p[2] for p in model)
        assert len(window) == len(model)
        assert window.points() == [(p[0], p[2]) for p in model]
        assert window.min() == vals[0] and window.max() == vals[-1]
        assert window.quantile(q) == pytest.approx(float(np.quantile(vals, q)), rel=1e-9, abs=1e-9)
        assert window.median() == pytest.approx(float(np.median(vals)), rel=1e-9, abs=1e-9)
        assert window.rank(value) == sum(v < value for v in vals)
        lo, hi = t - 1_000, t + 500
        inside = [(p[0], p[2]) for p in model if lo <= p[0] <= hi]
        assert window.between(lo, hi) == inside
        assert window.count_between(lo, hi) == len(inside)


def test_time_window_keeps_only_the_last_horizon_before_the_newest_point() -> None:
    window = SortedWindow(horizon_ms=1_000)
    for ts, v in [(0, 5.0), (400, 1.0), (900, 9.0), (1_300, 3.0)]:
        window.insert(ts, v)
    assert window.points() == [(400, 1.0), (900, 9.0), (1_300, 3.0)]  # 0 is 1300 ms old
    assert window.evict_through(900) == [(400, 1.0), (900, 9.0)]
    assert (window.min(), window.max(), len(window)) == (3.0, 3.0, 1)


def test_empty_window_reads_nan_and_bad_bounds_are_refused() -> None:
    window = SortedWindow(max_points=3)
    assert math.isnan(window.median()) and math.isnan(window.min()) and window.newest() is None
    with pytest.raises(ValueError):
        SortedWindow()
    with pytest.raises(ValueError):
        window.quantile(1.5)


@pytest.mark.parametrize("split", [False, True], ids=["flat-list", "two-sortedlists"])
@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 1.0),
    st.integers(1, 40),
    st.lists(st.one_of(values, st.sampled_from([0.0, 1.0, 1.0, 2.0])), min_size=1, max_size=150),
)
def test_rolling_quantile_equals_numpy_on_every_window(
    split: bool, q: float, size: int, xs: list[float]
) -> None:
    threshold = 0 if split else 10**9
    original = windows.FLAT_LIST_MAX_POINTS
    windows.FLAT_LIST_MAX_POINTS = threshold
    try:
        rq = RollingQuantile(q, size)
    finally:
        windows.FLAT_LIST_MAX_POINTS = original
    for k, x in enumerate(xs):
        got = rq.update(x)
        want = float(np.quantile(xs[max(0, k + 1 - size) : k + 1], q))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
        assert rq.value() == got
    assert len(rq) == min(size, len(xs))


@pytest.mark.parametrize(("q", "size"), [(0.9, 100), (0.5, 100), (0.5, 101), (0.0, 7)])
def test_update_many_equals_update_one_by_one_whatever_the_chunks(q: float, size: int) -> None:
    xs = [float((k * 7919) % 1000) / 7 for k in range(3_000)]
    one = RollingQuantile(q, size)
    expected = [one.update(x) for x in xs]
    assert RollingQuantile(q, size).update_many(xs) == expected
    assert expected[-1] == pytest.approx(float(np.quantile(xs[-size:], q)), rel=1e-12)
    chunked = RollingQuantile(q, size)
    got: list[float] = []
    for start, end in [(0, 30), (30, 150), (150, 151), (151, 400), (400, 3_000)]:
        got += chunked.update_many(iter(xs[start:end]))
    assert got == expected
    assert chunked.update(5.0) == one.update(5.0)
    assert chunked.value() == one.value()


def test_interpolate_is_numpys_linear_quantile() -> None:
    xs = sorted([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        assert interpolate(xs, q) == pytest.approx(float(np.quantile(xs, q)))


@pytest.mark.parametrize(("q", "size"), [(0.9, 50), (0.5, 64), (0.0, 9), (1.0, 9)])
def test_the_large_window_split_stays_exact_as_dead_values_pile_up_and_are_swept(q: float, size: int) -> None:
    # A trending series with repeats: the values leaving sit deep in one heap and never reach its
    # top, so only the sweep removes them; the result must stay numpy's on every window.
    rng = np.random.default_rng(5)
    xs = (np.round(np.cumsum(rng.normal(0.05, 1.0, 4_000)), 0) / 4).tolist()
    original = windows.FLAT_LIST_MAX_POINTS
    windows.FLAT_LIST_MAX_POINTS = 0
    try:
        rq = RollingQuantile(q, size)
    finally:
        windows.FLAT_LIST_MAX_POINTS = original
    got = rq.update_many(xs)
    want = [float(np.quantile(xs[max(0, k + 1 - size) : k + 1], q)) for k in range(len(xs))]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert len(rq._lo) + len(rq._hi) <= 2 * size + 2 * 64 + 2  # the sweep bounds the heaps


def test_columnar_windows_equal_a_rescan_over_thousands_of_points_with_late_ones() -> None:
    """The windows keep their points in typed arrays whose evicted front is moved out now and then
    (`COMPACT_AT`): across many of those moves, with late points placed among the newest, every
    answer equals a brute-force recomputation over the points the window should hold."""
    from services.signals.flow import FlowWindow

    rng = np.random.default_rng(13)
    bounded = SortedWindow(max_points=300)
    timed = SortedWindow(horizon_ms=2_000)
    flow = FlowWindow(4_000, 1_000)
    model: list[tuple[int, int, float, float]] = []  # (ts, seq, price, amount)
    ts = 0
    for seq in range(6 * COMPACT_AT):
        ts += int(rng.integers(0, 12))
        t = ts - int(rng.integers(1, 40)) if rng.random() < 0.05 else ts  # one point in twenty is late
        price = round(float(rng.normal(100.0, 3.0)), 2)
        amount = float(rng.choice([0.5, 1.0, 2.5]))
        bounded.insert(t, price)
        timed.insert(t, price)
        flow.insert(t, price, amount)
        model.append((t, seq, price, amount))
        if seq % 97:
            continue
        by_time = sorted(model)
        newest = by_time[-1][0]
        last = by_time[-300:]
        assert bounded.points() == [(p[0], p[2]) for p in last]
        vals = sorted(p[2] for p in last)
        assert (bounded.min(), bounded.max(), bounded.median()) == (vals[0], vals[-1], float(np.median(vals)))
        recent = [p for p in by_time if p[0] > newest - 2_000]
        assert timed.points() == [(p[0], p[2]) for p in recent]
        assert timed.between(newest - 500, newest) == [(p[0], p[2]) for p in recent if p[0] >= newest - 500]
        assert timed.quantile(0.9) == pytest.approx(float(np.quantile([p[2] for p in recent], 0.9)), rel=1e-12)
        # VWAP and the volume ratio as sums over exactly the points inside each horizon.
        long = [p for p in by_time if p[0] > newest - 4_000]
        short = [p for p in by_time if p[0] > newest - 1_000]
        volume = math.fsum(p[3] for p in long)
        assert len(flow) == len(long)
        assert flow.vwap == pytest.approx(math.fsum(p[2] * p[3] for p in long) / volume, rel=1e-12)
        assert flow.volume_ratio == pytest.approx((math.fsum(p[3] for p in short) / 1_000) / (volume / 4_000),
                                                  rel=1e-12)
