"""`SqliteStore`: the embedded `StateStore` — one SQLite file (`$SKEET_DATA_DIR/state.db`).

WAL with `synchronous=FULL`: a transaction is on disk before `transact` returns, so nothing acknowledged is
lost when the process is killed. All SQLite work runs on one dedicated thread (one connection), which also
serialises writers; the event loop only awaits its futures. Change notifications are posted to the loop
from that thread in commit order.

Group commit: the thread takes every transaction waiting in its queue (up to `MAX_BATCH`) and applies
them in one SQLite transaction, each inside its own savepoint (one that fails — `AlreadyExists`,
`VersionConflict`, a non-JSON doc — is rolled back alone), then commits once: one fsync for the lot.
Nobody's `transact` returns before that commit is on disk. Batches form by themselves: while one
commit's fsync runs, the next transactions queue up; a lone write is committed at once, as before.
Reads never run inside a batch (they would see writes not yet durable): a read queued behind writes
waits for their commit.

Point reads (`get`, `latest_version`: one index lookup, microseconds) run on the event loop on a
second, read-only connection instead: WAL gives it the last committed state without waiting for the
writer, and it spares each request the hand-off to the store's thread and back (a commit is visible to
it before any `transact` returns, so a caller reads its own writes).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import orjson

from backend_stub.store.base import (
    AlreadyExists,
    Change,
    ChangesCompacted,
    Create,
    Delete,
    Lease,
    LeaseLost,
    Page,
    PageKey,
    SubscriberTooSlow,
    VersionConflict,
    Write,
    is_public,
    lease_held,
    lease_taken,
)
from services.auth.devtoken import private_dir, private_file

T = TypeVar("T")

# The physical layout (schema version 2), laid out for what an order's commit writes: every B-tree page a
# commit touches is written whole to the WAL and fsynced, so each table or index an order reaches costs a
# page, unless the batch's other orders share it.
# - `documents`: a rowid table, so new documents (an order, its idempotency claim) append to the last page,
#   which a batch's orders share; `documents_key` finds them (small entries: a page holds ~60 of them).
#   `status` and `ts` are the paged collections' `status` and `IFNULL(timestamp, 0)` as columns (NULL for
#   other collections): pages are read through `documents_by_time` (every paged doc) and the partial
#   `<collection>_open` indexes (open orders, active alerts only: an order that never rests never enters it).
# - `change_log`: append-only (rowid), found per user through `change_log_by_user (uid, version)`; the
#   user's version is the newest entry's, so no per-user row is rewritten on every commit.
# Version 1 (docs and changes clustered per user WITHOUT ROWID, a users row holding each version, two
# JSON-expression indexes per paged collection) wrote 12-13 WAL pages per order on `bench/load.py`, this 6-8.
# `_create_or_migrate` moves such a file's contents over (`_MIGRATE_V1`) when it is first opened.
SCHEMA_VERSION = 2
PAGED = ("orders", "alerts")  # listed page by page
OPEN = {"orders": "open", "alerts": "active"}  # the one status each paged collection keeps an index of
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    uid TEXT NOT NULL, collection TEXT NOT NULL, doc_id TEXT NOT NULL,
    doc TEXT NOT NULL, version INTEGER NOT NULL, status, ts
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_key ON documents (uid, collection, doc_id);
CREATE INDEX IF NOT EXISTS documents_by_time ON documents (uid, collection, ts, doc_id) WHERE ts IS NOT NULL;
{open_indexes}
CREATE TABLE IF NOT EXISTS change_log (
    uid TEXT NOT NULL, version INTEGER NOT NULL, collection TEXT NOT NULL, doc_id TEXT NOT NULL,
    kind TEXT NOT NULL, doc TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS change_log_by_user ON change_log (uid, version);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, generation INTEGER NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
""".format(open_indexes="\n".join(
    f"CREATE INDEX IF NOT EXISTS {c}_open ON documents (uid, ts, doc_id) WHERE collection='{c}' AND status='{s}';"
    for c, s in OPEN.items()
))
# Version 1's paged fields, as its indexes computed them (and so as `status`/`ts` must hold them).
_V1_TS = "IFNULL(json_extract(doc, '$.timestamp'), 0)"
_V1_STATUS = "json_extract(doc, '$.status')"
_PAGED_SQL = ",".join(f"'{c}'" for c in PAGED)
_MIGRATE_V1 = f"""
INSERT INTO documents (uid, collection, doc_id, doc, version, status, ts)
    SELECT uid, collection, doc_id, doc, version,
           CASE WHEN collection IN ({_PAGED_SQL}) THEN {_V1_STATUS} END,
           CASE WHEN collection IN ({_PAGED_SQL}) THEN {_V1_TS} END
    FROM docs ORDER BY uid, collection, doc_id;
INSERT INTO change_log (uid, version, collection, doc_id, kind, doc)
    SELECT uid, version, collection, doc_id, kind, doc FROM changes ORDER BY uid, version;
DROP TABLE docs;
DROP TABLE changes;
DROP TABLE users;
"""

