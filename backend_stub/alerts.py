"""`AlertBook`: price alerts. A trader asks to be told when a symbol reaches a price; the backend watches
its market feed and marks the alert triggered, and the change reaches every device of the user through
the live state (the `/v1/stream` change feed or Firestore listeners), like an order fill.

An alert's direction is set when it is made, from the last price: a level above it fires when a trade
prints at or above the level, a level below it when one prints at or below. Alerts live in the user's
`alerts` collection (`users/{uid}/alerts/{id}`); the active ones are also indexed by symbol in memory,
rebuilt from the store at start, so a restart loses none. The watcher follows only the symbols that have
active alerts (none: no subscription at all), and follows them again when that set changes. Creating is idempotent on `clientAlertId`
(the document id): a retry returns the first alert and never makes a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from backend_stub.bus.base import OrderEvent
from backend_stub.errors import ApiError
from backend_stub.money import dec, is_multiple, num, opt_dec
from backend_stub.store.base import (
    ALERTS,
    AlreadyExists,
    Create,
    Delete,
    Lease,
    Page,
    PageKey,
    Put,
    StateStore,
)
from backend_stub.trades import follow_changing_trades, last_price
from backend_stub.validation import words
from services.market.types import MarketFeed, Tick

MAX_ALERTS_PER_USER = 100
NOTE_MAX = 140
_RETRY_FEED_S = 2.0
log = logging.getLogger(__name__)


class AlertBook:
    """Every user's price alerts and the watcher that fires them. `start()` loads and watches;
    `aclose()` stops watching."""

    def __init__(
        self,
        *,
        store: StateStore,
        feed: MarketFeed,
        clock: Callable[[], float] = time.time,
        publish: Callable[[OrderEvent], Awaitable[None]] | None = None,
    ) -> None:
        """`publish`: the stateless API's (`SKEET_ROLE=api`): alerts made or removed are announced to the
        alert worker instead of being watched here."""
        self._store = store
        self._publish = publish
        self._publishing: set[asyncio.Task[None]] = set()
        self._feed = feed
        self._clock = clock
        self._active: defaultdict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)  # symbol
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # per user
        self._task: asyncio.Task[None] | None = None
        self._symbols_changed = asyncio.Event()
        # The alert worker (backend_stub/workers) fences its writes with its lease: a watcher that lost
        # it fires nothing.
        self.fence: Lease | None = None

    async def reload(self) -> None:
        """Re-read the active alerts from the store (a worker: alerts made or removed by API instances)."""
        active: defaultdict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        for uid, doc in await self._store.find(ALERTS, "status", "active"):
            active[doc["symbol"]][(uid, doc["id"])] = doc
        if sorted(s for s, a in active.items() if a) != sorted(s for s, a in self._active.items() if a):
            self._symbols_changed.set()
        self._active = active

    async def refresh(self, uid: str, alert_id: str) -> None:
        """Watch one alert as the store has it now (the alert worker, on an API instance's event)."""
        async with self._locks[uid]:
            doc = await self._store.get(uid, ALERTS, alert_id)
            for symbol in [s for s, alerts in self._active.items() if (uid, alert_id) in alerts]:
                self._unwatch(symbol, uid, alert_id)
            if doc is not None and doc.get("status") == "active":
                self._watch_symbol(doc["symbol"], uid, alert_id, doc)

    def _announce(self, uid: str, alert: dict[str, Any]) -> None:
        publish = self._publish
        assert publish is not None
        event = OrderEvent("alert", uid, alert["id"], alert["symbol"])

        async def send() -> None:
            await publish(event)

        task = asyncio.create_task(send())
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the worker's reload finds it
            log.warning("alerts: could not publish an alert event (%s)", task.exception())

    async def start(self) -> None:
        if self._task is not None:
            return
        for uid, doc in await self._store.find(ALERTS, "status", "active"):
            self._active[doc["symbol"]][(uid, doc["id"])] = doc
        self._task = asyncio.create_task(self._watch(), name="alert-watcher")

    async def aclose(self) -> None:
        if self._publishing:  # announcements of committed alerts go out before the bus closes
            await asyncio.wait(set(self._publishing), timeout=5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the API's side ------------------------------------------------------------------------------

    async def create(
        self, uid: str, *, symbol: str, price: Decimal, client_alert_id: str, note: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """The alert and whether this call made it (False: a retry of the same request)."""
        market = (await self._markets()).get(symbol)
        if market is None:
            raise ApiError(422, f"Unknown symbol {symbol}; see GET /v1/markets for what can be watched")
        quote = market.get("quote", "")
        if price <= 0:
            raise ApiError(422, "The alert price must be above zero")
        step = opt_dec((market.get("precision") or {}).get("price"))
        if step and not is_multiple(price, step):
            raise ApiError(422, f"Price {words(price)} {quote} is not a multiple of the tick {words(step)} {quote}")
        async with self._locks[uid]:
            existing = await self._store.get(uid, ALERTS, client_alert_id)
            if existing is not None:
                return self._replay(existing, symbol, price, note), False
            last = await last_price(self._feed, symbol)
            if price == last:
                raise ApiError(422, f"{symbol} is at {words(price, step)} {quote} now; set a price above or below it")
            mine = await self._store.list(uid, ALERTS)
            if sum(1 for alert in mine if alert.get("status") == "active") >= MAX_ALERTS_PER_USER:
                raise ApiError(409, f"You have {MAX_ALERTS_PER_USER} active alerts; delete one to add another")
            alert = {
                "id": client_alert_id,
                "clientAlertId": client_alert_id,
                "symbol": symbol,
                "condition": "above" if price > last else "below",
                "price": num(price),
                "priceAtCreation": num(last),
                "note": note,
                "status": "active",
                "timestamp": self._now_ms(),
                "triggeredAt": None,
                "triggerPrice": None,
            }
            try:
                await self._store.transact(uid, [Create(ALERTS, client_alert_id, alert)])
            except AlreadyExists:  # another process took the key between our read and this write
                existing = await self._store.get(uid, ALERTS, client_alert_id)
                if existing is None:
                    raise
                return self._replay(existing, symbol, price, note), False
            if self._publish is not None:
                self._announce(uid, alert)
            else:
                self._watch_symbol(symbol, uid, client_alert_id, alert)
            return alert, True

    async def list(self, uid: str) -> list[dict[str, Any]]:
        """The caller's alerts, newest first."""
        return sorted(await self._store.list(uid, ALERTS), key=lambda a: a.get("timestamp") or 0, reverse=True)

    async def page(
        self, uid: str, *, limit: int, after: PageKey | None = None, status: str | None = None
    ) -> Page:
        """One page of the caller's alerts, newest first (`status`: only "active" or "triggered" ones)."""
        where: dict[str, Any] = {"field": "status", "values": (status,)} if status else {}
        return await self._store.page(uid, ALERTS, limit=limit, after=after, **where)

    async def delete(self, uid: str, alert_id: str) -> dict[str, Any]:
        """Remove one of the caller's alerts (active or triggered); 404 when it is not theirs."""
        async with self._locks[uid]:
            alert = await self._store.get(uid, ALERTS, alert_id)
            if alert is None:
                raise ApiError(404, f"No alert {alert_id}")
            await self._store.transact(uid, [Delete(ALERTS, alert_id)])
            if self._publish is not None:
                self._announce(uid, alert)
            else:
                self._unwatch(alert["symbol"], uid, alert_id)
            return alert

    # -- the watcher ---------------------------------------------------------------------------------

    async def on_tick(self, tick: Tick) -> None:
        """Fire every active alert of `tick.symbol` that this trade reached."""
        waiting = self._active.get(tick.symbol)
        if not waiting:
            return
        price = dec(tick.price)
        reached = [(key, alert) for key, alert in waiting.items() if _reached(alert, price)]
        for (uid, alert_id), alert in reached:
            async with self._locks[uid]:
                if (uid, alert_id) not in waiting:
                    continue  # deleted while we waited for the lock
                if self.fence is not None:  # a worker: API instances change alerts too; the store decides
                    stored = await self._store.get(uid, ALERTS, alert_id)
                    if stored is None or stored.get("status") != "active":
                        self._unwatch(tick.symbol, uid, alert_id)
                        continue
                fired = {**alert, "status": "triggered", "triggeredAt": tick.timestamp_ms,
                         "triggerPrice": num(price)}
                # failed: a later trade fires it
                await self._store.transact(uid, [Put(ALERTS, alert_id, fired)], fence=self.fence)
                # Only now, recorded, may the watcher stop following the symbol (it cancels this follower).
                self._unwatch(tick.symbol, uid, alert_id)

    async def _watch(self) -> None:
        """Follow the trades of the symbols with active alerts; start again when that set changes."""
        await follow_changing_trades(
            self._feed, lambda: sorted(symbol for symbol, alerts in self._active.items() if alerts),
            self._symbols_changed, self.on_tick, who="alerts", retry_s=_RETRY_FEED_S,
        )

    def _watch_symbol(self, symbol: str, uid: str, alert_id: str, alert: dict[str, Any]) -> None:
        if not self._active[symbol]:
            self._symbols_changed.set()  # a symbol to follow from now on
        self._active[symbol][(uid, alert_id)] = alert

    def _unwatch(self, symbol: str, uid: str, alert_id: str) -> dict[str, Any] | None:
        alert = self._active[symbol].pop((uid, alert_id), None)
        if alert is not None and not self._active[symbol]:
            self._symbols_changed.set()  # its last alert is gone: stop following it
        return alert

    # -- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _replay(existing: dict[str, Any], symbol: str, price: Decimal, note: str) -> dict[str, Any]:
        if existing.get("symbol") != symbol or dec(existing.get("price")) != price or existing.get("note") != note:
            raise ApiError(409, f"clientAlertId {existing['id']} was already used for a different alert; "
                                "use a new clientAlertId for a new alert")
        return existing

    async def _markets(self) -> dict[str, dict[str, Any]]:
        try:
            return await self._feed.markets()
        except Exception as exc:
            raise ApiError(503, f"Market data is unavailable: {exc}") from exc

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _reached(alert: dict[str, Any], price: Decimal) -> bool:
    level = dec(alert["price"])
    return price >= level if alert["condition"] == "above" else price <= level
