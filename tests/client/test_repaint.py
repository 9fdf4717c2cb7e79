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
from services.market import Tick
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
    conn.session = flet_session  # its client answers the session's calls
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
    # Each repaint asked the client for an answer behind it (what paces repaints to the client), and got one.
    assert app.repainter.answered >= 2 and set(conn.calls) == {"get_capture"}
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


def answers_asked(loop: asyncio.AbstractEventLoop) -> tuple[list[asyncio.Future[None]], Any]:
    """An `ack` whose answers the test gives (`answers[k].set_result(None)`), as a client would."""
    answers: list[asyncio.Future[None]] = []

    def ask() -> asyncio.Future[None]:
        answers.append(loop.create_future())
        return answers[-1]
    return answers, ask


async def test_a_repaint_waits_for_a_late_answer_from_the_client() -> None:
    """A client behind (a slow link, a busy tab) answers late: the next repaint waits for that answer (what
    changed meanwhile joins it), so repaints never pile up in a socket and show later and later; once the
    answer is in, the repaint comes at once. The wait is the client's, not the server's: it does not
    lengthen the gap."""
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    painted: list[set[str]] = []
    answers, ask = answers_asked(asyncio.get_running_loop())
    repainter = RepaintScheduler(state, painted.append, showing=lambda: True, ack=ask, min_gap_s=0.01,
                                 ack_wait_s=30.0, late_s=0.0, ask_every_s=0.0)  # any answer not in yet is late
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    state.changed("quotes")
    await until(lambda: len(painted) == 1 and len(answers) == 1)
    state.changed("quotes")
    state.changed("positions")
    await asyncio.sleep(0.5)  # 50 gaps: without the wait, these changes would have been painted by now
    assert len(painted) == 1
    answers[0].set_result(None)
    await until(lambda: len(painted) == 2)
    assert painted[1] == {"quotes", "positions"}  # both changes, in one repaint
    assert repainter.answered == 1 and repainter.unanswered == 0
    assert repainter.gap_s < repainter.max_gap_s  # a 0.5 s wait counted as the loop's lag would make it max
    task.cancel()


async def test_answers_in_flight_and_not_late_hold_no_repaint_back() -> None:
    """A link's round trip is not a queue: with answers on their way (not yet late), repaints go on at the
    gap, so a phone far from the server is not repainted less often for it."""
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    painted: list[set[str]] = []
    answers, ask = answers_asked(asyncio.get_running_loop())
    repainter = RepaintScheduler(state, painted.append, showing=lambda: True, ack=ask, min_gap_s=0.01,
                                 ack_wait_s=60.0, late_s=30.0, ask_every_s=0.0)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    for n in (1, 2, 3, 4):
        state.changed("quotes")
        await until(lambda n=n: len(painted) == n)  # type: ignore[misc]
    # Four repaints with the first one's answer still on its way (one ask at a time: it measures the queue).
    assert len(answers) == 1 and not answers[0].done()
    answers[0].set_result(None)
    state.changed("quotes")
    await until(lambda: len(painted) == 5)
    assert len(answers) == 2  # answered: the next repaint asks again
    task.cancel()


async def test_a_client_that_never_answers_is_still_repainted_once_the_wait_is_over() -> None:
    """A client that stops answering (a frozen tab, lost messages) still gets its repaints, one per
    `ack_wait_s`: the screen never stays frozen on the server's side."""
    loop = asyncio.get_running_loop()
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    starts: list[float] = []
    repainter = RepaintScheduler(state, lambda _dirty: None, showing=lambda: True, ack=loop.create_future,
                                 min_gap_s=0.01, ack_wait_s=0.3, late_s=0.0, ask_every_s=0.0)
    repainter.on_painted = lambda start, _end: starts.append(start)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    state.changed("quotes")
    await until(lambda: len(starts) == 1)
    state.changed("quotes")
    await until(lambda: len(starts) == 2)
    assert starts[1] - starts[0] >= 0.3 * 0.99
    assert repainter.unanswered == 1 and repainter.answered == 0
    task.cancel()


async def test_the_client_is_asked_at_most_once_per_ask_every() -> None:
    """Asking after every repaint is two messages more each; one answer per `ask_every_s` tells the queue."""
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    painted: list[set[str]] = []
    answers, ask = answers_asked(asyncio.get_running_loop())

    def answered_at_once() -> asyncio.Future[None]:
        answer = ask()
        answer.set_result(None)
        return answer

    repainter = RepaintScheduler(state, painted.append, showing=lambda: True, ack=answered_at_once,
                                 min_gap_s=0.01, ask_every_s=30.0)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    for n in (1, 2, 3, 4, 5):
        state.changed("quotes")
        await until(lambda n=n: len(painted) == n)  # type: ignore[misc]
    assert len(answers) == 1 and repainter.answered == 1
    task.cancel()


