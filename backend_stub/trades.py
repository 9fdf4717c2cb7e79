"""The backend's two uses of its market feed, shared by the paper broker and the alert watcher: the
last price of a symbol, and following every trade of a set of symbols until cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from backend_stub.brokers.base import BrokerUnavailable
from backend_stub.money import dec
from services.market.types import MarketFeed, Tick

log = logging.getLogger(__name__)


async def last_price(feed: MarketFeed, symbol: str) -> Decimal:
    """The symbol's last traded price; `BrokerUnavailable` (a 503) when the feed has none now."""
    try:
        ticker = await feed.ticker(symbol)
    except Exception as exc:
        raise BrokerUnavailable(f"No price for {symbol} right now: {exc}") from exc
    last = ticker.get("last") or ticker.get("close")
    if last is None:
        raise BrokerUnavailable(f"No price for {symbol} right now")
    return dec(last)


async def follow_trades(
    feed: MarketFeed,
    symbols: list[str],
    on_tick: Callable[[Tick], Awaitable[None]],
    *,
    who: str,
    retry_s: float,
) -> None:
    """`on_tick` for every trade of `symbols`, until cancelled or a finite feed ends. A trade that
    `on_tick` fails on is logged and skipped; a failed feed is reopened after `retry_s`."""
    while True:
        try:
            async for tick in feed.ticks(symbols):
                try:
                    await on_tick(tick)
                except Exception:
                    log.exception("%s: handling a trade of %s failed", who, tick.symbol)
            return  # a finite feed ended
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: market feed failed (%s); retrying", who, exc)
            await asyncio.sleep(retry_s)
