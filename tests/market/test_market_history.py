"""The history store: monthly numpy chunks, gaps found and filled from every source, ccxt paging with rate
limits and resume (on the loopback Binance), CSV imports and recordings."""

from __future__ import annotations

import time

import numpy as np
import pytest

from services.market.history import (
    CandleStore,
    CcxtSource,
    CsvSource,
    ReplaySource,
    SyntheticSource,
    bars_from_trades,
)
from services.market.recording import load_recording
from services.market.synthetic import DAY_MS, MINUTE_MS, ORIGIN_MS, SyntheticMarket
from services.market.types import FeedUnavailable

T = ORIGIN_MS + 395 * DAY_MS  # late January 2025: a month boundary a few days on


def test_write_read_page_and_merge_across_months(tmp_path):
    store = CandleStore(tmp_path)
    bars = SyntheticMarket(5).candles("ETH/USDT", "1h", T, T + 20 * DAY_MS)
    store.write("s", "ETH/USDT", "1h", bars[:300])
    store.write("s", "ETH/USDT", "1h", bars[250:])  # overlapping: replaced, never doubled
    assert sorted(p.name for p in (tmp_path / "s" / "ETH-USDT" / "1h").iterdir()) == ["2025-01.npy", "2025-02.npy"]
    assert np.array_equal(store.read("s", "ETH/USDT", "1h", T, T + 20 * DAY_MS), bars)
    page = store.page("s", "ETH/USDT", "1h", before_ms=int(bars[-10, 0]), limit=200)
    assert np.array_equal(page, bars[-210:-10])
    assert store.read("s", "BTC/USDT", "1h", T, T + DAY_MS).shape == (0, 6)


def test_gaps_are_found_and_filled_from_the_synthetic_market(tmp_path):
    store, source = CandleStore(tmp_path), SyntheticSource(5)
    name = source.name
    bars = source.market.candles("SOL/USDT", "15m", T, T + 10 * DAY_MS)
    store.write(name, "SOL/USDT", "15m", np.concatenate([bars[:100], bars[150:600], bars[700:]]))
    frame = 15 * MINUTE_MS
    assert store.gaps(name, "SOL/USDT", "15m", T, T + 10 * DAY_MS) == [
        (T + 100 * frame, T + 150 * frame), (T + 600 * frame, T + 700 * frame)]
    import asyncio

    assert asyncio.run(store.fill(source, "SOL/USDT", "15m", T, T + 10 * DAY_MS)) == 150
    assert store.gaps(name, "SOL/USDT", "15m", T, T + 10 * DAY_MS) == []
    assert np.array_equal(store.read(name, "SOL/USDT", "15m", T, T + 10 * DAY_MS), bars)


def test_the_synthetic_source_gives_no_bar_still_forming(tmp_path):
    now_s = (T + 3 * DAY_MS + 17 * MINUTE_MS + 5_000) / 1000
    source = SyntheticSource(5, clock=lambda: now_s)
    bars = source.bars("BTC/USDT", "1h", T, T + 10 * DAY_MS)
    assert bars[-1, 0] + 3_600_000 <= now_s * 1000 < bars[-1, 0] + 2 * 3_600_000


def test_csv_import_aggregates_up_and_refuses_finer_bars(tmp_path):
    market = SyntheticMarket(5)
    minutes = market.candles("ADA/USDT", "1m", T, T + DAY_MS)
    path = tmp_path / "ada.csv"
    lines = ["Timestamp,Open,High,Low,Close,Volume"] + [
        f"{int(r[0])}," + ",".join(repr(float(x)) for x in r[1:]) for r in minutes]
    path.write_text("\n".join(lines) + "\n")
    assert np.allclose(CsvSource(path).bars("ADA/USDT", "1h", T, T + DAY_MS), market.candles("ADA/USDT", "1h", T, T + DAY_MS))
    hourly = tmp_path / "hourly.csv"
    hourly.write_text("timestamp,open,high,low,close,volume\n2025-01-01T00:00Z,1,2,0.5,1.5,10\n2025-01-01T01:00Z,1.5,2,1,1,5\n")
    with pytest.raises(Exception, match="60-minute bars: it cannot make 5m"):
        CsvSource(hourly).bars("X/USDT", "5m", 0, 2 * 10**12)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n1,2,3,4,5\n")
    with pytest.raises(Exception, match="no volume column"):
        CsvSource(bad)