async def test_a_client_falling_behind_is_repainted_less_often_and_a_far_one_is_not() -> None:
    """The client's backlog (answers slower than its quickest, the link's round trip) lengthens the gap: a tab
    whose main thread falls behind is sent no more than it takes in, before any answer is late. A client far
    away, whose answers are all slow alike, keeps the shortest gap; a tab that catches up gets it back."""
    loop = asyncio.get_running_loop()
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    took = {"s": 0.15}  # how long the client takes to answer: a far one to begin with

    def ask() -> asyncio.Future[None]:
        answer = loop.create_future()
        loop.call_later(took["s"], answer.set_result, None)
        return answer

    repainter = RepaintScheduler(state, lambda _dirty: None, showing=lambda: True, ack=ask, min_gap_s=0.01,
                                 max_gap_s=1.0, late_s=30.0, ask_every_s=0.0)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())

    async def answers(n: int) -> None:
        for _ in range(n):
            done = repainter.answered
            state.changed("quotes")
            await until(lambda done=done: repainter.answered > done)  # type: ignore[misc]

    await answers(6)
    # Bounds far from the figures (0 against 0.45 s): on a loaded machine, a timer fires tens of ms late.
    assert repainter.gap_s < 0.1  # far, not behind: the round trip alone holds nothing back
    took["s"] = 0.6  # the tab falls behind: 0.45 s more than its quickest answer
    await answers(4)
    assert repainter.backlog_s > 0.25 and repainter.gap_s >= repainter.backlog_s
    took["s"] = 0.15  # caught up
    await answers(10)
    assert repainter.gap_s < 0.1
    task.cancel()


async def test_a_repaint_shows_what_the_market_had_due_at_its_start_and_never_waits_long_for_it() -> None:
    """Before painting, the scheduler asks the market for the trades due now (`catch_up`) and paints once
    they are in the state; a market that does not answer holds the repaint back `CATCH_UP_WAIT_S` at most."""
    from client.repaint import CATCH_UP_WAIT_S

    loop = asyncio.get_running_loop()
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    seen: list[float | None] = []
    answers = {"at_once": True}

    def catch_up() -> asyncio.Future[None] | None:
        arrived: asyncio.Future[None] = loop.create_future()

        def hand_over() -> None:
            state.apply_tick(Tick("BTC/USDT", 1, 101.0, 0.5))
            arrived.set_result(None)

        if answers["at_once"]:  # the feed hands over in a later turn of the loop, as a parked stream does
            loop.call_soon(hand_over)
        return arrived

    def paint(_dirty: set[str]) -> None:
        quote = state.quotes.get("BTC/USDT")
        seen.append(quote.last if quote else None)

    starts: list[float] = []
    repainter = RepaintScheduler(state, paint, showing=lambda: True, min_gap_s=0.01, catch_up=catch_up)
    repainter.on_painted = lambda start, _end: starts.append(start)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    woke = time.time()
    state.changed("quotes")
    await until(lambda: len(seen) == 1)
    assert seen == [101.0]  # the trade the market handed over on asking is in this repaint
    answers["at_once"] = False  # a market that never answers
    woke = time.time()
    state.changed("quotes")
    await until(lambda: len(seen) == 2)
    assert starts[1] - woke >= CATCH_UP_WAIT_S * 0.9  # waited for it...
    assert starts[1] - woke < CATCH_UP_WAIT_S + 1.0  # ...but not for long (a loaded machine's slack)
    task.cancel()


async def test_a_hidden_tab_asks_the_market_for_nothing() -> None:
    """`catch_up` is for a repaint about to be sent: a hidden tab (or a gone client) hurries no feed."""
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    asked: list[float] = []
    showing = {"now": False}

    def catch_up() -> None:
        asked.append(time.time())

    painted: list[set[str]] = []
    repainter = RepaintScheduler(state, painted.append, showing=lambda: showing["now"], min_gap_s=0.01,
                                 slow_gap_s=0.01, catch_up=catch_up)
    state.on_change = repainter.wake
    task = asyncio.create_task(repainter.run())
    state.changed("quotes")
    await until(lambda: repainter.unshown >= 1)
    assert asked == [] and painted == []
    showing["now"] = True
    state.changed("quotes")
    await until(lambda: len(painted) == 1)
    assert len(asked) == 1
    task.cancel()
