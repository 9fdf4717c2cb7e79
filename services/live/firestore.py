"""`FirestoreLive`: the signed-in user's live state from Firestore `on_snapshot` listeners.

One listener per public collection under `users/{uid}`, opened with the user's Firebase ID token (client
SDK semantics: `firestore.rules` decide what it may read), turned into the same `Change` events as the
local `/v1/stream`. Also home of the document codec the backend's `FirestoreStore` writes with.

The google-cloud-firestore listener runs its stream on a library thread and, when the server is
unreachable, re-opens it in a tight loop. So a supervisor task owns the connection: it watches the gRPC
channel's connectivity and each listener's health, tears the listeners down when the link is lost
(status "reconnecting", then "offline"), waits with backoff for the channel, and resubscribes; the
first snapshot of a new subscription is diffed against the last known state, so a drop loses no change
and repeats none, and the views keep showing the last known state meanwhile.

Needs the `firestore` extra (google-cloud-firestore, grpcio): importing this module raises ImportError
without it, as on Flet's mobile builds, where the client uses `StreamLive` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore import FirestoreClient
from google.cloud.firestore_v1.services.firestore.transports import FirestoreGrpcTransport

from services.backoff import Backoff
from services.live.types import Change, ChangeKind, ConnectionStatus

__all__ = ["UPDATED_AT", "VERSION", "FirestoreLive", "decode_doc", "encode_doc", "user_client"]

log = logging.getLogger(__name__)

# Fields the backend adds to every doc it writes (top level: a server timestamp inside a map is a transform
# on a dotted path, which not every emulator supports); stripped before views see a doc.
VERSION = "_version"  # the change version of the doc's last write
UPDATED_AT = "_updatedAt"  # server timestamp of that write
_STORE_FIELDS = frozenset((VERSION, UPDATED_AT))
_ARRAY = "_array"  # Firestore has no arrays of arrays: an inner list is stored as {"_array": [...]}
COLLECTIONS = ("orders", "positions", "alerts", "insights", "settings", "strategies")
PRODUCTION_HOST = "firestore.googleapis.com:443"

TokenProvider = Callable[[], Awaitable[str] | str]


# -- the document codec (shared with backend_stub.firestore_store) -------------------------------------


def encode_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A JSON document as Firestore can store it. Raises ValueError for non-JSON values (NaN, sets, ...)."""
    if not isinstance(doc, dict):
        raise ValueError(f"a document is a dict, not {type(doc).__name__}")
    for key in doc:
        if key in _STORE_FIELDS:
            raise ValueError(f"{key!r} is reserved for the store")
    return {_key(k): _encode(v, in_array=False) for k, v in doc.items()}


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"document keys are non-empty strings, not {key!r}")
    if key == _ARRAY:
        raise ValueError(f"{key!r} is reserved for the store")
    return key


def _encode(value: Any, *, in_array: bool) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} is not JSON")
        return value
    if isinstance(value, dict):
        return {_key(k): _encode(v, in_array=False) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_encode(v, in_array=True) for v in value]
        return {_ARRAY: items} if in_array else items
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def decode_doc(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON document back from what Firestore holds, without the store's own fields."""
    return {k: _decode(v) for k, v in (raw or {}).items() if k not in _STORE_FIELDS}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _ARRAY in value:
            return [_decode(v) for v in value[_ARRAY]]
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if hasattr(value, "isoformat"):  # a timestamp written by someone else: ISO text, as JSON would
        return value.isoformat()
    return value


# -- a Firestore client that speaks as the user --------------------------------------------------------


def user_client(project: str, token: Callable[[], str], *, emulator_host: str | None) -> tuple[Any, Any]:
    """A synchronous `google.cloud.firestore.Client` whose every RPC carries `Bearer <token()>`.

    Returns (client, raw gRPC channel). The library's own emulator mode always sends "Bearer owner"
    (which bypasses the rules) and its production mode wants Google OAuth credentials; a Firebase
    client sends the user's ID token instead, so the client gets a channel of ours with an interceptor
    that sets the header. Production: TLS to firestore.googleapis.com; emulator: plaintext to its host.
    """
    host = emulator_host or PRODUCTION_HOST
    # Keepalive notices a silently dead link (a phone changing networks) within about 40 s.
    options = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000)]
    if emulator_host:
        channel = grpc.insecure_channel(host, options=options)
    else:
        channel = grpc.secure_channel(host, grpc.ssl_channel_credentials(), options=options)
    intercepted = grpc.intercept_channel(channel, _BearerToken(token))
    client = firestore.Client(project=project, credentials=AnonymousCredentials())
    # Private hook, pinned by tests/emulators: the client builds its API object lazily from this field.
    client._firestore_api_internal = FirestoreClient(
        transport=FirestoreGrpcTransport(host=host, channel=intercepted)
    )
    return client, channel


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Replaces every call's `authorization` metadata with `Bearer <token()>` (read at each call, so a
    refreshed ID token reaches the next stream)."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _with_token(self, details: Any) -> Any:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
        metadata.append(("authorization", f"Bearer {self._token()}"))
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


