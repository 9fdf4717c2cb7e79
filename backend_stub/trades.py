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


async def follow_changing_trades(
    feed: MarketFeed,
    symbols: Callable[[], list[str]],
    changed: asyncio.Event,
    on_tick: Callable[[Tick], Awaitable[None]],
    *,
    who: str,
    retry_s: float,
) -> None:
    """`follow_trades` over a set of symbols that changes: `symbols()` is read again each time `changed` is
    set. One follower per symbol, so a symbol coming or going starts or stops its own and the others never
    pause (restarting one follower on the new set would drop every symbol's trades in the gap). `on_tick`
    runs for one trade at a time, as under a single follower. Returns when a finite feed has ended for
    every symbol followed."""
    one_at_a_time = asyncio.Lock()
    followers: dict[str, asyncio.Task[None]] = {}

    async def handle(tick: Tick) -> None:
        async with one_at_a_time:
            await on_tick(tick)

    try:
        while True:
            changed.clear()
            wanted = set(symbols())
            for symbol in followers.keys() - wanted:
                followers.pop(symbol).cancel()
            for symbol in sorted(wanted - followers.keys()):
                followers[symbol] = asyncio.create_task(
                    follow_trades(feed, [symbol], handle, who=who, retry_s=retry_s), name=f"{who}-{symbol}"
                )
            running = {task for task in followers.values() if not task.done()}
            if wanted and not running:
                return  # a finite feed ran out for every symbol
            changing = asyncio.create_task(changed.wait())
            try:
                await asyncio.wait({changing, *running}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changing.cancel()
    finally:
        for task in followers.values():
            task.cancel()
        await asyncio.gather(*followers.values(), return_exceptions=True)