def test_a_recording_becomes_bars_that_hold_its_trades(small_recording):
    source = ReplaySource(small_recording)
    rec = load_recording(small_recording)
    series = rec.series["BTC/USDT"]
    bars = source.bars("BTC/USDT", "1m", 0, 2 * 10**12)
    assert len(bars) == 3 and bars[0, 0] == rec.meta.start_ms
    assert bars[:, 5].sum() == pytest.approx(sum(series.amounts))
    assert bars[:, 2].max() == max(series.prices) and bars[:, 3].min() == min(series.prices)
    ts = np.array([0, 10, 130_000], dtype=np.int64)
    out = bars_from_trades(ts, np.array([1.0, 2.0, 3.0]), np.ones(3), 60_000, 0, 180_000)
    assert out.tolist() == [[0, 1, 2, 1, 2, 2], [60_000, 2, 2, 2, 2, 0], [120_000, 3, 3, 3, 3, 1]]


async def test_ccxt_fill_pages_survives_rate_limits_and_resumes(tmp_path, loopback):
    store = CandleStore(tmp_path)
    since = (int(time.time() * 1000) // MINUTE_MS - 2_400) * MINUTE_MS
    until = since + 2_400 * MINUTE_MS
    config = loopback.ccxt_config() | {"enableRateLimit": False}
    source = CcxtSource("binance", config=config, page_limit=1000, backoff_s=0.05, label="loop")
    try:
        # A crash after the first page was written: only that page is in the store.
        async for page in source.pages("BTC/USDT", "1m", since, until):
            store.write(source.name, "BTC/USDT", "1m", page)
            break
        assert store.gaps("loop", "BTC/USDT", "1m", since, until) == [(since + 1000 * MINUTE_MS, until)]
        loopback.requests.clear()
        loopback.throttle_next(1, path="/api/v3/klines")  # HTTP 429 once: retried after a backoff
        assert await store.fill(source, "BTC/USDT", "1m", since, until) == 1_400
        klines = [r for r in loopback.requests if r[1] == "/api/v3/klines"]
        assert len(klines) == 3  # the throttled call, its retry, and the last page: not the first page again
        got = store.read("loop", "BTC/USDT", "1m", since, until)
        assert len(got) == 2_400 and np.all(np.diff(got[:, 0]) == MINUTE_MS)
        expected = loopback.feed.candles_at("BTC/USDT", "1m", since_ms=since, limit=2_400)
        assert got[:, 4].tolist() == [c.close for c in expected]
        loopback.fail_next(10, status=503, path="/api/v3/klines")
        failing = CcxtSource("binance", config=config, retries=1, backoff_s=0.01, label="loop2")
        with pytest.raises(FeedUnavailable):
            await store.fill(failing, "BTC/USDT", "1m", since, until)
        await failing.aclose()
    finally:
        await source.aclose()


def test_a_spreadsheet_export_with_a_bom_semicolons_blank_lines_and_repeats(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\ufeffDate;Open;High;Low;Close;Volume\n"
                    "2025-01-01T00:00:00Z;10;12;9;11;5\n\n"
                    "2025-01-01T00:01:00Z;11;13;10;12;7\n"
                    "2025-01-01T00:01:00Z;11;14;10;13;8\n", encoding="utf-8")
    bars = CsvSource(path).bars("X/USDT", "1m", 0, 2 * 10**12)
    assert bars.tolist() == [[1_735_689_600_000, 10, 12, 9, 11, 5], [1_735_689_660_000, 11, 14, 10, 13, 8]]
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1735689600000,10,12,9,nan,5\n")
    with pytest.raises(Exception, match="line 2: prices must be positive"):
        CsvSource(bad)
    worse = tmp_path / "worse.csv"
    worse.write_text("timestamp,open,high,low,close,volume\n1735689600000,10,12,9,11,5\nyesterday,1,1,1,1,1\n")
    with pytest.raises(Exception, match="line 3 is not a candle"):
        CsvSource(worse)


def test_bars_given_twice_are_stored_once(tmp_path):
    store = CandleStore(tmp_path)
    bars = SyntheticMarket(5).candles("BTC/USDT", "1m", T, T + 10 * MINUTE_MS)
    changed = bars[3:4].copy()
    changed[0, 5] = 99.0
    assert store.write("s", "BTC/USDT", "1m", np.concatenate([bars, changed])) == 10
    stored = store.read("s", "BTC/USDT", "1m", T, T + DAY_MS)
    assert len(stored) == 10 and stored[3, 5] == 99.0
