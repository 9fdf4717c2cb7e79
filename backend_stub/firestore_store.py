"""`FirestoreStore`: the `StateStore` on Cloud Firestore, for Cloud Run (`SKEET_STATE=firestore`).

Layout (what clients listen to, see `firestore.rules`): `users/{uid}/{collection}/{doc_id}` for the public
collections (orders, positions, alerts, insights, settings/app), each doc holding the caller's fields plus
`_version` (the change version of its last write) and `_updatedAt` (a server timestamp). Backend-private state lives in collections
whose names start with "_", which the rules hide from clients:

- `users/{uid}/_state/log`: `{version}`, the user's latest change version;
- `users/{uid}/_changes/{version:012d}`: the change log (`version, collection, docId, kind, doc, at,
  expireAt`), read by `changes_since` and tailed by `subscribe`, so every Cloud Run instance sees every
  other's commits; a TTL policy on `expireAt` (see the README's deploy section) bounds it;
- `users/{uid}/_idempotency/...`, `users/{uid}/_account/...`: the broker's own documents;
- `_leases/{name}`: the workers' leases (`owner, generation, expiresAt`), each changed in a transaction.

Every `transact` is one Firestore transaction over the docs it touches, the log head and the new log
entries: an order and its position change commit together or not at all.
"""

from __future__ import annotations

import asyncio
import builtins  # `list` is also a method of FirestoreStore
import contextlib
import datetime as dt
import logging
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.bidi import _Throttle
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from backend_stub.store.base import (
    PUBLIC_COLLECTIONS,
    AlreadyExists,
    Change,
    ChangesCompacted,
    Create,
    Delete,
    Lease,
    LeaseLost,
    Page,
    PageKey,
    Put,
    StoreError,
    VersionConflict,
    Write,
    is_public,
    lease_held,
    lease_taken,
)
from services.live.firestore import UPDATED_AT, VERSION, decode_doc, encode_doc

__all__ = ["FirestoreStore"]

_LOG = logging.getLogger(__name__)

_STATE = "_state"
_LEASES = "_leases"  # top-level: {name (percent-quoted)} → owner, generation, expiresAt (epoch seconds)
_CHANGES = "_changes"
_ATTEMPTS = 25  # a transaction retried this often under contention before the caller sees an error
# How far back (wall clock vs. Firestore's commit clock) `subscribe` starts tailing the log. Replaying a few
# seconds of already-seen changes is harmless (callers skip versions they hold); missing one is not.
_CLOCK_SKEW = dt.timedelta(seconds=5)
_WATCH_CHECK_S = 0.5
_RESUBSCRIBE_MAX_S = 10.0


