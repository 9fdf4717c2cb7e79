"""`StateStore`: where the backend keeps each user's documents, with a per-user change log.

The layout mirrors Firestore: `users/{uid}/{collection}/{doc_id}`. Collections whose name starts with
"_" (idempotency keys, the paper account) are private to the backend: they are stored and read like the
others but never enter the change log, so clients never see them.

Every write to a public collection appends one change with the next per-user version (1, 2, 3, ...);
a transaction's changes get consecutive versions. The stream (`/v1/stream`) resumes from a version, so
versions are never reused and never skipped inside a committed transaction. The log is bounded (the
newest N changes per user in SQLite, a TTL on Firestore): a resume from before what is kept gets
`ChangesCompacted`, and the stream answers it with a reset and a snapshot.

Implementations: `backend_stub.store.sqlite.SqliteStore` (embedded, the default) and
`backend_stub.firestore_store.FirestoreStore` (firebase-admin). `FirestoreStore()` with no arguments must
work: it reads its project and emulator host from the environment.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from services.live.types import Change

__all__ = [
    "ORDERS",
    "POSITIONS",
    "ALERTS",
    "INSIGHTS",
    "SETTINGS",
    "STRATEGIES",
    "IDEMPOTENCY",
    "ACCOUNT",
    "PUBLIC_COLLECTIONS",
    "Change",
    "Put",
    "Create",
    "Delete",
    "Write",
    "StoreError",
    "AlreadyExists",
    "VersionConflict",
    "SubscriberTooSlow",
    "ChangesCompacted",
    "Lease",
    "LeaseLost",
    "StateStore",
    "Page",
    "PageKey",
    "is_public",
]

ORDERS = "orders"
POSITIONS = "positions"
ALERTS = "alerts"
INSIGHTS = "insights"
SETTINGS = "settings"  # one document, id "app"
STRATEGIES = "strategies"  # saved strategies, with the paper strategy runner's state
IDEMPOTENCY = "_idempotency"  # clientOrderId → {"orderId", "fingerprint"}
ACCOUNT = "_account"  # the paper account's balances

PUBLIC_COLLECTIONS = (ORDERS, POSITIONS, ALERTS, INSIGHTS, SETTINGS, STRATEGIES)


def is_public(collection: str) -> bool:
    """Whether changes in `collection` enter the change log (and so reach clients)."""
    return not collection.startswith("_")


@dataclass(frozen=True, slots=True)
class Put:
    """Create or replace `users/{uid}/{collection}/{doc_id}` with `doc` (JSON values only)."""

    collection: str
    doc_id: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Create:
    """Create the document; the whole transaction fails with `AlreadyExists` if it exists."""

    collection: str
    doc_id: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the document (no change is logged when it did not exist)."""

    collection: str
    doc_id: str


Write = Put | Create | Delete

PageKey = tuple[int, str]  # (timestamp, doc id) of the last document of a page: where the next one starts


@dataclass(frozen=True, slots=True)
class Page:
    """Up to `limit` documents, newest first; `next` is where the following page starts (None: no more)."""

    docs: builtins.list[dict[str, Any]]
    next: PageKey | None


class StoreError(Exception):
    """Base of the store's errors."""


class AlreadyExists(StoreError):
    """A `Create` found its document present; nothing in the transaction was written."""

    def __init__(self, collection: str, doc_id: str) -> None:
        super().__init__(f"{collection}/{doc_id} already exists")
        self.collection = collection
        self.doc_id = doc_id


class VersionConflict(StoreError):
    """`transact(..., if_version=V)` found the user's version moved past V; nothing was written."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A named lease held by `owner` until `expires_at` (epoch seconds). `generation` grows by one each
    time the lease changes hands, never otherwise: a write fenced by it (`transact(..., fence=lease)`) is
    refused once another owner has taken the lease, so a stale owner cannot overwrite its successor."""

    name: str
    owner: str
    generation: int
    expires_at: float


def lease_taken(current: Lease | None, name: str, owner: str, ttl_s: float, now: float) -> Lease | None:
    """What `acquire_lease` stores, given the lease as stored now (None: another owner holds it)."""
    if current is None:
        return Lease(name, owner, 1, now + ttl_s)
    if current.owner == owner:
        return Lease(name, owner, current.generation, now + ttl_s)
    if current.expires_at > now:
        return None
    return Lease(name, owner, current.generation + 1, now + ttl_s)


