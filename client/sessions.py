"""`SessionRegistry`: the app process's open sessions, so it can say how many it serves and how many tasks
they run (the web server's health endpoint, the soak test), and close them all at shutdown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import flet as ft


class CountedSession(Protocol):
    @property
    def page(self) -> ft.Page: ...

    @property
    def task_count(self) -> int: ...

    async def close(self) -> None: ...


class SessionRegistry:
    def __init__(self) -> None:
        self._open: set[CountedSession] = set()
        self.opened = 0  # since the process started
        self.closed = 0

    def add(self, session: CountedSession) -> None:
        self._open.add(session)
        self.opened += 1

    def discard(self, session: CountedSession) -> None:
        if session in self._open:
            self._open.discard(session)
            self.closed += 1

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[CountedSession]:
        return iter(list(self._open))

    def counts(self) -> dict[str, int]:
        return {"sessions": len(self._open), "session_tasks": sum(s.task_count for s in self._open),
                "sessions_opened": self.opened, "sessions_closed": self.closed}

    async def aclose(self) -> None:
        for session in list(self._open):
            await session.close()