class FirestoreStore:
    """Per-user documents and change log in Firestore. Use as `async with FirestoreStore() as store:`.

    With no arguments the project comes from `GOOGLE_CLOUD_PROJECT` (else Application Default Credentials)
    and `FIRESTORE_EMULATOR_HOST`, when set, points the client at the emulator with anonymous credentials.
    """

    def __init__(
        self, *, project: str | None = None, client: firestore.AsyncClient | None = None, change_log_days: int = 7
    ) -> None:
        self._log_ttl = dt.timedelta(days=change_log_days)
        self._project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        self._owns_client = client is None  # a client passed in belongs to the caller, who closes it
        self._db = client or firestore.AsyncClient(project=self._project)
        # `on_snapshot` exists only on the synchronous client; it is created on the first `subscribe`.
        self._watch_client: firestore.Client | None = None
        self._watch_lock = threading.Lock()
        self._closed = False
        self._subscriptions: set[_LogTail] = set()
        # One transaction per user at a time from this process: concurrent ones on the same log head only
        # abort each other (and the emulator resolves that by lock timeouts, seconds each). Writers on
        # other instances still meet Firestore's contention handling and the retries below.
        self._user_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> FirestoreStore:
        return self

    async def __aenter__(self) -> FirestoreStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for tail in builtins.list(self._subscriptions):
            tail.stop()
        # `Client.close()` closes only an HTTP session; the gRPC channels are the transports'.
        if self._owns_client:
            api = getattr(self._db, "_firestore_api_internal", None)
            if api is not None:
                await api.transport.close()
        if self._watch_client is not None:
            api = getattr(self._watch_client, "_firestore_api_internal", None)
            if api is not None:
                await asyncio.to_thread(api.transport.close)

    # -- references --------------------------------------------------------------------------------

    def _user(self, uid: str) -> firestore.AsyncDocumentReference:
        return self._db.collection("users").document(uid)

    def _doc(self, uid: str, collection: str, doc_id: str) -> firestore.AsyncDocumentReference:
        return self._user(uid).collection(collection).document(doc_id)

    def _head(self, uid: str) -> firestore.AsyncDocumentReference:
        return self._doc(uid, _STATE, "log")

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, uid: str, collection: str, doc_id: str) -> dict[str, Any] | None:
        snap = await self._doc(uid, collection, doc_id).get()
        return decode_doc(snap.to_dict()) if snap.exists else None

    async def list(self, uid: str, collection: str) -> builtins.list[dict[str, Any]]:
        query = self._user(uid).collection(collection).order_by(FieldPath.document_id())
        return [decode_doc(snap.to_dict()) async for snap in query.stream()]

    async def page(
        self,
        uid: str,
        collection: str,
        *,
        limit: int,
        after: PageKey | None = None,
        field: str | None = None,
        values: Sequence[Any] = (),
    ) -> Page:
        # Needs the composite indexes in `firestore.indexes.json` (status + timestamp + __name__, and
        # timestamp + __name__ descending); docs without a `timestamp` are not listed (Firestore leaves
        # them out of an order_by on it), which orders and alerts always carry.
        if limit < 1:
            raise ValueError("limit must be at least 1")
        collection_ref = self._user(uid).collection(collection)
        query: Any = collection_ref
        if field is not None:
            path = FieldPath(field).to_api_repr()
            if len(values) == 1:
                query = query.where(filter=FieldFilter(path, "==", values[0]))
            else:
                query = query.where(filter=FieldFilter(path, "in", list(values)))
        query = query.order_by("timestamp", direction=firestore.Query.DESCENDING).order_by(
            FieldPath.document_id(), direction=firestore.Query.DESCENDING
        )
        if after is not None:
            query = query.start_after(
                {"timestamp": after[0], FieldPath.document_id(): collection_ref.document(after[1])}
            )
        snaps = [snap async for snap in query.limit(limit + 1).stream()]
        more = len(snaps) > limit
        snaps = snaps[:limit]
        docs = [decode_doc(snap.to_dict()) for snap in snaps]
        last = snaps[-1] if snaps else None
        return Page(docs=docs, next=(int(last.get("timestamp")), last.id) if more and last else None)

    async def find(
        self, collection: str, field: str, value: Any
    ) -> builtins.list[tuple[str, dict[str, Any]]]:
        # A collection-group query: in production it needs the collection-group index on `field`
        # (`firestore.indexes.json`); the emulator has every index.
        query = self._db.collection_group(collection).where(
            filter=FieldFilter(FieldPath(field).to_api_repr(), "==", value)
        )
        found: builtins.list[tuple[str, str, dict[str, Any]]] = []
        async for snap in query.stream():
            parts = snap.reference.path.split("/")
            # Only users/{uid}/{collection}/{doc_id}: a same-named collection elsewhere is not ours.
            if len(parts) == 4 and parts[0] == "users":
                found.append((parts[1], parts[3], decode_doc(snap.to_dict())))
        found.sort(key=lambda item: (item[0], item[1]))
        return [(uid, doc) for uid, _, doc in found]

    async def latest_version(self, uid: str) -> int:
        snap = await self._head(uid).get()
        return int(snap.get("version")) if snap.exists else 0

    async def changes_since(self, uid: str, version: int) -> builtins.list[Change]:
        query = (
            self._user(uid)
            .collection(_CHANGES)
            .where(filter=FieldFilter("version", ">", version))
            .order_by("version")
        )
        changes = [_log_change(snap.to_dict()) async for snap in query.stream()]
        # Versions are consecutive: a log that does not start right after `version`, or is empty while
        # the head is ahead, lost entries to the TTL policy on `expireAt`.
        gap = changes[0].version > version + 1 if changes else await self.latest_version(uid) > version
        if gap:
            raise ChangesCompacted(f"changes after version {version} have expired")
        return changes

    async def snapshot(self, uid: str) -> tuple[builtins.list[Change], int]:
        transaction = self._db.transaction(read_only=True)

        @firestore.async_transactional
        async def read(tx: firestore.AsyncTransaction) -> tuple[builtins.list[Change], int]:
            head = [snap async for snap in self._db.get_all([self._head(uid)], transaction=tx)]
            latest = int(head[0].get("version")) if head and head[0].exists else 0
            docs: builtins.list[Change] = []
            for collection in PUBLIC_COLLECTIONS:
                async for snap in self._user(uid).collection(collection).stream(transaction=tx):
                    raw = snap.to_dict() or {}
                    docs.append(
                        Change(
                            collection,
                            snap.id,
                            "added",
                            decode_doc(raw),
                            int(raw.get(VERSION, 0)),
                        )
                    )
            docs.sort(key=lambda c: c.version)
            return docs, latest

        return await read(transaction)

    # -- writes ------------------------------------------------------------------------------------

    async def transact(
        self, uid: str, writes: Sequence[Write], *, if_version: int | None = None, fence: Lease | None = None
    ) -> int:
        writes = list(writes)
        # Encoded before the transaction so a bad value (NaN, a set, ...) fails without a round trip.
        encoded = [encode_doc(w.doc) if isinstance(w, Put | Create) else None for w in writes]
        for w in writes:
            _check_path(w.collection, w.doc_id)
        lock = self._user_locks.get(uid)
        if lock is None:
            lock = self._user_locks[uid] = asyncio.Lock()
        async with lock:
            return await self._transact_retrying(uid, writes, encoded, if_version, fence)

    async def _transact_retrying(
        self,
        uid: str,
        writes: builtins.list[Write],
        encoded: builtins.list[dict[str, Any] | None],
        if_version: int | None,
        fence: Lease | None = None,
    ) -> int:
        for attempt in range(_ATTEMPTS):
            try:
                return await self._transact_once(uid, writes, encoded, if_version, fence)
            except (gexc.Aborted, gexc.Conflict) as exc:
                # Contention on the user's log head: another writer for the same user went first.
                _LOG.debug("transaction for %s aborted (attempt %d): %s", uid, attempt + 1, exc)
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
            except ValueError as exc:
                # The client library wraps "too much contention" as a ValueError from Aborted.
                if not isinstance(exc.__cause__, gexc.Aborted):
                    raise
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
        raise StoreError(f"transaction for user {uid} kept conflicting after {_ATTEMPTS} attempts")

    async def _transact_once(
        self,
        uid: str,
        writes: builtins.list[Write],
        encoded: builtins.list[dict[str, Any] | None],
        if_version: int | None,
        fence: Lease | None = None,
    ) -> int:
        transaction = self._db.transaction(max_attempts=1)

        @firestore.async_transactional
        async def run(tx: firestore.AsyncTransaction) -> int:
            keys = list(dict.fromkeys((w.collection, w.doc_id) for w in writes))
            refs = [self._head(uid), *(self._doc(uid, c, d) for c, d in keys)]
            fence_ref = self._lease_ref(fence.name) if fence is not None else None
            # (`AsyncTransaction.get_all` awaits an async generator in google-cloud-firestore 2.34.)
            reads = [*refs, fence_ref] if fence_ref is not None else refs
            snaps = {snap.reference.path: snap async for snap in self._db.get_all(reads, transaction=tx)}
            if fence is not None and fence_ref is not None:
                # Read in the transaction: a take-over committing before ours aborts and retries it.
                if not lease_held(_lease_of(fence.name, snaps.get(fence_ref.path)), fence):
                    raise LeaseLost(fence.name)
            head = snaps.get(refs[0].path)
            version = int(head.get("version")) if head is not None and head.exists else 0
            if if_version is not None and if_version != version:
                raise VersionConflict(f"version is {version}, not {if_version}")

            exists = {key: snaps[ref.path].exists for key, ref in zip(keys, refs[1:], strict=True)}
            final: dict[tuple[str, str], dict[str, Any] | None] = {}  # None: delete
            changes: builtins.list[tuple[int, str, str, str, dict[str, Any] | None]] = []
            for write, doc in zip(writes, encoded, strict=True):
                key = (write.collection, write.doc_id)
                if isinstance(write, Create) and exists[key]:
                    raise AlreadyExists(write.collection, write.doc_id)
                logged = is_public(write.collection)
                if isinstance(write, Delete):
                    if not exists[key]:
                        continue
                    exists[key] = False
                    final[key] = None
                    if logged:
                        version += 1
                        changes.append((version, write.collection, write.doc_id, "removed", None))
                    continue
                assert doc is not None
                kind = "modified" if exists[key] else "added"
                exists[key] = True
                if logged:
                    version += 1
                    changes.append((version, write.collection, write.doc_id, kind, doc))
                final[key] = {**doc, VERSION: version, UPDATED_AT: firestore.SERVER_TIMESTAMP}

            for (collection, doc_id), body in final.items():
                ref = self._doc(uid, collection, doc_id)
                if body is None:
                    tx.delete(ref)
                else:
                    tx.set(ref, body)
            expire_at = dt.datetime.now(dt.UTC) + self._log_ttl
            for number, collection, doc_id, kind, doc in changes:
                tx.set(
                    self._doc(uid, _CHANGES, f"{number:012d}"),
                    {
                        "version": number,
                        "collection": collection,
                        "docId": doc_id,
                        "kind": kind,
                        "doc": doc,
                        "at": firestore.SERVER_TIMESTAMP,
                        "expireAt": expire_at,  # a Firestore TTL policy on this field bounds the log
                    },
                )
            if changes:
                tx.set(refs[0], {"version": version})
            return version

        return await run(transaction)

    # -- leases ------------------------------------------------------------------------------------

    def _lease_ref(self, name: str) -> firestore.AsyncDocumentReference:
        return self._db.collection(_LEASES).document(urllib.parse.quote(name, safe=""))

    async def _change_lease(self, name: str, change: Callable[[Lease | None], Lease | None]) -> Lease | None:
        ref = self._lease_ref(name)
        for attempt in range(_ATTEMPTS):
            transaction = self._db.transaction(max_attempts=1)

            @firestore.async_transactional
            async def run(tx: firestore.AsyncTransaction) -> Lease | None:
                snaps = [snap async for snap in self._db.get_all([ref], transaction=tx)]
                stored = change(_lease_of(name, snaps[0] if snaps else None))
                if stored is not None:
                    tx.set(ref, {"name": name, "owner": stored.owner, "generation": stored.generation,
                                 "expiresAt": stored.expires_at})
                return stored

            try:
                return await run(transaction)
            except (gexc.Aborted, gexc.Conflict):
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
            except ValueError as exc:
                if not isinstance(exc.__cause__, gexc.Aborted):
                    raise
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
        raise StoreError(f"lease {name} kept conflicting after {_ATTEMPTS} attempts")

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        now = time.time()
        return await self._change_lease(name, lambda cur: lease_taken(cur, name, owner, ttl_s, now))

    async def renew_lease(self, lease: Lease, ttl_s: float) -> Lease | None:
        now = time.time()
        return await self._change_lease(
            lease.name,
            lambda cur: Lease(lease.name, lease.owner, lease.generation, now + ttl_s) if lease_held(cur, lease) else None,
        )

    async def release_lease(self, lease: Lease) -> None:
        await self._change_lease(
            lease.name,
            lambda cur: Lease(lease.name, lease.owner, lease.generation, 0.0) if lease_held(cur, lease) else None,
        )

    async def lease_holder(self, name: str) -> Lease | None:
        return _lease_of(name, await self._lease_ref(name).get())

    # -- subscriptions -----------------------------------------------------------------------------

    def subscribe(self, uid: str) -> AsyncIterator[Change]:
        # Tail the log from a little before now (see _CLOCK_SKEW), registered at call time like the
        # embedded store's, so nothing committed between this call and a following read is lost.
        tail = _LogTail(self, uid, since=dt.datetime.now(dt.UTC) - _CLOCK_SKEW)
        self._subscriptions.add(tail)
        return tail.changes()

    def _sync_client(self) -> firestore.Client:
        with self._watch_lock:
            if self._watch_client is None:
                self._watch_client = firestore.Client(
                    project=self._db.project, credentials=self._db._credentials
                )
            return self._watch_client


