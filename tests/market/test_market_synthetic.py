"""The synthetic market: pure in (seed, symbol, time), candles and trades agree, and it looks like crypto.

Each stylized fact is checked statistically on a fixed seed (deterministic, a fraction of a second each).
"""

from __future__ import annotations

import numpy as np
import pytest

from services.market.markets import decimals
from services.market.simulate import SYMBOLS
from services.market.synthetic import DAY_MS, MINUTE_MS, ORIGIN_MS, SyntheticMarket, aggregate
from services.market.types import TIMEFRAME_MS, MarketDataError, UnknownSymbol

SEED = 11
START = ORIGIN_MS + 400 * DAY_MS  # a Monday-independent point well inside the history


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(SEED)


@pytest.fixture(scope="module")
def btc_1m(market) -> np.ndarray:
    """120 days of BTC 1-minute bars (172,800)."""
    return market.candles("BTC/USDT", "1m", START, START + 120 * DAY_MS)


@pytest.fixture(scope="module")
def hourly(market) -> dict[str, np.ndarray]:
    """700 days of 1-hour bars of every symbol."""
    return {s.symbol: market.candles(s.symbol, "1h", ORIGIN_MS, ORIGIN_MS + 700 * DAY_MS) for s in SYMBOLS}


def _log_returns(bars: np.ndarray) -> np.ndarray:
    return np.diff(np.log(bars[:, 4]))


