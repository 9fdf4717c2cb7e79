"""`FanOut`: one upstream stream per key (symbol), however many consumers listen, each getting every item.

The hub owns the upstream tasks: the first subscriber to a key starts one, the last one to leave cancels it,
and `aclose` cancels them all. A subscriber reads its own queue, so a slow consumer does not slow the others;
past `max_backlog` its oldest items are dropped and counted in `dropped`, never blocking the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Closed:
    """Marker put in a queue when the hub closes."""


class _Subscriber(Generic[T]):
    def __init__(self, max_backlog: int) -> None:
        self.items: deque[T | BaseException | _Closed] = deque()
        self.ready = asyncio.Event()
        self.max_backlog = max_backlog
        self.dropped = 0

    def put(self, item: T | BaseException | _Closed) -> None:
        if len(self.items) >= self.max_backlog and not isinstance(item, BaseException | _Closed):
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        self.ready.set()


class FanOut(Generic[K, T]):
    """Shares `source(key)` streams between subscribers. An async context manager."""

    def __init__(self, source: Callable[[K], AsyncIterator[T]], *, max_backlog: int = 100_000) -> None:
        self._source = source
        self._max_backlog = max_backlog
        self._subscribers: dict[K, set[_Subscriber[T]]] = {}
        self._pumps: dict[K, asyncio.Task[None]] = {}
        self._closed = False
        self.dropped = 0

    async def __aenter__(self) -> FanOut[K, T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def active_keys(self) -> set[K]:
        """Keys with a running upstream."""
        return {k for k, task in self._pumps.items() if not task.done()}

    def subscriber_count(self, key: K) -> int:
        return len(self._subscribers.get(key, ()))

    async def subscribe(self, keys: list[K]) -> AsyncGenerator[T, None]:
        """Items of every key in `keys`, in arrival order, until the hub closes or an upstream fails."""
        if self._closed:
            return
        sub: _Subscriber[T] = _Subscriber(self._max_backlog)
        keys = list(dict.fromkeys(keys))
        for key in keys:
            self._subscribers.setdefault(key, set()).add(sub)
            if key not in self._pumps or self._pumps[key].done():
                self._pumps[key] = asyncio.create_task(self._pump(key), name=f"fanout-{key}")
        try:
            while True:
                while not sub.items:
                    sub.ready.clear()
                    await sub.ready.wait()
                item = sub.items.popleft()
                if isinstance(item, _Closed):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.dropped += sub.dropped
            for key in keys:
                await self._leave(key, sub)

    async def _leave(self, key: K, sub: _Subscriber[T]) -> None:
        members = self._subscribers.get(key)
        if members is None:
            return
        members.discard(sub)
        if not members:
            del self._subscribers[key]
            task = self._pumps.pop(key, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _pump(self, key: K) -> None:
        try:
            async for item in self._source(key):
                for sub in tuple(self._subscribers.get(key, ())):
                    sub.put(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every subscriber of the key, who re-raises it
            for sub in tuple(self._subscribers.get(key, ())):
                sub.put(exc)

    async def aclose(self) -> None:
        """Cancel every upstream and end every subscription."""
        self._closed = True
        tasks = list(self._pumps.values())
        self._pumps.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for members in self._subscribers.values():
            for sub in members:
                sub.put(_Closed())
