"""`StreamLive`: the user's live state from the backend's `/v1/stream` websocket change feed.

The embedded default's counterpart of Firestore listeners, with the same added / modified / removed
events. It resumes from the last version it saw, so a dropped socket loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from services.backoff import Backoff
from services.live.types import Change, ConnectionStatus

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
UNAUTHORIZED_CLOSE_CODE = 4401


def stream_url(base_url: str, since: int) -> str:
    """`http(s)://host/prefix` → `ws(s)://host/prefix/v1/stream?since=N`."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path + "/v1/stream", f"since={since}", ""))


class StreamLive:
    """Listens to `/v1/stream` for one user; reconnects with exponential backoff and jitter."""

    def __init__(
        self,
        *,
        base_url: str,
        token: TokenProvider,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        mode: str = "Local state",
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._backoff = Backoff(initial_s=backoff_initial_s, max_s=backoff_max_s)
        self._mode = mode
        self._status: ConnectionStatus = "connecting"
        self._status_callbacks: list[Callable[[ConnectionStatus], None]] = []
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._version = 0
        # (collection, doc_id) of every live document, to emit removals after a server reset.
        self._known: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def version(self) -> int:
        """The last change version delivered: where a reconnect resumes."""
        return self._version

    def on_status(self, callback: Callable[[ConnectionStatus], None]) -> None:
        self._status_callbacks.append(callback)

    async def __aenter__(self) -> StreamLive:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_status("offline")

    async def changes(self) -> AsyncIterator[Change]:
        self._ensure_started()
        while True:
            yield await self._queue.get()

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream-live")

    def _set_status(self, status: ConnectionStatus) -> None:
        if status != self._status:
            self._status = status
            for callback in self._status_callbacks:
                callback(status)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen_once()
                attempt = 0  # a clean session resets the backoff
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, ValueError) as exc:
                self.last_error = _describe(exc)
                log.info("live stream dropped: %s", self.last_error)
            self._set_status("reconnecting")
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1

    async def _listen_once(self) -> None:
        headers = {"Authorization": f"Bearer {await self._token()}"}
        resume_from = self._version
        async with connect(
            stream_url(self._base_url, resume_from),
            additional_headers=headers,
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
        ) as ws:
            resetting = False
            seen_in_reset: set[tuple[str, str]] = set()
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "change":
                    change = _change(message)
                    if resume_from and not resetting and change.version <= resume_from:
                        continue  # already delivered before the reconnect
                    if resetting:
                        seen_in_reset.add((change.collection, change.doc_id))
                    self._deliver(change)
                elif kind == "synced":
                    if resetting:
                        for collection, doc_id in sorted(self._known - seen_in_reset):
                            self._deliver(Change(collection, doc_id, "removed", None, self._version))
                        resetting = False
                    self._version = max(self._version, int(message.get("version", 0)))
                    self.last_error = None
                    self._set_status("connected")
                elif kind == "reset":
                    # The server no longer holds our resume point: a full snapshot follows.
                    resetting, seen_in_reset = True, set()
            if ws.close_code == UNAUTHORIZED_CLOSE_CODE:
                raise ValueError(f"the backend refused the token: {ws.close_reason or 'unauthorized'}")

    def _deliver(self, change: Change) -> None:
        key = (change.collection, change.doc_id)
        if change.kind == "removed":
            self._known.discard(key)
        else:
            self._known.add(key)
        self._version = max(self._version, change.version)
        self._queue.put_nowait(change)


def _change(message: dict[str, Any]) -> Change:
    kind = message["kind"]
    if kind not in ("added", "modified", "removed"):
        raise ValueError(f"unknown change kind {kind!r}")
    return Change(
        collection=str(message["collection"]),
        doc_id=str(message["id"]),
        kind=kind,
        doc=message.get("doc"),
        version=int(message["version"]),
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} from the stream"
    return str(exc) or type(exc).__name__
