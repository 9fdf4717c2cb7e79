"""Paginated reads: the page sizes, the status filters, and the opaque cursor a client passes back.

A cursor is the (timestamp, id) of the last document of a page, base64url-wrapped so a client treats it
as a token, not as something to build; a page reads the store's index from there (`StateStore.page`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from backend_stub.brokers.base import StatusFilter
from backend_stub.errors import ApiError
from backend_stub.store.base import ORDERS, Page, PageKey, StateStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
NEXT_CURSOR = "Next-Cursor"  # the response header carrying the next page's cursor (absent: no more)

# ccxt's unified order statuses; "closed" in a listing means every order no longer open.
CLOSED_STATUSES = ("closed", "canceled", "expired", "rejected")


def order_filter(status: StatusFilter) -> dict[str, Any]:
    """`StateStore.page` arguments selecting orders by `status`."""
    if status == "open":
        return {"field": "status", "values": ("open",)}
    if status == "closed":
        return {"field": "status", "values": CLOSED_STATUSES}
    return {}


async def order_page(
    store: StateStore, uid: str, status: StatusFilter, *, limit: int, after: PageKey | None
) -> Page:
    """One page of the user's orders as stored, newest first."""
    return await store.page(uid, ORDERS, limit=limit, after=after, **order_filter(status))


def encode_cursor(key: PageKey) -> str:
    raw = json.dumps([key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> PageKey | None:
    """The page key in `cursor`; 422 when it is not one this API handed out."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, doc_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise ApiError(422, "cursor: not a cursor from a previous page; list again without it") from None
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not isinstance(doc_id, str):
        raise ApiError(422, "cursor: not a cursor from a previous page; list again without it")
    return timestamp, doc_id