# -- the listener --------------------------------------------------------------------------------------


class FirestoreLive:
    """`LiveState` on Firestore listeners for `users/{uid}`. Use as `async with FirestoreLive(...) as live:`.

    `id_token_provider` returns the user's current Firebase ID token (async or not); it is asked again on
    every (re)subscription and every `token_refresh_s`, so a refreshed token reaches new streams.
    """

    def __init__(
        self,
        uid: str,
        id_token_provider: TokenProvider,
        *,
        project: str,
        emulator_host: str | None,
        collections: tuple[str, ...] = COLLECTIONS,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        offline_after_s: float = 5.0,
        token_refresh_s: float = 300.0,
        health_check_s: float = 0.25,
    ) -> None:
        self._uid = uid
        self._token_provider = id_token_provider
        self._project = project
        self._emulator_host = emulator_host
        self._collections = collections
        self._backoff = Backoff(initial_s=backoff_initial_s, max_s=backoff_max_s)
        self._offline_after_s = offline_after_s
        self._token_refresh_s = token_refresh_s
        self._health_check_s = health_check_s

        self._status: ConnectionStatus = "connecting"
        self._status_callbacks: list[Callable[[ConnectionStatus], None]] = []
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._token = ""
        # doc_id → update time (µs) per collection: the last state delivered, diffed on resubscription.
        self._known: dict[str, dict[str, int]] = {c: {} for c in collections}
        self._watches: dict[str, Any] = {}
        self._synced: set[str] = set()  # collections whose current subscription delivered its first snapshot
        self._generation = 0
        self._link_lost = threading.Event()  # set from gRPC's thread when the channel fails
        self._client: Any = None
        self._channel: Any = None
        self._ready: Any = None  # a pending grpc.channel_ready_future
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.last_error: str | None = None
        self.resubscriptions = 0  # how often the listeners were re-created (tests and diagnostics)

    # -- LiveState ----------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "Firestore (emulator)" if self._emulator_host else "Firestore"

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def on_status(self, callback: Callable[[ConnectionStatus], None]) -> None:
        self._status_callbacks.append(callback)

    async def __aenter__(self) -> FirestoreLive:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def changes(self) -> AsyncIterator[Change]:
        self._ensure_started()
        while True:
            change = await self._queue.get()
            if change is None:
                return
            yield change

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._teardown)
        if self._client is not None:
            await asyncio.to_thread(self._close_client)
        self._set_status("offline")
        self._queue.put_nowait(None)

    def drop_streams(self) -> None:
        """Kill the listeners' streams as a network drop would (tests, and a "retry now" button)."""
        self._link_lost.set()

    # -- supervision --------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._task is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name=f"firestore-live-{self._uid}")

    def _set_status(self, status: ConnectionStatus) -> None:
        if status != self._status:
            self._status = status
            for callback in self._status_callbacks:
                try:
                    callback(status)
                except Exception:  # a view's bug must not stop the listener
                    log.exception("status callback failed")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        lost_since: float | None = None
        while True:
            try:
                await self._refresh_token()
                if self._client is None:
                    self._client, self._channel = user_client(
                        self._project, lambda: self._token, emulator_host=self._emulator_host
                    )
                    self._channel.subscribe(self._on_connectivity, try_to_connect=True)
                await self._wait_channel_ready()
                self._link_lost.clear()
                await asyncio.to_thread(self._subscribe_all)
                await self._watch_health()  # returns only by raising: a listener or the link died
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # token provider, channel or listener failure: all retried
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("Firestore listeners for %s interrupted: %s", self._uid, self.last_error)
            await asyncio.to_thread(self._teardown)
            now = loop.time()
            if self._status == "connected" or lost_since is None:
                lost_since, attempt = now, 0  # a fresh loss starts the backoff over
            self._set_status("offline" if now - lost_since >= self._offline_after_s else "reconnecting")
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1

    async def _refresh_token(self) -> None:
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise RuntimeError("no ID token: the user is not signed in")
        self._token = token

    async def _wait_channel_ready(self) -> None:
        ready = self._ready = grpc.channel_ready_future(self._channel)
        try:
            await asyncio.to_thread(ready.result, timeout=max(self._backoff.max_s, 2.0))
        except grpc.FutureTimeoutError:
            raise ConnectionError("Firestore is unreachable") from None
        finally:
            ready.cancel()  # stops its polling thread (it must not outlive the channel)
            self._ready = None

    async def _watch_health(self) -> None:
        loop = asyncio.get_running_loop()
        refreshed_at = loop.time()
        while True:
            await asyncio.sleep(self._health_check_s)
            if self._link_lost.is_set():
                raise ConnectionError("connection to Firestore lost")
            for collection, watch in list(self._watches.items()):
                if not watch.is_active:
                    raise ConnectionError(f"the {collection} listener stopped")
            if loop.time() - refreshed_at >= self._token_refresh_s:
                await self._refresh_token()
                refreshed_at = loop.time()

    def _on_connectivity(self, state: Any) -> None:
        # Runs on gRPC's thread. Losing the link (TRANSIENT_FAILURE, or IDLE after a drop while
        # listening) makes the supervisor tear the streams down before the library spins on them.
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            self._link_lost.set()
        elif state == grpc.ChannelConnectivity.IDLE and self._watches:
            self._link_lost.set()

    def _subscribe_all(self) -> None:
        """Open one listener per collection (blocking: runs on a worker thread)."""
        assert self._loop is not None
        self._generation += 1
        generation = self._generation
        self._synced = set()
        user = self._client.collection("users").document(self._uid)
        for collection in self._collections:
            callback = self._make_callback(collection, generation)
            watch = user.collection(collection).on_snapshot(callback)
            # The library re-sorts the whole result set with a pure-Python comparator on every snapshot
            # (O(n log n) per change: most of the listener's CPU with a few hundred orders). The order
            # of `docs` means nothing here, so it gets a comparator that finds everything in place.
            watch._comparator = _unordered
            leave_reconnects_to_caller(watch)
            self._watches[collection] = watch
        self.resubscriptions += 1 if generation > 1 else 0

    def _make_callback(self, collection: str, generation: int) -> Callable[[Any, Any, Any], None]:
        loop = self._loop
        assert loop is not None
        first = True

        def on_snapshot(docs: Any, changes: Any, read_time: Any) -> None:
            # Library thread: decode here, apply on the loop (which owns `_known`).
            nonlocal first
            read_us = _micros(read_time)
            if first:
                first = False
                full = {snap.id: (_micros(snap.update_time), decode_doc(snap.to_dict())) for snap in docs}
                payload: Any = ("full", full, read_us)
            else:
                payload = (
                    "delta",
                    [
                        (
                            change.type.name,
                            change.document.id,
                            _micros(change.document.update_time) or read_us,
                            None if change.type.name == "REMOVED" else decode_doc(change.document.to_dict()),
                        )
                        for change in changes
                    ],
                    read_us,
                )
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._apply, collection, generation, payload)

        return on_snapshot

    def _apply(self, collection: str, generation: int, payload: Any) -> None:
        if generation != self._generation or self._closed:
            return  # a late callback from listeners already torn down
        shape, body, read_us = payload
        known = self._known[collection]
        out: list[Change] = []
        if shape == "full":
            for doc_id, (updated_us, doc) in body.items():
                seen = known.get(doc_id)
                if seen == updated_us:
                    continue  # unchanged while we were away
                kind: ChangeKind = "added" if seen is None else "modified"
                out.append(Change(collection, doc_id, kind, doc, updated_us))
                known[doc_id] = updated_us
            for doc_id in [d for d in known if d not in body]:
                del known[doc_id]
                out.append(Change(collection, doc_id, "removed", None, read_us))
            self._synced.add(collection)
            if self._synced >= set(self._collections):
                self._set_status("connected")
        else:
            for change_type, doc_id, updated_us, doc in body:
                if change_type == "REMOVED":
                    if known.pop(doc_id, None) is not None:
                        out.append(Change(collection, doc_id, "removed", None, updated_us))
                    continue
                seen = known.get(doc_id)
                if seen == updated_us:
                    continue
                kind = "added" if seen is None else "modified"
                known[doc_id] = updated_us
                out.append(Change(collection, doc_id, kind, doc, updated_us))
        out.sort(key=lambda change: change.version)
        for change in out:
            self._queue.put_nowait(change)

    def _teardown(self) -> None:
        watches, self._watches = self._watches, {}
        self._generation += 1  # callbacks still in flight from these listeners are ignored
        for watch in watches.values():
            with contextlib.suppress(Exception):
                watch.unsubscribe()

    def _close_client(self) -> None:
        if self._ready is not None:
            self._ready.cancel()
        with contextlib.suppress(Exception):
            self._channel.unsubscribe(self._on_connectivity)
        # gRPC's connectivity poller wakes every 0.2 s; closing the channel under it makes it raise
        # "Channel closed!" on its thread. Let it see that nobody is subscribed any more and stop.
        time.sleep(0.25)
        with contextlib.suppress(Exception):
            self._channel.close()
        self._client = None