def _lease_of(name: str, snap: Any) -> Lease | None:
    if snap is None or not snap.exists:
        return None
    raw = snap.to_dict() or {}
    return Lease(name, str(raw["owner"]), int(raw["generation"]), float(raw["expiresAt"]))


def _check_path(collection: str, doc_id: str) -> None:
    for part in (collection, doc_id):
        if not part or "/" in part or part in (".", "..") or (part.startswith("__") and part.endswith("__")):
            raise ValueError(f"{part!r} cannot be a Firestore collection or document id")


def _log_change(raw: dict[str, Any] | None) -> Change:
    raw = raw or {}
    doc = raw.get("doc")
    return Change(
        collection=raw["collection"],
        doc_id=raw["docId"],
        kind=raw["kind"],
        doc=decode_doc(doc) if doc is not None else None,
        version=int(raw["version"]),
    )


class _LogTail:
    """One `subscribe`: an `on_snapshot` watch on the user's change log, re-created if its stream dies.

    The watch's callbacks arrive on the client library's thread and are posted to the event loop.
    """

    def __init__(self, store: FirestoreStore, uid: str, *, since: dt.datetime) -> None:
        self._store = store
        self._uid = uid
        self._since = since
        self._last = 0  # highest version delivered; a re-created watch starts after it
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[list[Change] | None] = asyncio.Queue()
        self._watch: Any = None
        self._generation = 0
        self._stopped = False
        self._start_watch()

    def _start_watch(self) -> None:
        self._generation += 1
        generation = self._generation
        log = self._store._sync_client().collection("users").document(self._uid).collection(_CHANGES)
        if self._last:
            query = log.where(filter=FieldFilter("version", ">", self._last))
        else:
            query = log.where(filter=FieldFilter("at", ">=", self._since))

        def on_snapshot(_docs: Any, changes: Any, _read_time: Any) -> None:
            batch = sorted(
                (_log_change(c.document.to_dict()) for c in changes if c.type.name == "ADDED"),
                key=lambda change: change.version,
            )
            if batch:
                with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                    self._loop.call_soon_threadsafe(self._deliver, generation, batch)

        watch = query.on_snapshot(on_snapshot)
        # The library re-opens a failed stream at once, forever (a busy loop while Firestore is
        # unreachable); one re-open a second keeps its resume-token recovery without the spin. (The app's
        # listener turns the library's re-open off instead: `leave_reconnects_to_caller`. Doing the same
        # here left this tail without changes for 15 s once in a loaded CI run, so the tail keeps the
        # library's recovery, which has held in every run.)
        if watch._rpc is not None:
            watch._rpc._reopen_throttle = _Throttle(access_limit=1, time_window=dt.timedelta(seconds=1))
        self._watch = watch

    def _deliver(self, generation: int, batch: list[Change]) -> None:
        if generation == self._generation and not self._stopped:
            self._queue.put_nowait(batch)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put_nowait(None)
        self._close_watch()

    def _close_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                watch.unsubscribe()

    async def changes(self) -> AsyncIterator[Change]:
        delay = 0.1
        try:
            while True:
                try:
                    batch = await asyncio.wait_for(self._queue.get(), _WATCH_CHECK_S)
                except TimeoutError:
                    if self._stopped or self._watch is None or self._watch.is_active:
                        continue
                    # The stream died (a non-recoverable error in the library's thread): start again after
                    # the last version delivered, with backoff.
                    _LOG.warning("change-log watch for %s stopped; resubscribing in %.1fs", self._uid, delay)
                    self._close_watch()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RESUBSCRIBE_MAX_S)
                    self._start_watch()
                    continue
                if batch is None:
                    return
                delay = 0.1
                for change in batch:
                    if change.version > self._last:
                        self._last = change.version
                        yield change
        finally:
            self.stop()
            self._store._subscriptions.discard(self)
