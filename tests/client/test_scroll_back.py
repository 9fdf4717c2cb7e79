"""The chart's scroll-back: panning left past the candles held loads the page before them from the history
store, filled from the session's market; the older candles are the synthetic market's own for that range."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np

from client.app import SessionServices, SkeetSession
from client.state import MAX_BARS, TIMEFRAMES
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.market import TIMEFRAME_MS
from services.market.history import CandleStore, FeedSource, SyntheticSource
from services.market.synthetic import SyntheticMarket
from services.market.synthetic_feed import SyntheticFeed
from services.signals import SignalEngine
from views.chart import ChartView
from views.common import Intents

SEED = 7


def session(tmp_path) -> SkeetSession:  # type: ignore[no-untyped-def]
    identity = LocalIdentity("scroller", key=b"k")
    services = SessionServices(
        feed=SyntheticFeed(SEED), engine=SignalEngine(), modes={}, backend_url="", market_source="synthetic",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    s = SkeetSession(None, services, watchlist=["BTC/USDT"])  # type: ignore[arg-type]
    s.market.store = CandleStore(tmp_path / "history")
    return s


def drag_far_left(chart: ChartView) -> None:
    """A mouse drag to the right by thousands of bars: as far back as the chart holds."""
    assert chart._scene is not None
    chart._on_scale_start(None)
    chart._on_scale_update(SimpleNamespace(pointer_count=1, horizontal_scale=1.0,
                                           focal_point_delta=SimpleNamespace(x=chart._scene.frame.slot * 50_000, y=0)))


async def until(condition, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def rows(candles) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([(c.timestamp_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles])


async def test_panning_past_the_held_candles_shows_the_synthetic_markets_older_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "4h" in TIMEFRAMES
    s = session(tmp_path)
    state = s.state
    try:
        await asyncio.wait_for(s.market.run(), 60)
        for timeframe in ("1m", "4h"):
            await asyncio.wait_for(s.market.set_timeframe(timeframe), 60)
            chart = ChartView(Intents(load_older=s.market.load_older))
            chart.render(state)
            held = list(state.candles["BTC/USDT"])
            assert len(held) == MAX_BARS
            drag_far_left(chart)  # to the oldest held bar, and beyond: the previous page is asked for
            await until(lambda: len(state.candles["BTC/USDT"]) >= 2 * MAX_BARS)
            chart.render(state)
            drag_far_left(chart)
            shown = chart._scene.bars  # type: ignore[union-attr]
            first = held[0].timestamp_ms
            assert shown[0].timestamp_ms < first - 300 * TIMEFRAME_MS[timeframe], timeframe  # well before
            frame = TIMEFRAME_MS[timeframe]
            expected = SyntheticMarket(SEED).candles("BTC/USDT", timeframe, shown[0].timestamp_ms,
                                                     shown[-1].timestamp_ms + frame)
            np.testing.assert_array_equal(rows(shown), expected)
            older = state.candles["BTC/USDT"]
            assert [c.timestamp_ms for c in older] == sorted({c.timestamp_ms for c in older})  # no bar twice
            assert older[MAX_BARS:] [:len(held) - 1] == held[:-1]  # the held bars are untouched
            assert f"{len(shown)} candles" in chart.semantics.label
    finally:
        await s.close()


async def test_a_live_feeds_candles_fill_the_store_as_its_own_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """FeedSource (the scroll-back over a ccxt or gateway feed) pages a feed's `candles`; here the feed is
    the synthetic one, so the store must end up holding the synthetic market's bars, each once."""
    feed = SyntheticFeed(SEED)
    store = CandleStore(tmp_path)
    source = FeedSource(feed, "feed-synthetic", page_limit=100)
    frame = TIMEFRAME_MS["15m"]
    until_ms = int(feed.candles_at("BTC/USDT", "15m", limit=1)[0].timestamp_ms)
    since_ms = until_ms - 350 * frame
    got = await store.candles(source, "BTC/USDT", "15m", since_ms, until_ms)
    np.testing.assert_array_equal(got, SyntheticSource(SEED).bars("BTC/USDT", "15m", since_ms, until_ms))
    assert len(got) == 350 and await store.fill(source, "BTC/USDT", "15m", since_ms, until_ms) == 0  # cached