def _unordered(_a: Any, _b: Any) -> int:
    return 0


def _micros(timestamp: Any) -> int:
    """A protobuf/`DatetimeWithNanoseconds` timestamp as integer microseconds since the epoch."""
    if timestamp is None:
        return 0
    if hasattr(timestamp, "timestamp_pb"):
        pb = timestamp.timestamp_pb()
        return pb.seconds * 1_000_000 + pb.nanos // 1000
    if hasattr(timestamp, "seconds"):
        return int(timestamp.seconds) * 1_000_000 + int(timestamp.nanos) // 1000
    return int(timestamp.timestamp() * 1_000_000)


def leave_reconnects_to_caller(watch: Any) -> None:
    """Stop google-cloud-firestore from re-opening a failed listen stream by itself.

    The library re-opens at once, forever, and recursively: the re-open of a stream that fails at once
    runs inside the previous one's callback. Offline, that is a busy loop holding the GIL (it starved
    the connectivity callbacks that tell us the link is down), and a long outage ends in a
    RecursionError on its thread with the stream's lock held, which blocked the teardown (seen under
    load in the emulator tests). With this, a failed stream ends the watch (`is_active` turns False)
    and the caller's supervisor subscribes again with its own backoff; what changed meanwhile arrives
    in the new listener's first snapshot.

    The library's handler of a finished stream closes the watch on a new thread and raises the error
    there, an "unhandled exception" on every network drop; the watch is closed quietly instead."""
    rpc = watch._rpc
    if rpc is None:
        return
    rpc._should_recover = lambda _exc: False
    library_handler = type(watch)._on_rpc_done

    def close_quietly(_future: Any) -> None:
        threading.Thread(target=watch.close, name="firestore-watch-close", daemon=True).start()

    rpc._callbacks = [close_quietly if getattr(cb, "__func__", None) is library_handler else cb
                      for cb in rpc._callbacks]
