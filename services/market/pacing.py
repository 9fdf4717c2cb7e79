"""How the simulated feeds (synthetic, replay) pace their wake-ups in wall time: one rule for both, and the
waits between hand-overs that a reader about to repaint can cut short (`HandOvers`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

MAX_SLEEP_S = 1.0  # re-read the clock at least this often (it may jump: suspend, NTP, a test's fake clock)
# A stream that handed over less than this long ago is not hurried: what came due since is a few trades, and a
# hand-over of 50 symbols costs about what a wake-up does. It bounds hand-overs at ~200 a second however many
# sessions repaint.
HURRY_LEAST_S = 0.005


def wake_delay_s(due_ms: float, woke_s: float, clock_s: float, batch_s: float) -> float:
    """Seconds to sleep before handing over the next trades: until the trade at `due_ms` (wall-clock ms) is
    due, the clock inside its millisecond (aimed mid-ms, so float rounding cannot leave it just short), but
    not sooner than `batch_s` after the wake-up at `woke_s` (one wake-up hands over a batch), and never
    longer than MAX_SLEEP_S. `clock_s` is the clock now."""
    return min(max((due_ms + 0.5) / 1000 - clock_s, woke_s + batch_s - clock_s, 0.0), MAX_SLEEP_S)


class _Stream:
    """One tick stream's side of `HandOvers`."""

    __slots__ = ("back", "cut", "handed_s")

    def __init__(self) -> None:
        self.cut: asyncio.Future[None] | None = None  # set while the stream waits: done ends the wait
        self.back: asyncio.Future[None] | None = None  # set while hurried: done once it waits again (or ended)
        self.handed_s = -HURRY_LEAST_S  # loop time its last hand-over began


class HandOvers:
    """The waits of a paced feed's tick streams between two hand-overs, which `hurry()` cuts short.

    A stream hands over what is due, then `await pause(delay_s)` (inside `with hand_overs.stream() as
    pause:`). Its consumer runs on every trade it yields before the generator comes back to `pause`, so
    once every hurried stream is waiting again, what was due at the hurry has been through the consumer
    (the app's shared market: the engine and every session's state).

    Why: a wake-up of an idle process costs ~100-250 µs of CPU on a small VM, so a feed that wakes every
    5 ms to keep ticks fresh costs ~5 % of a core for its wake-ups alone. With hurry, the feed's own pace can
    be slow (`FEED_BATCH_S`) while what a repaint shows is as fresh as the repaint: the session asks for
    the due trades on its own wake-up, in the same turn of the event loop."""

    def __init__(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, *,
                 least_s: float = HURRY_LEAST_S) -> None:
        self._sleep = sleep
        self._least_s = least_s
        self._streams: set[_Stream] = set()

    @contextlib.contextmanager
    def stream(self) -> Iterator[Callable[[float], Awaitable[None]]]:
        """A tick stream's `pause(delay_s)`, for as long as the stream runs."""
        me = _Stream()
        me.handed_s = asyncio.get_running_loop().time()  # its first hand-over begins now
        self._streams.add(me)
        try:
            yield lambda delay_s: self._pause(me, delay_s)
        finally:
            self._streams.discard(me)
            _release(me)  # an ended stream holds no hurry back

    def hurry(self) -> asyncio.Future[Any] | None:
        """Wake every stream now that has waited at least `least_s` since its last hand-over, to hand over
        what is due. Returns what is done once every stream hurried (by this call or an earlier one not yet
        over) has handed over and waits again; None when there is nothing to wait for."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        backs: list[asyncio.Future[None]] = []
        for me in self._streams:
            if me.back is None and me.cut is not None and now - me.handed_s >= self._least_s:
                me.back = loop.create_future()
                if not me.cut.done():
                    me.cut.set_result(None)
            if me.back is not None:
                backs.append(me.back)
        if not backs:
            return None
        return backs[0] if len(backs) == 1 else asyncio.gather(*backs)

    async def _pause(self, me: _Stream, delay_s: float) -> None:
        _release(me)  # what it handed over has been through its consumer
        loop = asyncio.get_running_loop()
        me.cut = cut = loop.create_future()
        try:
            if self._sleep is asyncio.sleep:  # the real clock: a timer ends the wait, as in asyncio.sleep (no task)
                timer = loop.call_later(delay_s, _end, cut)
                try:
                    await cut
                finally:
                    timer.cancel()
            else:  # a clock of the caller's (a test's): its own sleep, cut short by a hurry
                sleeping = asyncio.ensure_future(self._sleep(delay_s))
                try:
                    await asyncio.wait((sleeping, cut), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeping.cancel()
        finally:
            me.cut = None
            me.handed_s = loop.time()


def _end(wait: asyncio.Future[None]) -> None:
    if not wait.done():
        wait.set_result(None)


def _release(me: _Stream) -> None:
    back, me.back = me.back, None
    if back is not None and not back.done():
        back.set_result(None)
