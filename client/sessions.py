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
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import flet as ft

if TYPE_CHECKING:
    from client.repaint import RepaintScheduler

RELEASE_AFTER_S = 2.0
JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
            "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
# Freed pages go back to the OS within about a second, from jemalloc's own thread (not on the event loop).
# retain:false unmaps what it purges instead of keeping it mapped for reuse: the metadata of those retained
# extents grew 4.7 -> 10 MB over 60 sessions and never shrank (7 MB without; RSS 30 s after a soak-like run
# +8.6 % instead of +9.8 % over the first session's).
# The thread cache stays on. It hands out the most recently freed slot of a size class whatever slab it is in,
# so the shared market's long-lived small objects can land in slabs sessions filled and pin them once those
# end; tcache:false (jemalloc then fills the oldest, fullest slab first) was used until 2026-12-02 for that.
# Its price was all of Python's allocations through jemalloc's locked bins: re-measured then, same machine,
# quiet, `bench/sessions.py --counts 0,1` A/B: the market alone 5.2 -> 4.0 % of a core and one session 13.6
# -> 12.3 % with the cache; the Chromium soak's RSS 30 s after the last tab +4.3 / +4.5 % over the first
# session's with it, +2.3 % without (limit +10 %, load 8-9). MALLOC_CONF set outside replaces all of this.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,retain:false"
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
    def repainter(self) -> RepaintScheduler: ...

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
                "sessions_in_memory": len(self._ever),  # more than `sessions` for long: something holds one
                # the clients' answers that pace repaints (`client.repaint`): none answered means no pacing
                "repaints": sum(s.repainter.repaints for s in self._open),
                "repaints_answered": sum(s.repainter.answered for s in self._open),
                "repaints_unanswered": sum(s.repainter.unanswered for s in self._open)}

    async def aclose(self) -> None:
        for session in list(self._open):
            await session.close()


# -- finding what sessions leave behind (the web server's debug route, off unless SKEET_DEBUG_MEMORY=1) --------
DEBUG_ENV = "SKEET_DEBUG_MEMORY"


def memory_report(*, top: int = 40, chains: int = 2, kinds: Sequence[str] = ("SkeetSession", "Session", "Page")
                  ) -> dict[str, Any]:
    """What the process holds after a full collection: object counts by type (the `top` most common),
    allocated blocks, the loop's scheduled timers by callback, and for up to `chains` live objects of each
    type in `kinds` a chain of referrers towards a root. Slow (seconds with many objects): for an engineer
    looking for a leak, never on a served request path."""
    gc.collect()
    objects = gc.get_objects()
    by_type: dict[str, int] = {}
    found: dict[str, list[Any]] = {kind: [] for kind in kinds}
    for obj in objects:
        name = type(obj).__qualname__
        by_type[name] = by_type.get(name, 0) + 1
        if name in found and len(found[name]) < chains:
            found[name].append(obj)
    scheduled: dict[str, int] = {}
    with contextlib.suppress(RuntimeError):
        for handle in getattr(asyncio.get_running_loop(), "_scheduled", ()):
            key = _describe(getattr(handle, "_callback", handle))
            scheduled[key] = scheduled.get(key, 0) + 1
    report = {"allocated_blocks": sys.getallocatedblocks(), "objects": len(objects), "jemalloc": jemalloc_stats(),
              "jemalloc_bin_waste": jemalloc_bin_waste(),
              "threads": threading.active_count(),
              "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])[:top]),
              "counts": {kind: by_type.get(kind, 0) for kind in kinds},
              "scheduled": scheduled,
              "chains": {kind: [_referrer_chain(obj, objects) for obj in objs] for kind, objs in found.items()}}
    del objects, found
    return report


def trace_survivors(action: str, *, top: int = 40) -> dict[str, Any]:
    """`start`: trace every allocation from now on (tracemalloc, one frame: cheap enough for a short window);
    `stop`: after a full collection, what was allocated since `start` and is still alive, by source line,
    largest first: what a window of sessions left behind. Then tracing stops."""
    import tracemalloc

    if action == "start":
        tracemalloc.start(1)
        return {"tracing": True}
    if not tracemalloc.is_tracing():
        return {"tracing": False}
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = snapshot.statistics("lineno")
    return {"tracing": False, "alive_bytes": sum(s.size for s in stats), "alive_blocks": sum(s.count for s in stats),
            "by_line": [{"where": str(s.traceback[0]), "bytes": s.size, "blocks": s.count} for s in stats[:top]]}


