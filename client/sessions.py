"""`SessionRegistry`: the app process's open sessions, so it can say how many it serves and how many tasks
they run (the web server's health endpoint, the soak test), and close them all at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import weakref
from collections.abc import Iterator
from typing import Protocol

import flet as ft

RELEASE_AFTER_S = 2.0


def release_memory() -> None:
    """With nobody connected: collect the sessions' reference cycles (pages, controls, handlers) now, and
    hand the heap's free pages back to the OS (glibc's `malloc_trim`), so a server that served many tabs
    does not sit on their peak. Cheap (a few ms), and only when the last session has gone."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _libc()


class CountedSession(Protocol):
    @property
    def page(self) -> ft.Page: ...

    @property
    def task_count(self) -> int: ...

    async def close(self) -> None: ...


class SessionRegistry:
    def __init__(self) -> None:
        self._open: set[CountedSession] = set()
        self._ever: weakref.WeakSet[CountedSession] = weakref.WeakSet()  # closed ones until collected
        self.opened = 0  # since the process started
        self.closed = 0

    def add(self, session: CountedSession) -> None:
        self._open.add(session)
        self._ever.add(session)
        self.opened += 1

    def discard(self, session: CountedSession) -> None:
        if session in self._open:
            self._open.discard(session)
            self.closed += 1
            if not self._open:  # once the closing session has let go of itself, not from inside its close
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().call_later(RELEASE_AFTER_S, release_memory)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[CountedSession]:
        return iter(list(self._open))

    def counts(self) -> dict[str, int]:
        return {"sessions": len(self._open), "session_tasks": sum(s.task_count for s in self._open),
                "sessions_opened": self.opened, "sessions_closed": self.closed,
                "sessions_in_memory": len(self._ever)}  # more than `sessions` for long: something holds one

    async def aclose(self) -> None:
        for session in list(self._open):
            await session.close()
