"""Quote-side domain objects that both feeds produce (beyond the shared `types`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BookTop:
    """Best bid and ask of an order book (ccxt `order_book` first levels); amounts in the base currency."""

    symbol: str
    timestamp_ms: int | None
    bid: float | None
    bid_amount: float | None
    ask: float | None
    ask_amount: float | None
