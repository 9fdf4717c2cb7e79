"""`SessionRegistry`: the app process's open sessions, so it can say how many it serves and how many tasks
they run (the web server's health endpoint, the soak test), and close them all at shutdown; and how the
hosted web server gives the memory of ended sessions back (`release_memory`, `use_returning_allocator`).

Why an allocator: measured over 50 sessions opened and ended (tracemalloc-free figures, `gc.get_objects()`
and `sys.getallocatedblocks()` in the server), the Python objects stay flat (+0.6 %) while RSS grows
190 → 270 MB: CPython's small-object allocator frees a 1 MiB arena only once every object in it is gone,
and the objects that outlive a session (the shared market's ticks, indicator points, engine windows) are
spread over the arenas its pages and controls filled, so each session leaves arenas pinned; glibc's heap
fragments the same way (`malloc_trim` gives back ~5 %, `MALLOC_ARENA_MAX=2` nothing). jemalloc, with every
Python allocation handed to it (`PYTHONMALLOC=malloc`), returns freed pages by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import flet as ft

RELEASE_AFTER_S = 2.0
JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
            "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
# Freed pages go back to the OS within about a second, from jemalloc's own thread (not on the event loop).
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
_RESTARTED = "SKEET_ALLOCATOR_RESTARTED"  # the environment before the restart, as JSON
ARENAS_ALL = 4096  # jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena


def use_returning_allocator(argv: Sequence[str]) -> None:
    """Re-start this process (`python -m client ARGV`) on jemalloc if it is installed and not in use yet;
    returns (and nothing changes) otherwise, or if `SKEET_ALLOCATOR=system`. For the hosted web server,
    which serves many sessions one after another (module doc); call it before starting anything."""
    restarted = os.environ.pop(_RESTARTED, None)
    if restarted is not None:  # the restarted process: its children (a backend, kaleido's Chromium) get none of it
        for name, value in json.loads(restarted).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return
    if os.environ.get("SKEET_ALLOCATOR") == "system" or _MALLCTL is not None:
        return
    ours = returning_allocator_env()
    if not ours:
        return
    before = {name: os.environ.get(name) for name in ours}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "client", *argv],
              {**os.environ, **ours, _RESTARTED: json.dumps(before)})


def release_memory() -> None:
    """With nobody connected: collect the sessions' reference cycles (pages, controls, handlers) now, and
    hand the free pages back to the OS (jemalloc's purge, or glibc's `malloc_trim`), so a server that served
    many tabs does not sit on their peak. Cheap (a few ms), and only when the last session has gone."""
    gc.collect()
    if _MALLCTL is not None:
        _MALLCTL(f"arena.{ARENAS_ALL}.purge".encode(), None, None, None, 0)
    elif _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


def returning_allocator_env() -> dict[str, str]:
    """The environment variables that start a Python process on jemalloc (empty if it is not installed)."""
    library = next((path for path in JEMALLOC if Path(path).exists()), None) if sys.platform == "linux" else None
    if library is None:
        return {}
    return {"LD_PRELOAD": " ".join(filter(None, (os.environ.get("LD_PRELOAD"), library))),
            "PYTHONMALLOC": "malloc", "MALLOC_CONF": os.environ.get("MALLOC_CONF", JEMALLOC_CONF)}


def _mallctl() -> Any:
    try:
        return ctypes.CDLL(None).mallctl  # there when jemalloc is loaded (LD_PRELOAD)
    except (AttributeError, OSError):
        return None


_LIBC = _libc()
_MALLCTL = _mallctl()


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
