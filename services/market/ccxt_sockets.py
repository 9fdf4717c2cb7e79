"""Tearing down a ccxt.pro websocket that is open but dead, so the next `watch_*` reconnects.

ccxt.pro only notices a dead socket through its keep-alive (minutes on some exchanges), and a frame it cannot
parse stops its receive loop while the socket stays open. Failing the client the way ccxt itself does on a
network error (`client.on_error`) rejects its pending watches, closes it and drops it from `exchange.clients`.
"""

from __future__ import annotations

from typing import Any

import ccxt


async def force_reconnect(exchange: Any, reason: str, *, symbol: str | None = None) -> int:
    """Fail the sockets carrying `symbol` (every socket when None or none matches); returns how many."""
    clients = list((getattr(exchange, "clients", None) or {}).values())
    if symbol is not None:
        carrying = [c for c in clients if any(symbol in str(h) for h in getattr(c, "subscriptions", {}))]
        clients = carrying or clients
    for client in clients:
        client.on_error(ccxt.NetworkError(f"{exchange.id}: {reason}"))
    return len(clients)
