"""ReplayFeed: clock-anchored, deterministic, paced, looping without a seam, candles equal to their trades."""

from __future__ import annotations

import contextlib
import gzip

import pytest
from conftest import FakeClock

from services.market import FeedUnavailable, MarketDataError, MarketFeed, UnknownSymbol
from services.market.recording import load_recording, write_recording
from services.market.replay import ReplayFeed, default_recording
from services.market.simulate import simulate

T0 = 1_800_000_000.0  # seconds; a multiple of neither loop length used here


async def _take(stream, n):
    out = []
    async for tick in stream:
        out.append(tick)
        if len(out) == n:
            break
    await stream.aclose()
    return out


def test_loads_shipped_recording_and_is_a_market_feed():
    feed = ReplayFeed()  # its load time is measured in bench/market.py, not here
    assert isinstance(feed, MarketFeed)
    assert feed.mode == "Replay · simulated"
    assert ReplayFeed(speed=10).mode == "Replay · simulated · 10×"


async def test_open_loads_off_the_event_loop(small_recording):
    feed = await ReplayFeed.open(small_recording, speed=2.0, clock=lambda: T0)
    assert feed.mode == "Replay · simulated · 2×" and feed.recording.path == small_recording
    with pytest.raises(FeedUnavailable):
        await ReplayFeed.open(small_recording.with_name("missing.jsonl.gz"))


async def test_two_instances_agree_at_the_same_moment(small_recording):
    clock_a, clock_b = FakeClock(T0), FakeClock(T0)
    a = ReplayFeed(small_recording, clock=clock_a, sleep=clock_a.sleep)
    b = ReplayFeed(small_recording, clock=clock_b, sleep=clock_b.sleep)
    for symbol in ("BTC/USDT", "DOGE/USDT"):
        assert await a.ticker(symbol) == await b.ticker(symbol)
        assert await a.candles(symbol, "1m") == await b.candles(symbol, "1m")
        assert a.price_at(symbol, 1_799_999_990_123) == b.price_at(symbol, 1_799_999_990_123)
    ticks_a = await _take(a.ticks(["BTC/USDT", "ETH/USDT"]), 50)
    ticks_b = await _take(b.ticks(["BTC/USDT", "ETH/USDT"]), 50)
    assert ticks_a == ticks_b
    # A process started later joins the same timeline: its ticks are a suffix of the earlier one's.
    clock_c = FakeClock(ticks_a[20].timestamp_ms / 1000 - 0.0001)
    c = ReplayFeed(small_recording, clock=clock_c, sleep=clock_c.sleep)
    ticks_c = await _take(c.ticks(["BTC/USDT", "ETH/USDT"]), 20)
    assert ticks_c == ticks_a[20:40]


async def test_ticks_are_paced_by_the_clock_and_carry_wall_clock_time(small_recording):
    clock = FakeClock(T0)
    feed = ReplayFeed(small_recording, clock=clock, sleep=clock.sleep)
    stream = feed.ticks(["BTC/USDT", "SOL/USDT"])
    seen = []
    async for tick in stream:
        # A tick is emitted once the clock reached its timestamp, and not later than the same millisecond.
        assert int(clock.t * 1000) == tick.timestamp_ms
        seen.append(tick)
        if len(seen) == 300:
            break
    await stream.aclose()
    stamps = [t.timestamp_ms for t in seen]
    assert stamps == sorted(stamps)
    assert {t.symbol for t in seen} == {"BTC/USDT", "SOL/USDT"}
    # ~2 trades/s per symbol: 300 ticks take roughly a minute of (fake) time, spent in sleeps.
    assert 30 < clock.t - T0 < 150
    assert max(clock.slept) <= 1.0
    rate = len(seen) / (clock.t - T0)
    assert 2.0 < rate < 8.0


async def test_ticks_equal_the_deterministic_history(small_recording):
    clock = FakeClock(T0)
    feed = ReplayFeed(small_recording, clock=clock, sleep=clock.sleep)
    streamed = await _take(feed.ticks(["ETH/USDT"]), 100)
    history = feed.trades_between("ETH/USDT", streamed[0].timestamp_ms, streamed[-1].timestamp_ms + 1)
    assert history == streamed
    for tick in streamed[:20]:
        assert feed.price_at("ETH/USDT", tick.timestamp_ms) in {
            t.price for t in streamed if t.timestamp_ms == tick.timestamp_ms
        }


