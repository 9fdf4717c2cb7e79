"""`WS /v1/stream`: the user's change feed (the local counterpart of Firestore listeners).

Protocol (JSON text frames, server → client):
- `since` absent or 0: the user's current documents as `change` "added" messages (each with the version
  of its last write), then `{"type": "synced", "version": V}`.
- `since=N`: every change with a version > N, in order, then `synced`. If N is ahead of the server (its
  state was reset), or older than the change log keeps, `{"type": "reset"}` then the full snapshot as
  for since=0.
- then live changes as they commit, and `{"type": "ping", "version": V}` every 15 s.
A change is `{"type": "change", "version", "collection", "id", "kind": added|modified|removed, "doc"}`.
Authentication: `Authorization: Bearer` header, or `?token=` (browsers cannot set WebSocket headers);
a bad token closes the socket with code 4401 and the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend_stub.auth import AuthError, AuthUnavailable, TokenVerifier, bearer_token
from backend_stub.runtime import websocket_backend
from backend_stub.store.base import Change, ChangesCompacted, StateStore, SubscriberTooSlow

log = logging.getLogger(__name__)

UNAUTHORIZED = 4401
BAD_REQUEST = 4400
TRY_AGAIN = 1013


def change_message(change: Change) -> dict[str, Any]:
    return {
        "type": "change",
        "version": change.version,
        "collection": change.collection,
        "id": change.doc_id,
        "kind": change.kind,
        "doc": change.doc,
    }


async def authenticate_websocket(websocket: WebSocket, verifier: TokenVerifier) -> str | None:
    """The caller of an accepted socket (`Authorization: Bearer` header or `?token=`), or None once the
    socket is closed with 4401 (bad token) or 1013 (the verifier cannot be reached) and the reason."""
    try:
        header = websocket.headers.get("authorization")
        token = bearer_token(header) if header else websocket.query_params.get("token")
        if not token:
            raise AuthError("missing token (Authorization: Bearer header or ?token=)")
        return await verifier.verify(token)
    except AuthError as exc:
        await websocket.close(UNAUTHORIZED, str(exc)[:120])
    except AuthUnavailable as exc:
        await websocket.close(TRY_AGAIN, str(exc)[:120])
    return None


def build_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        # Accept first: a close before accepting becomes a bare HTTP 403 and the reason is lost.
        await websocket.accept()
        uid = await authenticate_websocket(websocket, verifier)
        if uid is None:
            return
        try:
            since = int(websocket.query_params.get("since") or 0)
            if since < 0:
                raise ValueError
        except ValueError:
            await websocket.close(BAD_REQUEST, "since must be a version number >= 0")
            return
        backend = websocket_backend(websocket)
        session = _Session(websocket, backend.store, uid, ping_s=backend.settings.stream_ping_s)
        await session.run(since)

    return router


class _Session:
    """One socket: catch up from `since`, then forward live changes and pings until either side stops."""

    def __init__(self, websocket: WebSocket, store: StateStore, uid: str, *, ping_s: float) -> None:
        self._ws = websocket
        self._store = store
        self._uid = uid
        self._ping_s = ping_s
        self._version = 0
        self._send_lock = asyncio.Lock()

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_text(json.dumps(message, separators=(",", ":")))

    async def run(self, since: int) -> None:
        # Subscribe before reading the catch-up, so a change committed in between is not lost;
        # versions already sent are skipped below.
        live = self._store.subscribe(self._uid)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._catch_up(since)
            tasks = [
                asyncio.create_task(self._forward(live), name="stream-forward"),
                asyncio.create_task(self._ping(), name="stream-ping"),
                asyncio.create_task(self._until_client_leaves(), name="stream-receive"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, SubscriberTooSlow):
                    await self._ws.close(TRY_AGAIN, f"fell behind; reconnect with since={self._version}")
                elif exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                    log.warning("stream of %s ended: %r", self._uid, exc)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away mid-send
        finally:
            for task in tasks:
                task.cancel()
            # gather (not a suppress-all) so a cancellation of this session itself still propagates
            await asyncio.gather(*tasks, return_exceptions=True)
            close = getattr(live, "aclose", None)
            if close is not None:
                await close()

    async def _catch_up(self, since: int) -> None:
        latest = await self._store.latest_version(self._uid)
        changes: list[Change] = []
        if 0 < since <= latest:
            try:
                changes = await self._store.changes_since(self._uid, since)
            except ChangesCompacted:  # away longer than the log keeps: start again from the documents
                since = latest + 1
        if since > latest:
            await self._send({"type": "reset"})
            since = 0
        if since == 0:
            changes, version = await self._store.snapshot(self._uid)
        else:
            version = changes[-1].version if changes else since
        for change in changes:
            await self._send(change_message(change))
        self._version = max(version, since)
        await self._send({"type": "synced", "version": self._version})

    async def _forward(self, live: AsyncIterator[Change]) -> None:
        async for change in live:
            if change.version <= self._version:
                continue  # already in the catch-up
            self._version = change.version
            await self._send(change_message(change))

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._ping_s)
            await self._send({"type": "ping", "version": self._version})

    async def _until_client_leaves(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
