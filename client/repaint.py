"""`RepaintScheduler`: when a session repaints. A state change wakes it; it repaints at once unless the last
repaint started less than a gap ago, and then at the gap's end (a leading-edge throttle whose trailing repaint
always comes, so the last tick of a burst reaches the screen). The gap grows with what a repaint costs (its
wall time: on a server short of CPU, the same repaint takes longer, and painting less leaves the trades the
CPU) and with how late the event loop starts a repaint (a loop that is behind, with many sessions, paints
less and keeps up with the trades); the chart's forming candle and the other heavy panels (`SLOW_TOPICS`)
repaint at most every `SLOW_GAP_S`, since prices are what a trader reads now and a candle at 10 frames a
second looks the same.

The client sets the pace too: after a repaint the scheduler asks the client for an answer (`ack`, a round
trip behind that repaint's message), one at a time and at most every `ASK_EVERY_S` (one answer on its way
measures the queue behind it; asking after every repaint cost ~1/4 of a session's CPU at 50 repaints a
second). An answer later than `ANSWER_LATE_S` means messages are queueing on the
way (a phone on a link slower than what is sent, a tab that cannot keep up): the next repaint then waits for
it (at most until `ACK_WAIT_S` after the late repaint), so a slow client is sent repaints as fast as it takes
them in, each with the latest state, rather than a queue that grows in the socket and shows later and later.
Answers in flight and not late hold nothing back: a link's round trip alone does not slow repaints down.
Before any answer is late, the client's backlog sets the gap too: how much longer its answers take than its
quickest of late (that one is the round trip with nothing queued). A tab whose main thread falls behind (a
phone, a browser with no GPU drawing a big desk) then gets repaints no faster than it takes them in.

Just before it repaints, the scheduler asks the market for the trades due now (`catch_up`: a paced feed hands
over on its own every `FEED_BATCH_S`, and sooner when asked), so a repaint shows the market as of its own
start while the feed wakes the process seldom; it waits for them at most `CATCH_UP_WAIT_S`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from client.state import AppState

log = logging.getLogger(__name__)

# At most ~20 repaints a second, and no faster than the client takes them in (`ack`, the backlog). 20 ms was quicker
# on a fast machine (bench/README) but on a slower one the browser is then saturated at any gap and the server
# pays ~5 points of a core a session more for it. (The typed text a CI run lost at 20 ms was a first tap that
# Flutter's semantics tree takes back, with no repaint in between: tests/browser.py `tap_to_type`.)
MIN_GAP_S = 0.05
SLOW_GAP_S = 0.1  # the chart's candle, the book, signals, the equity curve: ~10 a second
MAX_GAP_S = 0.25  # the slowest a session backs off to: the screen never looks frozen
COST_FACTOR = 4.0  # a gap at least this many times a repaint's (smoothed) time: repainting takes <= ~1/4 of the loop
# ...and at least this many times how late the loop started repaints (smoothed). N sessions repainting in turn
# make each one wait ~(N-1)/2 repaints, so repaints fill ~2/LAG_FACTOR of the loop at most: half, leaving the
# rest to the trades (with 2 it would fill all of it).
LAG_FACTOR = 4.0
ACK_WAIT_S = 1.0  # the longest a repaint waits for the client's answer to an earlier one
ANSWER_LATE_S = 0.25  # an answer not in this long after its repaint is late: the next repaint waits for it
ASK_EVERY_S = 0.1  # the least time between two asks
# ...and at least this many times the client's backlog: how much longer its answers take than the quickest of the
# last `BASE_ANSWERS` (the link's round trip, no queue). A tab whose main thread is behind answers later, and a
# gap that long sends no more than it takes in: no queue forms in it, long before an answer is late.
BACKLOG_FACTOR = 1.0
BASE_ANSWERS = 50  # ~5 s of answers at one every ASK_EVERY_S
SLOW_TOPICS = frozenset({"candles", "depth", "signals", "equity"})
CATCH_UP_WAIT_S = 0.02  # the longest a repaint waits for the market's due trades (they take ~1 ms to hand over)


class RepaintScheduler:
    """Runs `paint(topics)` for what changed in `state` (its dirty topics), throttled as the module says.

    `catch_up()` brings the market's due trades into the state before a repaint (None: nothing to wait for).
    `showing()` says whether a repaint can reach a screen (a hidden tab or a disconnected client: no); what
    changed meanwhile stays dirty and is painted on the next `wake()` after it shows again. `ack()` returns
    once the client has taken in every message sent before the call (none: repaints are paced by the gap
    alone). `run()` is the loop (a session task); `wake()` is cheap enough to call on every tick
    (`AppState.on_change`)."""

    def __init__(self, state: AppState, paint: Callable[[set[str]], None], *, showing: Callable[[], bool],
                 ack: Callable[[], Awaitable[object]] | None = None,
                 min_gap_s: float = MIN_GAP_S, slow_gap_s: float = SLOW_GAP_S, max_gap_s: float = MAX_GAP_S,
                 cost_factor: float = COST_FACTOR, lag_factor: float = LAG_FACTOR,
                 ack_wait_s: float = ACK_WAIT_S, late_s: float = ANSWER_LATE_S,
                 ask_every_s: float = ASK_EVERY_S, backlog_factor: float = BACKLOG_FACTOR,
                 catch_up: Callable[[], asyncio.Future[Any] | None] | None = None) -> None:
        self._state = state
        self._catch_up = catch_up
        self._paint = paint
        self._showing = showing
        self.ack = ack  # None: repaints paced by the gap alone
        self.ack_wait_s = ack_wait_s
        self.late_s = late_s
        self.ask_every_s = ask_every_s
        self._asked_at_s = -ask_every_s  # loop time of the last ask
        self._asked: tuple[asyncio.Future[None], float] | None = None  # (the answer on its way, loop time asked)
        self.min_gap_s = min_gap_s
        self.slow_gap_s = slow_gap_s
        self.max_gap_s = max_gap_s
        self.cost_factor = cost_factor
        self.lag_factor = lag_factor
        self.backlog_factor = backlog_factor
        self._answers: deque[float] = deque(maxlen=BASE_ANSWERS)  # the last answers' times (their least: the base)
        self.backlog_s = 0.0  # how much longer than the base the client's answers take, smoothed
        self._wanted = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None  # the wake for slow topics held back
        self._next_s = 0.0  # loop time before which no repaint starts
        self._slow_next_s = 0.0  # loop time before which slow topics are held back
        self._cost_s = 0.0  # a repaint's wall time, smoothed
        self._lag_s = 0.0  # how late repaints started (after the change, or the gap's end), smoothed
        self._woken_s = 0.0  # loop time of the first change since the last repaint
        self.repaints = 0
        self.answered = 0  # the client's answers after repaints
        self.unanswered = 0  # answers not come by their deadline (repaints went ahead without them)
        self.answer_s = 0.0  # how long the client took to answer, smoothed (its backlog plus the round trip)
        self.unshown = 0  # times changes were found with no screen to paint them on (kept dirty for later)
        self.on_painted: Callable[[float, float], None] | None = None  # (started, ended), time.time(): the bench's

    @property
    def gap_s(self) -> float:
        """The least time between two repaints' starts now: `min_gap_s`, or more (up to `max_gap_s`) for a
        costly repaint, a loop that is behind or a client with a backlog."""
        behind = max(self.cost_factor * self._cost_s, self.lag_factor * self._lag_s,
                     self.backlog_factor * self.backlog_s)
        return max(self.min_gap_s, min(self.max_gap_s, behind))

    def wake(self) -> None:
        """Something changed: a repaint comes now or at the gap's end."""
        if not self._wanted.is_set():
            self._woken_s = time.monotonic()  # the event loop's clock (asyncio's loop.time())
            self._wanted.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wanted.wait()
                delay = self._next_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the throttle: changes meanwhile join this repaint
                due = loop.time()  # how late the loop is, before any wait for the client
                await self._answered(loop)  # changes meanwhile join this repaint too
                if self._state.dirty and self._showing():  # a repaint follows: a hidden tab hurries no feed
                    await self._caught_up()
                self._wanted.clear()
                now = loop.time()
                if not self._state.dirty:
                    continue
                if not self._showing():
                    self._next_s = now + self.slow_gap_s  # hidden: look again at most ~10 times a second
                    self.unshown += 1
                    continue
                dirty = self._hold_slow(self._state.take_dirty(), now)
                if dirty:
                    lag = max(0.0, due - max(self._woken_s, self._next_s))
                    self._lag_s = 0.7 * self._lag_s + 0.3 * lag
                    self._repaint(dirty, now)
                    self._ask(loop)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._asked is not None:
                self._asked[0].cancel()

    def client_changed(self) -> None:
        """A reconnected (reloaded) client: the answers asked of the one before will not come (Flet drops
        those calls after their timeout)."""
        self._asked = None
        self._answers.clear()
        self.backlog_s = 0.0

    async def _caught_up(self) -> None:
        """The market's trades due now are in the state (at most `CATCH_UP_WAIT_S` of waiting)."""
        arriving = self._catch_up() if self._catch_up is not None else None
        if arriving is not None:
            await asyncio.wait({arriving}, timeout=CATCH_UP_WAIT_S)  # not cancelled: other sessions wait on it too

    async def _answered(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for the answer if it is late (until `ack_wait_s` after its repaint at most)."""
        if self._asked is None:
            return
        answer, asked_s = self._asked
        if not answer.done():
            age = loop.time() - asked_s
            if age < self.late_s:
                return  # in flight, not late: nothing is queueing
            if age < self.ack_wait_s:
                await asyncio.wait({answer}, timeout=self.ack_wait_s - age)
            if not answer.done():
                self.unanswered += 1  # the repaint goes ahead without it (Flet drops the call later)
        self._asked = None

    def _ask(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        if self.ack is None or now - self._asked_at_s < self.ask_every_s:
            return
        if self._asked is not None and not self._asked[0].done():
            return  # one on its way: what queues behind it delays it, and so its answer tells
        self._asked_at_s = now
        self._asked = (asyncio.ensure_future(self._round_trip(self.ack, now)), now)

    async def _round_trip(self, ack: Callable[[], Awaitable[object]], asked_s: float) -> None:
        try:
            await ack()
        except Exception as exc:  # a client gone or a session closing: the next repaint just goes ahead
            log.debug("no answer from the client: %s", exc)
            return
        took = asyncio.get_running_loop().time() - asked_s
        self.answered += 1
        self.answer_s = 0.7 * self.answer_s + 0.3 * took if self.answer_s else took
        self._answers.append(took)
        self.backlog_s = 0.7 * self.backlog_s + 0.3 * (took - min(self._answers))

    def _hold_slow(self, dirty: set[str], now: float) -> set[str]:
        """Keep slow topics back until their gap is over (they stay dirty, and a timer wakes the loop then)."""
        slow = dirty & SLOW_TOPICS
        if not slow and "all" not in dirty:
            return dirty
        if "all" in dirty or now >= self._slow_next_s:
            self._slow_next_s = now + max(self.slow_gap_s, self.gap_s)
            return dirty
        self._state.dirty |= slow
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(self._slow_next_s, self._slow_due)
        return dirty - slow

    def _slow_due(self) -> None:
        self._timer = None
        self.wake()

    def _repaint(self, dirty: set[str], now: float) -> None:
        started, wall = time.perf_counter(), time.time()
        try:
            self._paint(dirty)
        except Exception:
            log.exception("repaint failed")
            self._state.dirty.add("all")  # the next change sends the whole page: one bad frame never freezes it
        cost = time.perf_counter() - started
        self._cost_s = cost if not self.repaints else 0.7 * self._cost_s + 0.3 * cost
        self.repaints += 1
        self._next_s = now + self.gap_s
        if self.on_painted is not None:
            self.on_painted(wall, time.time())