async def test_loop_boundary_is_seamless_and_timestamps_keep_rising(small_recording):
    rec = load_recording(small_recording)
    duration = rec.meta.duration_ms
    boundary_ms = (int(T0 * 1000) // duration + 1) * duration
    clock = FakeClock((boundary_ms - 20_000) / 1000)
    feed = ReplayFeed(small_recording, clock=clock, sleep=clock.sleep)
    ticks = []
    stream = feed.ticks(["BTC/USDT"])
    async for tick in stream:
        ticks.append(tick)
        if tick.timestamp_ms > boundary_ms + 20_000:
            break
    await stream.aclose()
    stamps = [t.timestamp_ms for t in ticks]
    assert stamps == sorted(stamps) and len(set(stamps)) > len(stamps) * 0.9
    before = [t for t in ticks if t.timestamp_ms < boundary_ms]
    after = [t for t in ticks if t.timestamp_ms >= boundary_ms]
    assert before and after
    steps = [abs(b.price / a.price - 1) for a, b in zip(ticks, ticks[1:], strict=False)]
    seam = abs(after[0].price / before[-1].price - 1)
    assert seam <= max(steps) and seam < 0.0005
    # The first trade after the boundary is the recording's first trade, rebased onto the wall clock.
    series = rec.series["BTC/USDT"]
    assert after[0].timestamp_ms == boundary_ms + series.offsets_ms[0]
    assert after[0].price == series.prices[0]


@pytest.mark.parametrize(("timeframe", "speed"), [("1m", 1.0), ("5m", 1.0), ("1m", 10.0), ("15m", 2.5)])
async def test_candles_equal_ohlcv_of_their_trades(small_recording, timeframe, speed):
    clock = FakeClock(T0 + 12.345)
    feed = ReplayFeed(small_recording, clock=clock, speed=speed)
    candles = await feed.candles("XRP/USDT", timeframe, limit=30)
    assert len(candles) == 30
    frame = {"1m": 60_000, "5m": 300_000, "15m": 900_000}[timeframe]
    now_ms = int(clock.t * 1000)
    assert candles[-1].timestamp_ms == now_ms // frame * frame
    assert [c.timestamp_ms for c in candles] == list(
        range(candles[0].timestamp_ms, candles[-1].timestamp_ms + 1, frame)
    )
    for candle in candles:
        trades = feed.trades_between(
            "XRP/USDT", candle.timestamp_ms, min(candle.timestamp_ms + frame, now_ms + 1)
        )
        assert trades, "a simulated minute always has XRP trades"
        prices = [t.price for t in trades]
        assert candle.open == prices[0] and candle.close == prices[-1]
        assert candle.high == max(prices) and candle.low == min(prices)
        assert candle.volume == pytest.approx(sum(t.amount for t in trades), rel=1e-9)
    since = candles[3].timestamp_ms - 1
    tail = await feed.candles("XRP/USDT", timeframe, since_ms=since, limit=5)
    assert tail == candles[3:8]
    assert await feed.candles("XRP/USDT", timeframe, since_ms=now_ms + frame) == []


async def test_history_at_start_has_200_one_minute_bars_from_earlier_loops():
    feed = ReplayFeed(clock=lambda: T0 + 30.5)
    candles = await feed.candles("BTC/USDT", "1m")
    assert len(candles) == 200  # 200 minutes: more than three loops of the one-hour recording
    assert all(
        c.volume > 0 and c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles
    )
    hourly = await feed.candles("BTC/USDT", "1h", limit=3)
    assert len(hourly) == 3


async def test_ticker_is_a_ccxt_ticker_consistent_with_price_at(small_recording):
    feed = ReplayFeed(small_recording, clock=lambda: T0)
    ticker = await feed.ticker("SOL/USDT")
    assert ticker["symbol"] == "SOL/USDT"
    assert ticker["last"] == feed.price_at("SOL/USDT", int(T0 * 1000))
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
    assert ticker["bid"] < ticker["last"] < ticker["ask"]
    assert ticker["timestamp"] <= int(T0 * 1000) and ticker["baseVolume"] > 0
    markets = await feed.markets()
    assert markets["SOL/USDT"]["precision"]["price"] == 0.01


def test_status_turns_stale_when_the_recording_goes_quiet(tmp_path):
    meta, trades = simulate(3, 1)
    quiet = [
        t
        for t in trades
        if not (t["symbol"] == "BTC/USDT" and 20_000 <= t["timestamp"] - meta.start_ms < 50_000)
    ]
    path = tmp_path / "gap.jsonl.gz"
    write_recording(path, meta, quiet)
    clock = FakeClock(0.0)
    feed = ReplayFeed(path, clock=clock, stale_after_s=10)
    loop_start_s = (int(T0 * 1000) // meta.duration_ms) * meta.duration_ms / 1000
    clock.t = loop_start_s + 15
    assert feed.status("BTC/USDT") == "live" and feed.status("ETH/USDT") == "live"
    clock.t = loop_start_s + 45
    assert feed.status("BTC/USDT") == "stale" and feed.status("ETH/USDT") == "live"
    last = feed.last_tick_ms("BTC/USDT")
    assert last is not None and last < (loop_start_s + 20) * 1000
    clock.t = loop_start_s + 52
    assert feed.status("BTC/USDT") == "live"


async def test_unknown_symbols_and_timeframes_are_clear_errors(small_recording):
    feed = ReplayFeed(small_recording, clock=lambda: T0)
    with pytest.raises(UnknownSymbol, match="PEPE/USDT is not in this replay"):
        await feed.ticker("PEPE/USDT")
    with pytest.raises(UnknownSymbol):
        await feed.candles("PEPE/USDT")
    with pytest.raises(UnknownSymbol):
        feed.ticks(["BTC/USDT", "PEPE/USDT"])
    with pytest.raises(UnknownSymbol):
        feed.price_at("PEPE/USDT", 0)
    with pytest.raises(MarketDataError, match="Timeframe '7m'"):
        await feed.candles("BTC/USDT", "7m")
    with pytest.raises(ValueError):
        ReplayFeed(small_recording, speed=0)


@pytest.mark.parametrize(
    "content",
    [
        b"not gzip at all",
        gzip.compress(b"{broken json\n"),
        gzip.compress(b'{"type":"meta","format":"other/9"}\n'),
        gzip.compress(b""),
    ],
)
def test_corrupt_recordings_raise_feed_unavailable(tmp_path, content):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(FeedUnavailable, match="bad.jsonl.gz"):
        ReplayFeed(path)


def test_truncated_and_missing_recordings_raise_feed_unavailable(tmp_path):
    with pytest.raises(FeedUnavailable, match="not found"):
        ReplayFeed(tmp_path / "nope.jsonl.gz")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(default_recording().read_bytes()[:200_000])
    with pytest.raises(FeedUnavailable, match="cannot be read|corrupt"):
        ReplayFeed(path)


async def test_aclose_ends_streams(small_recording):
    clock = FakeClock(T0)
    async with ReplayFeed(small_recording, clock=clock, sleep=clock.sleep) as feed:
        stream = feed.ticks(["ADA/USDT"])
        first = await anext(stream)
    assert first.symbol == "ADA/USDT"
    assert [t async for t in stream] == []


async def test_latest_value_streams_follow_the_replay(small_recording):
    from services.market import StreamingFeed

    clock = FakeClock(T0 + 59.0)
    feed = ReplayFeed(small_recording, clock=clock, sleep=clock.sleep)
    assert isinstance(feed, StreamingFeed)
    tickers = await _take(feed.tickers(["BTC/USDT", "ETH/USDT"]), 4)
    assert [t["symbol"] for t in tickers] == ["BTC/USDT", "ETH/USDT"] * 2
    assert tickers[2]["timestamp"] >= tickers[0]["timestamp"]
    tops = await _take(feed.book_tops(["SOL/USDT"]), 2)
    assert all(t.bid < t.ask for t in tops)
    clock.t = T0 + 50.0
    candles = await _take(feed.candle_updates("XRP/USDT", "1m"), 40)
    opens = [c.timestamp_ms for c in candles]
    assert opens == sorted(opens) and len(set(opens)) >= 2  # crossed a minute boundary
    closed = feed.candles_at("XRP/USDT", "1m", since_ms=opens[0], limit=1)[0]
    last_of_first = [c for c in candles if c.timestamp_ms == opens[0]][-1]
    assert last_of_first == closed


def test_open_feed_names_every_source(small_recording):
    from services.market import open_feed

    assert open_feed().mode == "Simulated market"  # the default: the synthetic market
    assert open_feed("replay").mode == "Replay · simulated"
    assert open_feed("synthetic:42").mode == "Simulated market · seed 42"
    assert open_feed(f"replay:{small_recording}", speed=4).mode == "Replay · simulated · 4×"
    with pytest.raises(MarketDataError, match="Unknown market source"):
        open_feed("carrier-pigeon")
    with pytest.raises(MarketDataError, match="loopback:HOST:PORT"):
        open_feed("loopback:localhost")
    with pytest.raises(MarketDataError, match="synthetic:SEED"):
        open_feed("synthetic:lucky")


async def test_batched_replay_hands_over_the_same_trades_with_fewer_wake_ups(small_recording):
    async def stream(batch_s: float) -> tuple[list, FakeClock]:
        clock = FakeClock(T0)
        feed = ReplayFeed(small_recording, clock=clock, sleep=clock.sleep, batch_s=batch_s)
        got = []
        async with contextlib.aclosing(feed.ticks(["BTC/USDT", "SOL/USDT", "ETH/USDT"])) as ticks:
            async for tick in ticks:
                assert tick.timestamp_ms <= clock() * 1000 <= tick.timestamp_ms + batch_s * 1000 + 1
                got.append(tick)
                if len(got) == 400:
                    break
        return got, clock

    one_by_one, each = await stream(0.0)
    batched, fewer = await stream(0.5)
    assert batched == one_by_one
    assert len(fewer.slept) < len(each.slept) / 3