def jemalloc_stats() -> dict[str, int]:
    """jemalloc's own figures (bytes): `allocated` what the program holds, `active` the pages those sit on,
    `resident` what is in RAM, `retained` what it keeps mapped for reuse; empty without jemalloc. A leak
    grows `allocated`; fragmentation grows `active` over it; a high-water mark stays in `resident`."""
    if _MALLCTL is None:
        return {}
    epoch = ctypes.c_uint64(1)
    _MALLCTL(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))  # refresh the statistics
    stats = {}
    for name in ("allocated", "active", "metadata", "resident", "mapped", "retained"):
        value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
        if _MALLCTL(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0:
            stats[name] = value.value
    return stats


def jemalloc_bin_waste(top: int = 12) -> list[dict[str, int]]:
    """Per small size class: bytes of free slots in slabs that also hold live ones (fragmentation), largest
    first; what `active` holds over `allocated`."""
    if _MALLCTL is None:
        return []

    def read(name: str, kind: Any) -> int:
        value, size = kind(0), ctypes.c_size_t(ctypes.sizeof(kind))
        return int(value.value) if _MALLCTL(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0 else 0

    rows = []
    for j in range(read("arenas.nbins", ctypes.c_uint)):
        size, nregs = read(f"arenas.bin.{j}.size", ctypes.c_size_t), read(f"arenas.bin.{j}.nregs", ctypes.c_uint32)
        slabs = read(f"stats.arenas.{ARENAS_ALL}.bins.{j}.curslabs", ctypes.c_size_t)
        regs = read(f"stats.arenas.{ARENAS_ALL}.bins.{j}.curregs", ctypes.c_size_t)
        rows.append({"size": size, "slabs": slabs, "live": regs, "waste_bytes": (slabs * nregs - regs) * size})
    return sorted(rows, key=lambda r: -r["waste_bytes"])[:top]


def _describe(obj: Any) -> str:
    name = type(obj).__qualname__
    if isinstance(obj, dict):
        keys = list(obj)[:6]
        return f"dict{keys}"
    if hasattr(obj, "__qualname__"):
        return f"{name}:{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if name in ("method", "builtin_function_or_method"):
        return f"{name}:{_describe(getattr(obj, '__self__', None))}.{getattr(obj, '__name__', '')}"
    if name == "cell":
        return f"cell({type(obj.cell_contents).__qualname__})"
    return name


def _referrer_chain(obj: Any, everything: list[Any], limit: int = 300_000) -> list[str]:
    """The shortest chain of referrers from a root (a module's globals, a class, the event loop, a running
    thread's frame) down to `obj`, described from the root end; breadth-first over `gc.get_referrers`,
    never through this report's own lists and frames."""
    me = sys._getframe()
    ignore = {id(everything), id(me), id(me.f_back)}
    roots = _roots()
    parent: dict[int, Any] = {id(obj): None}
    keep: dict[int, Any] = {id(obj): obj}
    frontier = [obj]
    while frontier and len(parent) < limit:
        step: list[Any] = []
        for item in frontier:
            for ref in gc.get_referrers(item):
                if id(ref) in parent or id(ref) in ignore or ref is frontier or ref is step:
                    continue
                parent[id(ref)], keep[id(ref)] = item, ref
                if id(ref) in roots or type(ref).__name__ == "module" or isinstance(ref, type) or (
                        isinstance(ref, dict) and "__builtins__" in ref):
                    chain, at = [], ref
                    while at is not None:
                        chain.append(_describe(at))
                        at = parent[id(at)]
                    return chain
                step.append(ref)
        frontier = step
    return ["(no root found)"]


def _roots() -> set[int]:
    """Ids of what lives as long as the process: the running loop and its queues, every thread's frames."""
    roots: set[int] = set()
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        roots |= {id(loop), id(getattr(loop, "_scheduled", None)), id(getattr(loop, "_ready", None))}
    for top in sys._current_frames().values():
        frame: FrameType | None = top
        while frame is not None:
            roots.add(id(frame))
            frame = frame.f_back
    return roots
