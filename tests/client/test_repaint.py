"""Repaints follow changes (issue 13): a trade after a quiet spell reaches the page's controls at once, a
burst of trades is painted at most once per gap, and the last trade of a burst is always painted. On a real
Flet page and session, fed through a real `MarketFeed` the test pushes trades into."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from flet.messaging.protocol import MessageAction
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.app import SessionServices, SkeetSession
from client.repaint import RepaintScheduler
from client.sessions import SessionRegistry
from client.state import AppState
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.signals import SignalEngine
from tests.backend.listfeed import ListFeed
from tests.client.flet_client import ClientConnection
from tests.client.test_alerts import until


class PatchLog(ClientConnection):
    """A client's end of the session (`ClientConnection`) that keeps when each control was patched (its
    id → the times of the messages that reached it)."""

    def __init__(self) -> None:
        super().__init__()
        self.patched: dict[int, list[float]] = {}

    def send_message(self, message: Any) -> None:
        super().send_message(message)
        if message.action == MessageAction.PATCH_CONTROL:
            for control_id in self.notified[-1]:
                self.patched.setdefault(control_id, []).append(time.time())


async def started(gap_s: float) -> tuple[PatchLog, ListFeed, SkeetSession, list[float]]:
    conn = PatchLog()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)
    conn.register(flet_session.get_page_patch())
    identity = LocalIdentity("repaint", key=b"k")
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    services = SessionServices(
        feed=feed, engine=SignalEngine(), modes={}, backend_url="http://127.0.0.1:9",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token, retries=0),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    app = SkeetSession(flet_session.page, services, watchlist=["BTC/USDT", "ETH/USDT"], registry=SessionRegistry())
    app.keep = flet_session  # type: ignore[attr-defined]  # the page holds its session weakly (and the tests
    # dispatch its events)
    # A long gap, so what the throttle does shows whatever the machine's load (a repaint's own cost is
    # milliseconds); the candle's gap equal to it, so no slow topic is held back past a fast repaint.
    app.repainter.min_gap_s = app.repainter.slow_gap_s = gap_s
    starts: list[float] = []
    app.repainter.on_painted = lambda start, _end: starts.append(start)
    await app.start()
    await feed.until_consumers(1)
    return conn, feed, app, starts


async def test_a_trade_after_a_quiet_spell_is_painted_at_once_and_the_next_one_after_the_gap() -> None:
    gap = 1.5
    conn, feed, app, starts = await started(gap)
    price = app.shell.watchlist.rows["BTC/USDT"].price
    assert app.repainter.gap_s == gap  # above max_gap_s: the gap is this whatever a repaint costs
    await until(lambda: bool(starts) and time.time() - starts[-1] > gap and not app.state.dirty)  # quiet
    sent = time.time()
    await feed.trade("BTC/USDT", 50_001.0)
    await until(lambda: price.value == "50,001.00" and conn.patched.get(price._i, [0])[-1] > sent)  # noqa: SLF001
    # Painted by the first repaint after it, which starts at once, unless something else (the exchange list
    # arriving, say) was painted less than a gap before: then at that one's gap end. Half a gap of slack for
    # a loaded machine; a 100 ms poll, or a throttle that always waits a gap, would not fit it.
    before = [s for s in starts if s <= sent]
    painted = next(s for s in starts if s > sent)
    assert painted - max(sent, before[-1] + gap) < gap / 2, (painted - sent, sent - before[-1])
    first = conn.patched[price._i][-1]  # noqa: SLF001
    await feed.trade("BTC/USDT", 50_002.0)  # right after: throttled, but painted (the trailing repaint)
    await until(lambda: price.value == "50,002.00" and conn.patched[price._i][-1] > first)  # noqa: SLF001
    assert conn.patched[price._i][-1] - first >= gap * 0.99  # noqa: SLF001  (not before the gap is over)
    await app.close()


async def test_a_burst_of_trades_is_painted_at_most_once_a_gap_and_ends_on_its_last_trade() -> None:
    gap = 0.2
    conn, feed, app, starts = await started(gap)
    price = app.shell.watchlist.rows["ETH/USDT"].price
    await until(lambda: bool(starts) and not app.state.dirty)
    first = time.time()
    for k in range(1, 61):
        await feed.trade("ETH/USDT", 3_000.0 + k)
        await asyncio.sleep(0.01)  # the load's pace (~60 trades over several gaps), not a synchronisation
    last = time.time()
    await until(lambda: price.value == "3,060.00")  # the last trade reached the page
    during = [s for s in starts if first <= s <= last]
    after = [s for s in starts if s > last]
    assert after, "no repaint after the burst's last trade"
    assert len(during) + 1 <= math.ceil((last - first) / gap) + 1, (len(during), last - first)
    assert all(b - a >= gap * 0.99 for a, b in zip(starts, starts[1:], strict=False))  # the throttle holds
    assert len(conn.patched.get(price._i, [])) < 60  # noqa: SLF001  (coalesced: fewer patches than trades)
    await app.close()


async def test_a_gone_client_gets_no_repaint_and_a_returning_one_gets_what_changed() -> None:
    conn, feed, app, starts = await started(0.05)
    flet_session = app.keep  # type: ignore[attr-defined]
    price = app.shell.watchlist.rows["BTC/USDT"].price
    await until(lambda: bool(starts) and not app.state.dirty)
    await flet_session.dispatch_event(app.page._i, "disconnect", None)  # noqa: SLF001  (what Flet dispatches)
    painted, looked = app.repainter.repaints, app.repainter.unshown
    for k in range(1, 6):
        await feed.trade("BTC/USDT", 50_000.0 + k)
    await until(lambda: app.repainter.unshown > looked)  # the scheduler saw the trades...
    assert app.repainter.repaints == painted and price.value != "50,005.00"  # ...and painted nothing
    await flet_session.dispatch_event(app.page._i, "connect", None)  # noqa: SLF001
    await until(lambda: price.value == "50,005.00" and app.repainter.repaints > painted)
    await app.close()


async def test_a_costly_repaint_backs_off_to_a_longer_gap() -> None:
    """A screen whose repaint takes 30 ms of CPU (at least 30 ms of wall time, whatever the machine's load)
    repaints at most every ~120 ms (4 × its cost), not every 30 ms: a slow session costs the server a bounded
    share of its loop."""
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")

    def costly(_dirty: set[str]) -> None:
        until_s = time.thread_time() + 0.03
        while time.thread_time() < until_s:
            pass

    repainter = RepaintScheduler(state, costly, showing=lambda: True)
    state.on_change = repainter.wake
    assert repainter.gap_s == repainter.min_gap_s
    task = asyncio.create_task(repainter.run())
    state.changed("quotes")
    await until(lambda: repainter.repaints == 1)
    assert repainter.gap_s >= 0.1
    task.cancel()
