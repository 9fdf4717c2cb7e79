"""SyntheticFeed: the synthetic market on the wall clock, the same in every process, candles equal to trades."""

from __future__ import annotations

import contextlib

import pytest

from services.market import StreamingFeed, SyntheticFeed, open_feed
from services.market.synthetic import MINUTE_MS
from services.market.types import MarketDataError, Tick, UnknownSymbol
from tests.market.conftest import FakeClock

T0 = 1_790_000_000.25  # 2026-09-21, mid-minute


def _bar(trades):  # type: ignore[no-untyped-def]
    prices = [t.price for t in trades]
    return prices[0], max(prices), min(prices), prices[-1], sum(t.amount for t in trades)


async def test_it_is_the_default_streaming_feed_and_says_it_is_simulated() -> None:
    async with open_feed() as feed:
        assert isinstance(feed, SyntheticFeed) and isinstance(feed, StreamingFeed)
        assert feed.mode == "Simulated market"
        markets = await feed.markets()
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(markets)
    assert markets["BTC/USDT"]["precision"] == {**markets["BTC/USDT"]["precision"], "price": 0.01, "amount": 0.00001}
    assert open_feed("synthetic:3").mode == "Simulated market · seed 3"


async def test_two_processes_see_the_same_market_at_the_same_moment() -> None:
    app, backend = SyntheticFeed(clock=lambda: T0), SyntheticFeed(clock=lambda: T0)
    for symbol in ("BTC/USDT", "DOGE/USDT"):
        assert await app.ticker(symbol) == await backend.ticker(symbol)
        assert app.candles_at(symbol, "5m", limit=50) == backend.candles_at(symbol, "5m", limit=50)
        assert app.order_book(symbol) == backend.order_book(symbol)
    now = int(T0 * 1000)
    assert app.numbered_trades_between("ETH/USDT", now - 90_000, now) == backend.numbered_trades_between(
        "ETH/USDT", now - 90_000, now)
    assert SyntheticFeed(8, clock=lambda: T0).price_at("BTC/USDT", now) != app.price_at("BTC/USDT", now)


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h"])
def test_candles_up_to_now_are_made_of_the_trades_the_last_one_forming(timeframe: str) -> None:
    feed = SyntheticFeed(clock=lambda: T0)
    now = int(T0 * 1000)
    bars = feed.candles_at("SOL/USDT", timeframe, limit=3)
    frame = bars[1].timestamp_ms - bars[0].timestamp_ms
    assert len(bars) == 3 and bars[-1].timestamp_ms == now // frame * frame
    for bar in bars:
        trades = feed.trades_between("SOL/USDT", bar.timestamp_ms, min(bar.timestamp_ms + frame, now + 1))
        o, h, lo, c, v = _bar(trades)
        assert (bar.open, bar.high, bar.low, bar.close) == (o, h, lo, c)
        assert bar.volume == pytest.approx(v, rel=1e-9)
    assert bars[-1].close == feed.price_at("SOL/USDT", now)


def test_history_reaches_back_years_without_repeating() -> None:
    feed = SyntheticFeed(clock=lambda: T0)
    days = feed.candles_at("BTC/USDT", "1d", limit=600)
    assert len(days) == 600
    closes = [d.close for d in days]
    assert len(set(closes)) == 600
    since = feed.candles_at("BTC/USDT", "4h", since_ms=days[0].timestamp_ms, limit=6)
    assert since[0].open == days[0].open and max(b.high for b in since) == days[0].high


