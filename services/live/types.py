"""Live state: the change events every source of user state (Firestore listeners, the backend's
`/v1/stream` websocket) is turned into, so views consume one shape whatever the mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

ChangeKind = Literal["added", "modified", "removed"]
Collection = Literal["orders", "positions", "alerts", "insights", "settings", "strategies"]
ConnectionStatus = Literal["connecting", "connected", "reconnecting", "offline"]


@dataclass(frozen=True, slots=True)
class Change:
    """One document change in `users/{uid}/{collection}/{doc_id}`, as Firestore's DocumentChange.

    `version` is monotonic per user on the local stream (resume point); Firestore sources use the
    document's update time in microseconds.
    """

    collection: str
    doc_id: str
    kind: ChangeKind
    doc: dict[str, Any] | None  # the document after the change; None when removed
    version: int


class LiveState(Protocol):
    """A listener on the signed-in user's state. Async context manager; `aclose` stops its tasks."""

    @property
    def mode(self) -> str:
        """Label for the mode badge, e.g. "Local state" or "Firestore"."""
        ...

    @property
    def status(self) -> ConnectionStatus: ...

    def on_status(self, callback: Callable[[ConnectionStatus], None]) -> None:
        """Called on every status change (connected / reconnecting / offline)."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """Initial snapshot as "added" changes, then every change, in order, until closed.

        Reconnects by itself (backoff) and resumes without losing or repeating a change.
        """
        ...

    async def aclose(self) -> None: ...
