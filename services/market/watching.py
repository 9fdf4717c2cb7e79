"""Latest-value streams (tickers, order books, forming candles) from ccxt: a ccxt.pro `watch_*` where the
exchange has one, REST polling where not, retried with backoff on transient failures.

Unlike trades these need no gap fill: each value replaces the previous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.backoff import Backoff
from services.market.errors import is_transient, translate


@dataclass(frozen=True, slots=True)
class Watch:
    """How to get one value: `watch()` (None when the exchange has no stream) or `fetch()` over REST."""

    label: str  # what it is, in a trader's words: "the BTC/USDT ticker"
    watch: Callable[[], Awaitable[Any]] | None
    fetch: Callable[[], Awaitable[Any]]


async def latest_values(
    spec: Watch,
    *,
    exchange_id: str,
    backoff: Backoff,
    poll_interval_s: float,
    silence_s: float,
    on_data: Callable[[], None],
    on_retry: Callable[[], None],
    on_silence: Callable[[], Awaitable[Any]],
) -> AsyncGenerator[Any, None]:
    """Each new value until cancelled; a non-transient failure ends it as a `MarketDataError`."""
    attempt = 0
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            try:
                if spec.watch is not None:
                    if pending is None:
                        pending = asyncio.ensure_future(spec.watch())
                    done, _ = await asyncio.wait({pending}, timeout=silence_s)
                    if pending not in done:
                        await on_silence()  # tears the socket down: the pending watch fails next round
                        continue
                    value, pending = pending.result(), None
                else:
                    value = await spec.fetch()
                attempt = 0
                on_data()
                yield value
                if spec.watch is None:
                    await asyncio.sleep(poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retry what is transient, surface the rest
                pending = None
                if not is_transient(exc):
                    raise translate(exc, exchange_id, spec.label) from exc
                on_retry()
                await asyncio.sleep(backoff.delay(attempt))
                attempt += 1
    finally:
        if pending is not None:
            pending.cancel()
            if pending.done() and not pending.cancelled():
                pending.exception()