_INSERT = "INSERT INTO documents (uid, collection, doc_id, doc, version, status, ts) VALUES (?,?,?,?,?,?,?)"
_UPSERT = _INSERT + (
    " ON CONFLICT (uid, collection, doc_id) DO UPDATE SET doc=excluded.doc, version=excluded.version, "
    "status=excluded.status, ts=excluded.ts"
)
_UPDATE = "UPDATE documents SET doc=?, version=? WHERE uid=? AND collection=? AND doc_id=?"
_UPDATE_PAGED = "UPDATE documents SET doc=?, version=?, status=?, ts=? WHERE uid=? AND collection=? AND doc_id=?"

_QUEUE_LIMIT = 10_000  # changes a subscriber may lag before it is dropped
MAX_BATCH = 256  # transactions committed together at most (one fsync)
_ROWS_PER_INSERT = 100  # change-log rows in one INSERT (6 parameters each, well under SQLite's limit)
KEEP_CHANGES = 10_000  # newest changes kept per user; a stream resuming from before them gets a snapshot


class SqliteStore:
    """Embedded state store. Use as `async with SqliteStore(path) as store:`."""

    def __init__(self, path: Path | str, *, keep_changes: int = KEEP_CHANGES, poll_s: float | None = None) -> None:
        """`poll_s`: subscriptions also read the change log this often, to see what other processes
        sharing the file commit (workers: `SKEET_ROLE=api|worker`); None: this process's commits only."""
        if keep_changes < 1:
            raise ValueError("keep_changes must be at least 1")
        self._path = Path(path)
        self._keep = keep_changes
        self.poll_s = poll_s
        self._prune_every = max(1, keep_changes // 8)  # prune in batches: one DELETE per keep/8 versions
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve_jobs, name="sqlite-store", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # the event loop's own, read-only
        self.commits = 0  # SQLite commits of transactions (one per batch): transactions / commits = batching
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[str, set[asyncio.Queue[Change | None]]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> SqliteStore:
        """Create the file and schema if needed. Called by `__aenter__`."""
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        await self._run(self._open_sync)
        reader = sqlite3.connect(self._path, isolation_level=None)
        reader.execute("PRAGMA query_only=1")
        reader.execute("PRAGMA busy_timeout=1000")  # WAL readers wait only while the WAL index is rebuilt
        self._reader = reader
        return self

    async def __aenter__(self) -> SqliteStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._run(self._close_sync)
        if self._thread.is_alive():
            self._jobs.put(None)  # its last job (the close) is done: the thread ends without waiting
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    def _open_sync(self) -> None:
        # Every user's orders are in here: owner-only. SQLite gives the -wal and -shm files the main
        # file's mode, so creating that one 0600 covers them; files of an older version are tightened.
        private_dir(self._path.parent)
        os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        for path in (self._path, *(self._path.with_name(self._path.name + s) for s in ("-wal", "-shm"))):
            with contextlib.suppress(FileNotFoundError):
                private_file(path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        _create_or_migrate(conn)
        self._conn = conn

    def _close_sync(self) -> None:
        assert self._conn is not None
        self._conn.close()
        self._conn = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the store's thread (never inside a write batch)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Read(lambda: fn(*args), future))
        return await future

    # -- the store's thread --------------------------------------------------------------------------

    def _serve_jobs(self) -> None:
        job = self._jobs.get()
        while job is not None:
            if isinstance(job, _Read):
                self._settle([(job.future, *_call(job.fn))])
                job = self._jobs.get()
                continue
            batch = [job]
            job = None
            while len(batch) < MAX_BATCH:
                try:
                    queued = self._jobs.get_nowait()
                except Empty:
                    break
                if not isinstance(queued, _Transaction):
                    job = queued  # a read, or the end: after this batch's commit
                    break
                batch.append(queued)
            self._commit(batch)
            if job is None:
                job = self._jobs.get()

    def _commit(self, batch: builtins.list[_Transaction]) -> None:
        """Apply `batch` in one SQLite transaction, a savepoint each, and commit once. A lone transaction
        (most of them at a modest rate) needs no savepoint: if it fails, the whole one is rolled back."""
        db = self._db
        outcomes: builtins.list[tuple[_Transaction, Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                tx = batch[0]
                try:
                    outcomes.append((tx, self._apply(tx.uid, tx.writes, tx.if_version, tx.fence), None))
                except Exception as exc:
                    db.execute("ROLLBACK")
                    outcomes.append((tx, None, exc))
            else:
                for tx in batch:
                    db.execute("SAVEPOINT tx")
                    try:
                        result = self._apply(tx.uid, tx.writes, tx.if_version, tx.fence)
                    except Exception as exc:
                        db.execute("ROLLBACK TO tx")
                        db.execute("RELEASE tx")
                        outcomes.append((tx, None, exc))
                        continue
                    db.execute("RELEASE tx")
                    outcomes.append((tx, result, None))
            if db.in_transaction:
                db.execute("COMMIT")
                self.commits += 1
        except Exception as exc:  # the commit itself failed (disk full, I/O error): nothing is written
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            outcomes = [(tx, None, exc) for tx in batch]
        published: builtins.list[tuple[str, builtins.list[_Logged]]] = []
        settled: builtins.list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        for tx, result, error in outcomes:
            if error is None:
                version, changes = result
                if changes:
                    published.append((tx.uid, changes))
                settled.append((tx.future, version, None))
            else:
                settled.append((tx.future, None, error))
        self._settle(settled, published)

    def _settle(
        self,
        results: builtins.list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        published: builtins.list[tuple[str, builtins.list[_Logged]]] | None = None,
    ) -> None:
        """Hand results (and, first, the batch's changes, in commit order) to the event loop."""
        if self._loop is None:
            return

        def deliver() -> None:
            for uid, rows in published or ():
                if self._subscribers.get(uid):  # decoded here, on the loop: a detached copy per change
                    self._publish(uid, [
                        Change(c, d, k, json.loads(doc) if doc is not None else None, v)  # type: ignore[arg-type]
                        for _, v, c, d, k, doc in rows
                    ])
            for future, value, error in results:
                if future.done():  # the caller was cancelled
                    continue
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(deliver)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteStore is not open (use `async with`)")
        return self._conn

    # -- reads ---------------------------------------------------------------------------------------

    @property
    def _read_db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open (use `async with`)")
        return self._reader

    async def get(self, uid: str, collection: str, doc_id: str) -> dict[str, Any] | None:
        row = self._read_db.execute(
            "SELECT doc FROM documents WHERE uid=? AND collection=? AND doc_id=?", (uid, collection, doc_id)
        ).fetchone()
        return json.loads(row[0]) if row else None

    async def list(self, uid: str, collection: str) -> builtins.list[dict[str, Any]]:
        def read() -> builtins.list[dict[str, Any]]:
            rows = self._db.execute(
                "SELECT doc FROM documents WHERE uid=? AND collection=? ORDER BY doc_id", (uid, collection)
            ).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._run(read)

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
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if field is not None and field != "status":
            raise ValueError("pages filter on status only (the one indexed field)")
        # The collection (and an indexed status) is spelt into the SQL, so the planner may use its partial index.
        if collection not in PAGED:
            raise ValueError(f"pages are kept for {', '.join(PAGED)} only")
        where = ["uid=?", f"collection='{collection}'"]
        args: builtins.list[Any] = [uid]
        # The one status kept in an index (open orders, active alerts): a range of <c>_open. Others, or
        # several (closed, canceled, ...): documents_by_time, filtered; what it skips is bounded by the
        # caps on open orders and active alerts.
        if field is not None and list(values) == [OPEN[collection]]:
            index = f"{collection}_open"
            where.append(f"status='{OPEN[collection]}'")
        else:
            index = "documents_by_time"
            where.append("ts IS NOT NULL")
            if field is not None:
                where.append(f"status IN ({','.join('?' * len(values))})")
                args.extend(values)
        if after is not None:
            where.append("(ts, doc_id) < (?, ?)")
            args.extend(after)
        sql = (
            f"SELECT doc, ts, doc_id FROM documents INDEXED BY {index} WHERE {' AND '.join(where)} "
            f"ORDER BY ts DESC, doc_id DESC LIMIT ?"
        )
        args.append(limit + 1)

        def read() -> Page:
            rows = self._db.execute(sql, args).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            return Page(
                docs=[json.loads(row[0]) for row in rows],
                next=(int(rows[-1][1]), rows[-1][2]) if more else None,
            )

        return await self._run(read)

    async def find(
        self, collection: str, field: str, value: Any
    ) -> builtins.list[tuple[str, dict[str, Any]]]:
        args: tuple[Any, ...]
        if field == "status" and collection in PAGED:  # the column; an open order or active alert: its index
            # The indexed status is spelt into the SQL, so the planner may use its partial index.
            status, args = (f"'{value}'", ()) if value == OPEN[collection] else ("?", (value,))
            sql = f"SELECT uid, doc FROM documents WHERE collection='{collection}' AND status={status} ORDER BY uid, doc_id"
        else:
            sql = "SELECT uid, doc FROM documents WHERE collection=? AND json_extract(doc, ?) = ? ORDER BY uid, doc_id"
            args = (collection, "$." + json.dumps(field), value)

        def read() -> builtins.list[tuple[str, dict[str, Any]]]:
            return [(row[0], json.loads(row[1])) for row in self._db.execute(sql, args).fetchall()]

        return await self._run(read)

    async def latest_version(self, uid: str) -> int:
        return _version_of(self._read_db, uid)

    def _version_sync(self, uid: str) -> int:
        return _version_of(self._db, uid)

    async def changes_since(self, uid: str, version: int) -> builtins.list[Change]:
        def read() -> builtins.list[Change]:
            oldest = self._db.execute("SELECT MIN(version) FROM change_log WHERE uid=?", (uid,)).fetchone()[0]
            if version < self._version_sync(uid) and (oldest is None or oldest > version + 1):
                raise ChangesCompacted(f"changes after version {version} were pruned")
            rows = self._db.execute(
                "SELECT version, collection, doc_id, kind, doc FROM change_log WHERE uid=? AND version>? "
                "ORDER BY version",
                (uid, version),
            ).fetchall()
            return [
                Change(collection=c, doc_id=d, kind=k, doc=json.loads(doc) if doc else None, version=v)
                for v, c, d, k, doc in rows
            ]

        return await self._run(read)

    async def snapshot(self, uid: str) -> tuple[builtins.list[Change], int]:
        def read() -> tuple[builtins.list[Change], int]:
            # One read transaction so the docs and the version agree.
            self._db.execute("BEGIN")
            try:
                rows = self._db.execute(
                    "SELECT version, collection, doc_id, doc FROM documents WHERE uid=? AND collection NOT LIKE '\\_%' "
                    "ESCAPE '\\' ORDER BY version",
                    (uid,),
                ).fetchall()
                latest = self._version_sync(uid)
            finally:
                self._db.execute("COMMIT")
            docs = [
                Change(collection=c, doc_id=d, kind="added", doc=json.loads(doc), version=v)
                for v, c, d, doc in rows
            ]
            return docs, latest

        return await self._run(read)

    # -- writes --------------------------------------------------------------------------------------

    async def transact(
        self, uid: str, writes: Sequence[Write], *, if_version: int | None = None, fence: Lease | None = None
    ) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Transaction(uid, list(writes), if_version, future, fence))
        return await future

    def _apply(
        self, uid: str, writes: builtins.list[Write], if_version: int | None, fence: Lease | None = None
    ) -> tuple[int, builtins.list[_Logged]]:
        """One transaction's writes, inside the batch's SQLite transaction; (version, its change-log rows).

        The rows carry each doc as stored (text): the loop decodes them for subscribers when it delivers
        them, and only for a user somebody is subscribed to (most writes have no listener here)."""
        db = self._db
        if fence is not None and not lease_held(self._lease_sync(fence.name), fence):
            raise LeaseLost(fence.name)
        version = self._version_sync(uid)
        if if_version is not None and if_version != version:
            raise VersionConflict(f"version is {version}, not {if_version}")
        changes: builtins.list[_Logged] = []
        for write in writes:
            logged = is_public(write.collection)
            if isinstance(write, Delete):
                if not db.execute(
                    "DELETE FROM documents WHERE uid=? AND collection=? AND doc_id=?",
                    (uid, write.collection, write.doc_id),
                ).rowcount:
                    continue  # it did not exist: nothing to log
                if logged:
                    version += 1
                    changes.append((uid, version, write.collection, write.doc_id, "removed", None))
                continue
            text = _dump(write.doc)
            status, ts = _paged(write.collection, write.doc)
            if logged:
                version += 1
            row = (uid, write.collection, write.doc_id, text, version, status, ts)
            if isinstance(write, Create):  # the key's first write: the unique key refuses a second
                try:
                    db.execute(_INSERT, row)
                except sqlite3.IntegrityError:
                    raise AlreadyExists(write.collection, write.doc_id) from None
                exists = False
            elif not logged:  # not in the change log: added or modified alike, updated in place
                db.execute(_UPSERT, row)
                continue
            else:
                # An update, else an insert: whether it existed (modified or added) without a SELECT first.
                # Statements are what this thread pays for: each one hands the GIL to the loop and back.
                # Only a paged doc's update names `status`/`ts`: an index whose columns are set is rewritten.
                exists = db.execute(
                    _UPDATE_PAGED if ts is not None else _UPDATE,
                    (text, version, status, ts, *row[:3]) if ts is not None else (text, version, *row[:3]),
                ).rowcount > 0
                if not exists:
                    db.execute(_INSERT, row)
            if logged:
                changes.append((uid, version, write.collection, write.doc_id, "modified" if exists else "added", text))
        if changes:
            for start in range(0, len(changes), _ROWS_PER_INSERT):  # one statement for a transaction's rows
                rows = changes[start:start + _ROWS_PER_INSERT]
                db.execute(
                    "INSERT INTO change_log (uid, version, collection, doc_id, kind, doc) VALUES "
                    + ",".join(["(?,?,?,?,?,?)"] * len(rows)),
                    [value for row in rows for value in row],
                )
            if version // self._prune_every != (version - len(changes)) // self._prune_every:
                db.execute("DELETE FROM change_log WHERE uid=? AND version<=?", (uid, version - self._keep))
        return version, changes

    # -- leases --------------------------------------------------------------------------------------
    # Each is its own IMMEDIATE transaction on the store's thread (between write batches), so processes
    # sharing the file serialise on SQLite's write lock: two contenders never both win.

    def _lease_sync(self, name: str) -> Lease | None:
        row = self._db.execute(
            "SELECT owner, generation, expires_at FROM leases WHERE name=?", (name,)
        ).fetchone()
        return Lease(name, row[0], int(row[1]), float(row[2])) if row else None

    def _lease_transaction(self, change: Callable[[Lease | None], Lease | None]) -> Callable[[str], Lease | None]:
        def run(name: str) -> Lease | None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                stored = change(self._lease_sync(name))
                if stored is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO leases (name, owner, generation, expires_at) VALUES (?,?,?,?)",
                        (name, stored.owner, stored.generation, stored.expires_at),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return stored

        return run

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        now = time.time()
        return await self._run(self._lease_transaction(lambda cur: lease_taken(cur, name, owner, ttl_s, now)), name)

    async def renew_lease(self, lease: Lease, ttl_s: float) -> Lease | None:
        now = time.time()

        def renew(current: Lease | None) -> Lease | None:
            return Lease(lease.name, lease.owner, lease.generation, now + ttl_s) if lease_held(current, lease) else None

        return await self._run(self._lease_transaction(renew), lease.name)

    async def release_lease(self, lease: Lease) -> None:
        def release(current: Lease | None) -> Lease | None:
            return Lease(lease.name, lease.owner, lease.generation, 0.0) if lease_held(current, lease) else None

        await self._run(self._lease_transaction(release), lease.name)

    async def lease_holder(self, name: str) -> Lease | None:
        return await self._run(self._lease_sync, name)

    # -- subscriptions -------------------------------------------------------------------------------

    def _publish(self, uid: str, changes: builtins.list[Change]) -> None:
        for queue in list(self._subscribers.get(uid, ())):
            for change in changes:
                if queue.qsize() >= _QUEUE_LIMIT:
                    queue.put_nowait(None)  # marks the overflow; the reader raises
                    self._subscribers[uid].discard(queue)
                    break
                queue.put_nowait(change)

    def subscribe(self, uid: str) -> AsyncIterator[Change]:
        # Registered now (not at the first `anext`), so changes committed before iteration starts are kept.
        subscription = _Subscription(self, uid)
        if self.poll_s is not None:  # the version now: what the polls deliver starts after it
            subscription.last = _version_of(self._read_db, uid)
        self._subscribers.setdefault(uid, set()).add(subscription.queue)
        return subscription

    def _unsubscribe(self, uid: str, queue: asyncio.Queue[Change | None]) -> None:
        subscribers = self._subscribers.get(uid)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[uid]


def _create_or_migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring a file of schema version 1 over to it, in one IMMEDIATE transaction: of
    processes opening the file at once (the API and workers), one migrates and the others find it done;
    a crash midway leaves the version-1 file as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            v1 = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='docs'").fetchone()
            for statement in _statements(_SCHEMA + (_MIGRATE_V1 if v1 else "")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> builtins.list[str]:
    """`script`'s statements (none of ours holds a ';' inside), to run inside one transaction, which
    `executescript` would commit first."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]


@dataclass(slots=True)
class _Read:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Transaction:
    uid: str
    writes: builtins.list[Write]
    if_version: int | None
    future: asyncio.Future[int] = field(repr=False)
    fence: Lease | None = None


_Job = _Read | _Transaction

# Docs as text: orjson (several times faster than json on an order document, a good part of the store
# thread's time per order). Unlike json it writes NaN and infinities as null instead of refusing them, so
# a doc that does not read back equal (NaN != NaN) goes to the strict encoder, which refuses it as before;
# so does anything orjson does not take (an int beyond 64 bits, a non-text key), for json to decide.
# Reads stay with json: orjson reads an int beyond 64 bits as a float.
_STRICT = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _dump(doc: dict[str, Any]) -> str:
    try:
        text = orjson.dumps(doc)
    except TypeError:
        return _STRICT(doc)
    if orjson.loads(text) != doc:
        return _STRICT(doc)
    return text.decode()


# A change-log row as written: (uid, version, collection, doc_id, kind, doc as stored or None).
_Logged = tuple[str, int, str, str, str, str | None]


def _version_of(db: sqlite3.Connection, uid: str) -> int:
    """The user's version: its newest change-log entry's (pruning keeps the newest), 0 if none."""
    return int(db.execute("SELECT IFNULL(MAX(version), 0) FROM change_log WHERE uid=?", (uid,)).fetchone()[0])


def _paged(collection: str, doc: dict[str, Any]) -> tuple[Any, Any]:
    """(status, ts) columns of a doc: its `status` and `IFNULL(timestamp, 0)` in a paged collection, as
    SQLite's json_extract reads them from the stored text; (None, None) elsewhere."""
    if collection not in PAGED:
        return None, None
    return _sql_value(doc.get("status")), _sql_value(doc.get("timestamp"), 0)


def _sql_value(value: Any, missing: Any = None) -> Any:
    if value is None:
        return missing
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    return _dump(value)  # an object or array: json_extract gives its JSON text


def _call(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return fn(), None
    except Exception as exc:
        return None, exc


class _Subscription:
    """An async iterator over one user's new changes; `aclose()` unregisters it."""

    def __init__(self, store: SqliteStore, uid: str) -> None:
        self._store = store
        self._uid = uid
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._closed = False
        self.last = -1  # polling: the highest version delivered (-1: not polling)
        self._polled: builtins.list[Change] = []

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Change:
        if self._closed:
            raise StopAsyncIteration
        if self._store.poll_s is None:
            return await self._checked(await self.queue.get())
        # Polling: the log is read in version order from the last one delivered, so changes committed by
        # this process (their notification only wakes us) and by others interleave without a gap.
        while not self._polled:
            with contextlib.suppress(TimeoutError):
                await self._checked(await asyncio.wait_for(self.queue.get(), self._store.poll_s))
                while not self.queue.empty():
                    await self._checked(self.queue.get_nowait())
            try:
                self._polled = await self._store.changes_since(self._uid, self.last)
            except ChangesCompacted:
                await self.aclose()
                raise SubscriberTooSlow(f"subscriber of {self._uid} fell behind the kept log") from None
        change = self._polled.pop(0)
        self.last = change.version
        return change

    async def _checked(self, change: Change | None) -> Change:
        if change is None:
            await self.aclose()
            if self._store._conn is None:
                raise StopAsyncIteration
            raise SubscriberTooSlow(f"subscriber of {self._uid} fell {_QUEUE_LIMIT} changes behind")
        return change

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._store._unsubscribe(self._uid, self.queue)