def _autocorr(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


# -- a pure function of (seed, symbol, time) ---------------------------------------------------------------
def test_any_range_is_the_same_however_it_is_asked_for(market):
    whole = market.candles("ETH/USDT", "1m", START, START + 3 * DAY_MS)
    middle = SyntheticMarket(SEED).candles("ETH/USDT", "1m", START + DAY_MS + 7 * MINUTE_MS, START + DAY_MS + 90 * MINUTE_MS)
    assert np.array_equal(middle, whole[1440 + 7:1440 + 90])
    assert len(whole) == 3 * 1440 and np.all(np.diff(whole[:, 0]) == MINUTE_MS)
    other_seed = SyntheticMarket(SEED + 1).candles("ETH/USDT", "1m", START, START + 3 * DAY_MS)
    assert not np.array_equal(other_seed[:, 4], whole[:, 4])


def test_bars_are_consistent_on_the_tick_and_lot_and_join_across_days(market):
    for spec in SYMBOLS:
        bars = market.candles(spec.symbol, "1m", START - 2 * MINUTE_MS * 600, START + 2 * DAY_MS)
        o, h, lo, c, v = bars[:, 1:].T
        assert np.all(lo <= np.minimum(o, c)) and np.all(h >= np.maximum(o, c)) and np.all(lo > 0)
        assert np.array_equal(o[1:], c[:-1])  # continuous: each minute opens at the last close, midnight too
        for column, step in ((bars[:, 1:5], spec.price_tick), (v, spec.amount_step)):
            units = column / step
            assert np.allclose(units, np.round(units), atol=1e-6)
        assert np.all(v >= 4 * spec.amount_step)


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "4h", "1d"])
def test_higher_timeframes_aggregate_the_minutes(market, timeframe):
    frame = TIMEFRAME_MS[timeframe]
    since = START + 5 * MINUTE_MS  # not on a bar boundary: the first bar is the next whole one
    bars = market.candles("SOL/USDT", timeframe, since, START + 6 * DAY_MS)
    first = -(-since // frame) * frame
    assert bars[0, 0] == first and np.all(np.diff(bars[:, 0]) == frame)
    minutes = market.candles("SOL/USDT", "1m", first, int(bars[-1, 0]) + frame)
    expected = aggregate(minutes, frame // MINUTE_MS)
    assert np.allclose(bars, expected)
    assert np.allclose(bars[:, 5], [minutes[i:i + frame // MINUTE_MS, 5].sum() for i in range(0, len(minutes), frame // MINUTE_MS)])


def test_bad_requests_are_refused_in_words(market):
    with pytest.raises(UnknownSymbol, match="not in the simulated market"):
        market.candles("LUNA/USDT", "1m", START, START + DAY_MS)
    with pytest.raises(MarketDataError, match="Timeframe"):
        market.candles("BTC/USDT", "2m", START, START + DAY_MS)
    with pytest.raises(MarketDataError, match="starts on 2024-01-01"):
        market.minute_candles("BTC/USDT", ORIGIN_MS // MINUTE_MS - 10, ORIGIN_MS // MINUTE_MS + 10)
    assert market.candles("BTC/USDT", "1m", START, START).shape == (0, 6)


# -- trades agree with candles ---------------------------------------------------------------------------
def test_each_minutes_trades_make_its_candle_exactly(market):
    rng = np.random.default_rng(0)
    for spec in SYMBOLS:
        for minute in START // MINUTE_MS + rng.integers(0, 200 * 1440, 6):
            o, h, lo, c, v = market.minute_candles(spec.symbol, int(minute), int(minute) + 1)[0, 1:]
            ts, price, amount, _ = market.minute_trades(spec.symbol, int(minute))
            assert price[0] == o and price[-1] == c and price.max() == h and price.min() == lo
            assert np.all(np.diff(ts) > 0) and ts[0] >= minute * MINUTE_MS and ts[-1] < (minute + 1) * MINUTE_MS
            lots = np.round(amount / spec.amount_step).astype(np.int64)
            assert lots.min() >= 1 and lots.sum() == round(v / spec.amount_step)
            assert np.allclose(price / spec.price_tick, np.round(price / spec.price_tick), atol=1e-6)
            assert np.array_equal(np.round(amount, decimals(spec.amount_step)), amount)


def test_numbered_trades_span_minutes_with_rising_ids(market):
    since, until = START + 30_000, START + 3 * MINUTE_MS + 1_000
    trades = market.numbered_trades("XRP/USDT", since, until)
    ids = [i for i, _ in trades]
    assert ids == sorted(set(ids)) and all(since <= t.timestamp_ms < until for _, t in trades)
    bars = market.candles("XRP/USDT", "1m", START + MINUTE_MS, START + 3 * MINUTE_MS)
    inside = [t for _, t in trades if START + MINUTE_MS <= t.timestamp_ms < START + 3 * MINUTE_MS]
    assert sum(t.amount for t in inside) == pytest.approx(bars[:, 5].sum())
    assert {t.side for _, t in trades} == {"buy", "sell"}


# -- stylized facts ----------------------------------------------------------------------------------------
def test_returns_are_close_to_uncorrelated(btc_1m, hourly):
    r = _log_returns(btc_1m)
    assert all(abs(_autocorr(r, lag)) < 0.03 for lag in (1, 2, 3, 5, 10))
    rh = _log_returns(hourly["BTC/USDT"])
    assert all(abs(_autocorr(rh, lag)) < 0.05 for lag in (1, 2, 24))


def test_volatility_clusters(btc_1m, hourly):
    a = np.abs(_log_returns(btc_1m))
    assert _autocorr(a, 1) > 0.08 and _autocorr(a, 60) > 0.04  # minutes: intraday clustering
    ah = np.abs(_log_returns(hourly["BTC/USDT"]))
    assert _autocorr(ah, 24) > 0.1 and _autocorr(ah, 24 * 7) > 0.05  # days and weeks: multi-scale


def test_returns_have_fat_tails(btc_1m, hourly):
    r = _log_returns(btc_1m)
    assert ((r - r.mean()) ** 4).mean() / r.var() ** 2 > 10  # a normal's kurtosis is 3
    rh = _log_returns(hourly["BTC/USDT"])
    assert ((rh - rh.mean()) ** 4).mean() / rh.var() ** 2 > 5


def test_rare_jumps(btc_1m):
    r = np.abs(_log_returns(btc_1m))
    jumps = int((r > 0.012).sum())  # a 1.2 % minute in BTC: dozens of typical minutes at once
    assert 3 <= jumps <= 40  # over 120 days (172,800 minutes): a handful, not a regime


def test_volume_rises_with_volatility(btc_1m, hourly):
    r = np.abs(_log_returns(btc_1m))
    assert np.corrcoef(btc_1m[1:, 5], r)[0, 1] > 0.3
    h = hourly["BTC/USDT"]
    assert np.corrcoef(np.log(h[1:, 5]), np.log(h[1:, 2] / h[1:, 3]))[0, 1] > 0.4  # busier hours swing more


def test_daily_and_weekly_seasonality(btc_1m, hourly):
    r = np.abs(_log_returns(btc_1m))
    hour = (btc_1m[1:, 0] // 3_600_000) % 24
    assert r[(hour >= 14) & (hour < 16)].mean() > 1.3 * r[(hour >= 2) & (hour < 4)].mean()
    h = hourly["BTC/USDT"]
    rh = np.abs(_log_returns(h))
    weekday = (h[1:, 0] // DAY_MS + 3) % 7  # Monday = 0
    weekend = weekday >= 5
    assert rh[weekend].mean() < 0.85 * rh[~weekend].mean()
    assert h[1:, 5][weekend].mean() < 0.85 * h[1:, 5][~weekend].mean()


def test_symbols_move_with_btc_as_real_ones_do(hourly):
    btc = _log_returns(hourly["BTC/USDT"])
    corr = {s: np.corrcoef(btc, _log_returns(bars))[0, 1] for s, bars in hourly.items() if s != "BTC/USDT"}
    assert 0.7 < corr["ETH/USDT"] < 0.95
    assert all(0.5 < c < 0.95 for c in corr.values())
    assert corr["ETH/USDT"] > corr["XRP/USDT"]  # higher beta, higher correlation


def test_price_levels_and_volatility_are_realistic(hourly):
    for spec in SYMBOLS:
        closes = hourly[spec.symbol][:, 4]
        assert 0.15 * spec.price < closes.min() and closes.max() < 5 * spec.price
        daily = np.diff(np.log(closes[::24]))
        assert 0.5 * spec.annual_vol < daily.std() * np.sqrt(365) < 1.6 * spec.annual_vol


def test_history_never_repeats(hourly):
    r = _log_returns(hourly["BTC/USDT"])
    weeks = r[: len(r) // 168 * 168].reshape(-1, 168)
    corr = np.corrcoef(weeks)
    np.fill_diagonal(corr, 0)
    assert np.abs(corr).max() < 0.5  # no week of hourly moves resembles another one