def lease_held(current: Lease | None, lease: Lease) -> bool:
    """Whether `lease` is still the stored one's owner and generation (expiry aside)."""
    return current is not None and (current.owner, current.generation) == (lease.owner, lease.generation)


class LeaseLost(StoreError):
    """A fenced write's lease has passed to another owner (or been released); nothing was written."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lease {name} is no longer ours")
        self.name = name


class ChangesCompacted(StoreError):
    """The change log no longer holds every change after the version asked for (old entries are pruned
    to bound storage); the reader must start again from `snapshot`."""


class SubscriberTooSlow(StoreError):
    """A subscriber fell too far behind and was dropped; resume with `changes_since`."""


@runtime_checkable
class StateStore(Protocol):
    """Per-user documents with an ordered change log. An async context manager; `aclose` releases it.

    Docs are dicts of JSON values (str, int, float, bool, None, lists, dicts). Every method may be called
    concurrently from the event loop; none blocks it.
    """

    async def get(self, uid: str, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None."""
        ...

    async def list(self, uid: str, collection: str) -> builtins.list[dict[str, Any]]:
        """Every document of the user's collection, ordered by doc id."""
        ...

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
        """The user's docs newest first by (top-level `timestamp`, a missing one counting as 0; then doc
        id, descending), at most `limit`, starting after `after`; with `field`, only docs whose `field`
        is one of `values`. Served from an index: the cost is the page's, not the collection's. The
        embedded store keeps those indexes for orders and alerts only (ValueError for others)."""
        ...

    async def find(
        self, collection: str, field: str, value: Any
    ) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(uid, doc) of every user's doc in `collection` whose top-level `field` equals `value`.

        A collection-group query; the paper broker rebuilds its book of open orders with it at start.
        """
        ...

    async def transact(
        self, uid: str, writes: Sequence[Write], *, if_version: int | None = None, fence: Lease | None = None
    ) -> int:
        """Apply `writes` atomically and durably (acknowledged means it survives a crash).

        Returns the user's latest version afterwards. Raises `AlreadyExists` when a `Create` meets an
        existing doc, `VersionConflict` when `if_version` is given and differs from the user's latest
        version, and `LeaseLost` when `fence` is given and that lease is now another owner's (or
        another generation), checked inside the same transaction; in each case nothing is written.
        """
        ...

    # -- leases (workers own symbols through them; `backend_stub.workers`) -------------------------
    # Expiry is judged on the caller's clock (time.time()): owners on different machines need clocks
    # closer than the TTL. Every call is one transaction, so two contenders never both win.

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        """Take lease `name` for `ttl_s` seconds when it is free, expired or already `owner`'s (then it
        is renewed, same generation); None while another owner holds it."""
        ...

    async def renew_lease(self, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend a lease still held (same owner and generation, even if it expired meanwhile while
        nobody took it); None when it was lost."""
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Give the lease up now (when still held), so a successor need not wait for it to expire."""
        ...

    async def lease_holder(self, name: str) -> Lease | None:
        """The lease as stored (expired or not), None if it was never taken."""
        ...

    async def latest_version(self, uid: str) -> int:
        """The version of the user's last change, 0 if none."""
        ...

    async def changes_since(self, uid: str, version: int) -> builtins.list[Change]:
        """Every logged change of the user with a version greater than `version`, in version order.

        The log is bounded: raises `ChangesCompacted` when entries after `version` were pruned, so a
        reader never mistakes a partial log for the whole story."""
        ...

    async def snapshot(self, uid: str) -> tuple[builtins.list[Change], int]:
        """The user's current public docs as "added" changes (each with the version of its last write,
        ordered by it) and the latest version, read consistently."""
        ...

    def subscribe(self, uid: str) -> AsyncIterator[Change]:
        """Changes of this user committed after the call, in version order, until the caller stops.

        In-process notification. Subscribe before reading `changes_since`/`snapshot` and skip versions
        already seen, so nothing committed in between is lost. Raises `SubscriberTooSlow` if the
        consumer falls far behind.
        """
        ...

    async def aclose(self) -> None: ...