def test_ticker_covers_the_last_24_hours_of_trades() -> None:
    feed = SyntheticFeed(clock=lambda: T0)
    now = int(T0 * 1000)
    ticker = feed.ticker_now("ETH/USDT")
    minutes = feed.candles_at("ETH/USDT", "1m", since_ms=now // MINUTE_MS * MINUTE_MS - 1439 * MINUTE_MS, limit=1440)
    assert len(minutes) == 1440
    assert ticker["open"] == minutes[0].open and ticker["last"] == minutes[-1].close
    assert ticker["high"] == max(m.high for m in minutes) and ticker["low"] == min(m.low for m in minutes)
    assert ticker["baseVolume"] == pytest.approx(sum(m.volume for m in minutes))
    assert ticker["bid"] <= ticker["last"] <= ticker["ask"] and ticker["bid"] < ticker["ask"]
    assert ticker["timestamp"] == feed.last_tick_ms("ETH/USDT") <= now


def test_order_book_and_recent_trades_are_ccxt_structures_around_the_last_price() -> None:
    feed = SyntheticFeed(clock=lambda: T0)
    book = feed.order_book("XRP/USDT", limit=5)
    bids, asks = [p for p, _ in book["bids"]], [p for p, _ in book["asks"]]
    assert len(bids) == len(asks) == 5 and bids == sorted(bids, reverse=True) and asks == sorted(asks)
    last = feed.price_at("XRP/USDT", int(T0 * 1000))
    assert bids[0] <= last <= asks[0] and all(a > 0 for _, a in book["bids"] + book["asks"])
    taker = feed.recent_trades("XRP/USDT", limit=1)[0]["side"]
    assert (asks[0] if taker == "buy" else bids[0]) == last  # the last buyer took the ask, a seller the bid
    assert asks[0] - bids[0] == pytest.approx(0.0001)  # one tick wide
    trades = feed.recent_trades("XRP/USDT", limit=50)
    assert len(trades) == 50 and trades[-1]["price"] == last
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    assert len({t["id"] for t in trades}) == 50 and {t["side"] for t in trades} <= {"buy", "sell"}


async def test_ticks_arrive_as_the_clock_passes_them_in_time_order() -> None:
    clock = FakeClock(T0)
    feed = SyntheticFeed(clock=clock, sleep=clock.sleep)
    start = int(T0 * 1000) + 1
    got = []
    async with contextlib.aclosing(feed.ticks(["BTC/USDT", "ETH/USDT"])) as ticks:
        async for tick in ticks:
            assert tick.timestamp_ms <= clock() * 1000  # never ahead of the clock
            got.append(tick)
            if tick.timestamp_ms >= start + 70_000:
                break
    end = got[-1].timestamp_ms + 1
    expected = sorted(feed.trades_between("BTC/USDT", start, end) + feed.trades_between("ETH/USDT", start, end),
                      key=lambda t: t.timestamp_ms)
    assert [t.timestamp_ms for t in got] == [t.timestamp_ms for t in expected]
    assert sorted(got, key=lambda t: (t.timestamp_ms, t.symbol)) == sorted(expected, key=lambda t: (t.timestamp_ms, t.symbol))


async def test_candle_updates_follow_the_forming_bar_and_close_it() -> None:
    clock = FakeClock(T0 + 50)  # ten seconds before a minute closes
    feed = SyntheticFeed(clock=clock, sleep=clock.sleep)
    seen = []
    async with contextlib.aclosing(feed.candle_updates("BTC/USDT", "1m")) as updates:
        async for bar in updates:
            seen.append(bar)
            if bar.timestamp_ms > seen[0].timestamp_ms and len(seen) > 3:
                break
    first_open = seen[0].timestamp_ms
    closed = [b for b in seen if b.timestamp_ms == first_open][-1]
    assert closed == SyntheticFeed(clock=lambda: T0 + 600).candles_at("BTC/USDT", "1m", since_ms=first_open, limit=1)[0]


def test_bad_requests_are_refused_in_words() -> None:
    feed = SyntheticFeed(clock=lambda: T0)
    with pytest.raises(UnknownSymbol):
        feed.ticker_now("LUNA/USDT")
    with pytest.raises(MarketDataError, match="Timeframe"):
        feed.candles_at("BTC/USDT", "3m")
    with pytest.raises(MarketDataError, match="at least one symbol"):
        feed.ticks([])
    assert feed.candles_at("BTC/USDT", "1m", since_ms=int(T0 * 1000) + 3_600_000) == []


async def test_batched_ticks_are_the_same_trades_with_one_wake_up_per_batch() -> None:
    """With `batch_s` the stream hands over what is due at most once per batch: the same trades in the
    same order as one wake-up per trade, none ahead of the clock or more than a batch behind it."""
    symbols = [f"{base}/USDT" for base in ("BTC", "ETH", "SOL", "BNB")]

    async def stream(batch_s: float) -> tuple[list[Tick], FakeClock]:
        clock = FakeClock(T0)
        feed = SyntheticFeed(clock=clock, sleep=clock.sleep, batch_s=batch_s)
        got: list[Tick] = []
        async with contextlib.aclosing(feed.ticks(symbols)) as ticks:
            async for tick in ticks:
                assert tick.timestamp_ms <= clock() * 1000  # never ahead of the clock
                assert clock() * 1000 - tick.timestamp_ms <= batch_s * 1000 + 1  # at most a batch late
                got.append(tick)
                if tick.timestamp_ms >= T0 * 1000 + 30_000:
                    break
        return got, clock

    one_by_one, clock_each = await stream(0.0)
    batched, clock_batched = await stream(0.5)  # this market trades ~7 times a second over these four
    assert batched == one_by_one
    assert len(clock_batched.slept) <= 30 / 0.5 + 2 < len(clock_each.slept) / 3
    assert open_feed("synthetic", batch_s=0.05)._batch_s == 0.05  # what the app asks for reaches the feed


def test_a_feed_sleeps_until_the_next_trade_is_due_but_a_batch_at_least_and_a_second_at_most() -> None:
    """The pacing rule the synthetic and replay feeds share (services.market.pacing)."""
    from services.market.pacing import MAX_SLEEP_S, wake_delay_s

    assert wake_delay_s(10_000, woke_s=9.995, clock_s=9.996, batch_s=0.0) == pytest.approx(0.0045)  # mid-ms
    assert wake_delay_s(10_000, woke_s=9.995, clock_s=9.996, batch_s=0.02) == pytest.approx(0.019)  # one batch
    assert wake_delay_s(9_000, woke_s=9.995, clock_s=9.996, batch_s=0.0) == 0.0  # overdue: at once
    assert wake_delay_s(60_000, woke_s=9.995, clock_s=9.996, batch_s=0.005) == MAX_SLEEP_S  # clock re-read
