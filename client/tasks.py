"""`TaskOwner`: the one owner of a session's background tasks, so closing the session stops all of them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0  # a task that ignores its cancellation for longer is logged and left behind


class TaskOwner:
    """Starts tasks (`spawn`) and, on `aclose`, cancels every one still running and waits for them.

    Unlike `asyncio.TaskGroup`, one task that fails is logged and does not cancel the others: a failed
    price alert must not take the market stream down. After `aclose`, `spawn` starts nothing (a tap that
    arrives while the tab is closing), so nothing of a closed session runs on.
    """

    def __init__(self, name: str = "session", *, isolated: bool = False) -> None:
        """`isolated`: each task runs in an empty `contextvars` context rather than a copy of its caller's.
        For tasks that outlive the session that happened to start them (the shared market's): a copy
        would hold that session's Flet page (Flet keeps the current page in a context variable), and
        with it the whole session, for as long as the task runs."""
        self.name = name
        self._isolated = isolated
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T] | None:
        """Run `coro` as a task this owner cancels at close; None (and `coro` discarded) once closed."""
        if self._closed:
            coro.close()
            return None
        context = contextvars.Context() if self._isolated else None
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name or _name(coro)}", context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s task %s failed", self.name, task.get_name(), exc_info=task.exception())

    async def aclose(self) -> None:
        """Cancel every task (except the caller's own, when a task closes its owner) and wait for them."""
        self._closed = True
        current = asyncio.current_task()
        running = [t for t in self._tasks if t is not current]
        for task in running:
            task.cancel()
        if not running:
            return
        with contextlib.suppress(asyncio.CancelledError):
            _, pending = await asyncio.wait(running, timeout=CLOSE_TIMEOUT_S)
            for task in pending:
                log.warning("%s task %s did not stop within %.0f s", self.name, task.get_name(), CLOSE_TIMEOUT_S)


def _name(coro: Coroutine[Any, Any, Any]) -> str:
    return getattr(coro, "__qualname__", type(coro).__name__)
