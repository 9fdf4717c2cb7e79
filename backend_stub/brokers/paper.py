"""`PaperBroker`: simulated trading against the market feed, with a paper account in the `StateStore`.

Matching is `services.ledger.book.OrderBook` (one per symbol, sorted by price: a trade costs O(log n + k) for
the k orders it triggers or fills); this module persists what the book decides, checks funds, and places
bracket exits. The rules of every order type are in the book's docstring; here: fees (maker for a resting
fill, taker for one at once or after a trigger), reservations, and the order documents.

Every state change is one store transaction (order + position + balances together), and the books are only
an index of the open orders in the store: they are rebuilt from the store at start. A trailing stop's
moving trigger lives in the book (no write per trade); it is written at a clean stop, so a restart resumes
from it (after a crash: from the one written at placement).

Roles (`SKEET_ROLE`, see `backend_stub/workers`): `all` is the above in one process. `api` keeps no book:
each order or cancel reads the trader's open orders and balances from the store, commits only if the
trader's version has not moved meanwhile (else it starts again), fills at once what trades at once, and
publishes what rests on the bus. `worker` matches the symbols whose leases it holds (`adopt`/`forget`),
each write fenced by that lease and conditional on the trader's version, so a stale worker writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from backend_stub.accounting import (
    ZERO,
    Fill,
    apply_to_balances,
    apply_to_position,
    position_doc_id,
    remark,
)
from backend_stub.brokers.base import (
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRequest,
    OrderWouldTrade,
    StatusFilter,
    TooManyOpenOrders,
    idempotency_create,
)
from backend_stub.bus.base import OrderEvent
from backend_stub.listing import order_page
from backend_stub.money import dec, fee_of, floor_to, num, opt_dec, text
from backend_stub.settings import Role
from backend_stub.store.base import (
    ACCOUNT,
    ORDERS,
    POSITIONS,
    Create,
    Lease,
    LeaseLost,
    Page,
    PageKey,
    Put,
    StateStore,
    VersionConflict,
    Write,
)
from backend_stub.timefmt import iso
from backend_stub.trades import follow_trades, last_price
from backend_stub.validation import check_notional, check_order_now, words
from services.ledger.book import (
    BookOrder,
    Canceled,
    Event,
    Execution,
    OrderBook,
    Placement,
    Triggered,
    WouldTrade,
)
from services.market.types import MarketFeed, Tick

log = logging.getLogger(__name__)

ACCOUNT_DOC = "paper"
MAX_OPEN_ORDERS = 200
_RETRY_FEED_S = 1.0
_CONFLICT_ATTEMPTS = 20  # a stateless write retried this often when the trader's state moved under it


class PaperBroker:
    """Simulated broker. `async with PaperBroker(store=..., feed=...) as broker:` starts its matching."""

    def __init__(
        self,
        *,
        store: StateStore,
        feed: MarketFeed,
        starting_balance: Decimal = Decimal("100000"),
        quote_currency: str = "USDT",
        taker_fee: Decimal = Decimal("0.001"),
        maker_fee: Decimal = Decimal("0.001"),
        slippage: Decimal = Decimal("0.0005"),
        max_open_orders: int = MAX_OPEN_ORDERS,
        clock: Callable[[], float] = time.time,
        role: Role = "all",
        publish: Callable[[OrderEvent], Awaitable[None]] | None = None,
    ) -> None:
        self._role = role
        self._publish = publish  # api role: where resting and canceled orders are announced
        self._announce: defaultdict[str, list[OrderEvent]] = defaultdict(list)  # uid → to publish
        self._expect: dict[str, int] = {}  # api/worker: the trader's version the pending write assumes
        self.fences: dict[str, Lease] = {}  # worker: symbol → the lease it is matched under
        self._publishing: set[asyncio.Task[None]] = set()
        self._store = store
        self._feed = feed
        self._starting = {quote_currency: starting_balance}
        self._taker = taker_fee
        self._maker = maker_fee
        self._slippage = slippage
        self._max_open = max_open_orders
        self._clock = clock
        self._markets: dict[str, dict[str, Any]] = {}
        self._books: dict[str, OrderBook] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._saved_peaks: dict[str, Decimal] = {}  # worker: each trailing stop's peak as last written
        self._open: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # uid → id → order
        self._owner: dict[str, str] = {}  # open order id → uid
        # role all: each trader's account and position documents as last committed (this process is their
        # only writer), so an order does not read them back from the store: see `_commit`
        self._accounts: dict[str, dict[str, Any]] = {}
        self._positions: dict[tuple[str, str], dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_id = 0
        # The ids' random tail: seeded from the OS once, so an order costs no getrandom call (ids are
        # not secrets; the tail only keeps two processes' ids apart).
        self._id_tails = random.Random(secrets.randbits(64))

    @property
    def mode(self) -> str:
        return "Paper"

    @property
    def claims_with_placement(self) -> bool:
        return True  # the claim is in the order's one transaction (`_create_order`)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> PaperBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._role != "all":
            await self.markets()  # api: books are throwaway; worker: built per symbol by `adopt`
            return
        for symbol in await self.markets():
            self._book(symbol)
        for uid, doc in await self._store.find(ORDERS, "status", "open"):
            book = self._book(doc["symbol"])
            if book is None:
                log.warning("paper broker: open order %s is for an unknown symbol %s", doc["id"], doc["symbol"])
                continue
            book.restore(_book_order(doc))
            self._index(uid, doc)
        self._task = asyncio.create_task(self._match_forever(), name="paper-broker-matching")

    async def aclose(self) -> None:
        if self._publishing:  # announcements of committed orders go out before the bus closes
            await asyncio.wait(set(self._publishing), timeout=5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._save_trailing_peaks()

    async def _save_trailing_peaks(self) -> None:
        """On a clean stop, write each open trailing stop's trigger as it stands, so the next start resumes
        from it (after a crash they resume from the last one written: at placement)."""
        for uid, orders in list(self._open.items()):
            writes: list[Write] = []
            for order in list(orders.values()):
                live = self._live(order)
                if live is not order and live["info"].get("peak") != order["info"].get("peak"):
                    writes.append(Put(ORDERS, order["id"], live))
                    orders[order["id"]] = live
            if writes:
                try:
                    await self._store.transact(uid, writes)
                except Exception:  # the store may be going away too; the placement peak stays
                    log.warning("paper broker: could not save trailing stops of a trader at shutdown")

    async def markets(self) -> dict[str, dict[str, Any]]:
        if not self._markets:
            try:
                self._markets = await self._feed.markets()
            except Exception as exc:
                raise BrokerUnavailable(f"Market data is unavailable: {exc}") from exc
        return self._markets

    def _book(self, symbol: str) -> OrderBook | None:
        book = self._books.get(symbol)
        if book is None and symbol in self._markets:
            market = self._markets[symbol]
            book = OrderBook(
                price_step=_step(market, "price"), amount_step=_step(market, "amount"), slippage=self._slippage
            )
            if self._role == "api":
                return book  # only to place one order against the last price: the workers hold the books
            self._books[symbol] = book
        return book

    # -- roles ---------------------------------------------------------------------------------------

    async def _begin(self, uid: str) -> None:
        """Under the trader's lock, before reading what a write depends on. In the split roles the store
        is the only truth: note the trader's version (the write commits only if it still holds), then
        load their open orders (reservations, the open-order cap, the order being matched)."""
        if self._role == "all":
            return
        self._expect[uid] = await self._store.latest_version(uid)
        orders: dict[str, dict[str, Any]] = {}
        after: PageKey | None = None
        while True:
            page = await self._store.page(uid, ORDERS, limit=500, after=after, field="status", values=("open",))
            orders.update((doc["id"], doc) for doc in page.docs)
            if page.next is None:
                break
            after = page.next
        self._open[uid] = orders

    async def _commit(self, uid: str, writes: list[Write], symbol: str | None = None) -> None:
        if self._role == "all":
            try:
                await self._store.transact(uid, writes)
            except BaseException:
                # Not committed, or not known to be (cancelled while queued): read them afresh next time.
                self._accounts.pop(uid, None)
                for write in writes:
                    if write.collection == POSITIONS:
                        self._positions.pop((uid, write.doc_id), None)
                raise
            for write in writes:  # committed: what the store now holds (any other write: read it afresh)
                if write.collection == ACCOUNT and write.doc_id == ACCOUNT_DOC:
                    if isinstance(write, Put):
                        self._accounts[uid] = write.doc
                    else:
                        self._accounts.pop(uid, None)
                elif write.collection == POSITIONS:
                    if isinstance(write, Put):
                        self._positions[(uid, write.doc_id)] = write.doc
                    else:
                        self._positions.pop((uid, write.doc_id), None)
            return
        fence = None
        if self._role == "worker":
            fence = self.fences.get(symbol or "")
            if fence is None:
                raise LeaseLost(f"match:{symbol}")
        await self._store.transact(uid, writes, if_version=self._expect.pop(uid), fence=fence)

    async def _retrying(self, uid: str, attempt: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """`attempt()` until it commits (api role: another instance or a worker wrote for this trader
        between our reads and our write), then the announcements it left."""
        if self._role == "all":
            return await attempt()
        for n in range(_CONFLICT_ATTEMPTS):
            try:
                result = await attempt()
            except VersionConflict:
                self._announce.pop(uid, None)
                await asyncio.sleep(random.uniform(0, min(0.002 * 2**n, 0.1)))
                continue
            finally:
                self._open.pop(uid, None)  # the store is the truth: nothing of the trader stays here
            await self._flush(uid)
            return result
        raise BrokerUnavailable("This account is busy with other orders right now; try again")

    async def _flush(self, uid: str) -> None:
        """Publish in the background: the order is committed, so the trader's answer need not wait for
        the bus (an event lost with this instance is found by the owning worker when it reconciles)."""
        events = self._announce.pop(uid, [])
        if self._publish is None or not events:
            return
        task = asyncio.create_task(self._publish_all(events))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_all(self, events: list[OrderEvent]) -> None:
        assert self._publish is not None
        for event in events:
            try:
                await self._publish(event)
            except Exception:  # committed already: the owning worker finds it when it reconciles
                log.warning("paper broker: could not publish order %s; its worker will find it", event.doc_id)

    async def adopt(self, symbol: str) -> None:
        """Worker: match `symbol` from now on, its book rebuilt from the store's open orders."""
        self._books.pop(symbol, None)
        book = self._book(symbol)
        if book is None:
            return
        for uid, doc in await self._store.find(ORDERS, "status", "open"):
            # An event may have brought one in while we read (`refresh`): never twice.
            if doc["symbol"] == symbol and doc["id"] not in book:
                book.restore(_book_order(doc))
                self._owner[doc["id"]] = uid

    async def save_trailing(self, symbol: str) -> None:
        """Worker: write each open trailing stop of `symbol` whose trigger has moved since it was last
        written, fenced by the lease: what the API instances show the trader, and where the next owner
        resumes after a hand-over or a crash (every `reconcile_s`, and before a symbol is given back). One
        write per moved stop per round, never one per trade."""
        book = self._books.get(symbol)
        for resting in book.orders() if book is not None else ():
            uid = self._owner.get(resting.id)
            if resting.trailing_percent is None or resting.peak is None or uid is None:
                continue
            if self._saved_peaks.get(resting.id) == resting.peak:
                continue
            async with self._locks[uid]:
                doc = await self._store.get(uid, ORDERS, resting.id)
                if doc is None or doc.get("status") != "open":
                    continue
                live = self._live(doc)
                if live["info"].get("peak") != doc["info"].get("peak"):
                    self._expect[uid] = await self._store.latest_version(uid)
                    try:
                        await self._commit(uid, [Put(ORDERS, resting.id, live)], symbol)
                    except VersionConflict:  # the trader's orders moved meanwhile: next round
                        continue
                self._saved_peaks[resting.id] = resting.peak

    def forget(self, symbol: str) -> None:
        """Worker: stop matching `symbol` (its lease is gone)."""
        book = self._books.pop(symbol, None)
        self.fences.pop(symbol, None)
        for order in book.orders() if book is not None else ():
            self._owner.pop(order.id, None)
            self._saved_peaks.pop(order.id, None)

    def owns(self, symbol: str) -> bool:
        return symbol in self.fences and symbol in self._books

    async def refresh(self, uid: str, order_id: str) -> None:
        """Worker: bring one order of an owned symbol in line with the store (placed, or canceled
        elsewhere). Under the trader's lock, so it never interleaves with that trader's matching."""
        async with self._locks[uid]:
            doc = await self._store.get(uid, ORDERS, order_id)
            if doc is None or not self.owns(doc["symbol"]):
                return
            book = self._books[doc["symbol"]]
            if doc["status"] == "open":
                if order_id not in book:
                    book.restore(_book_order(doc))
                    self._owner[order_id] = uid
            else:
                book.cancel(order_id)
                self._owner.pop(order_id, None)

    async def reconcile(self, symbols: list[str]) -> None:
        """Worker: every open order of `symbols` in the store is in their books, and nothing else (covers
        an event the bus lost, or an API instance that died between its commit and its publish). One
        collection-group read for all of them."""
        stored: dict[str, dict[str, str]] = {s: {} for s in symbols if s in self._books}
        for uid, doc in await self._store.find(ORDERS, "status", "open"):
            if doc["symbol"] in stored:
                stored[doc["symbol"]][doc["id"]] = uid
        for symbol, open_ids in stored.items():
            book = self._books.get(symbol)
            if book is None:  # lost meanwhile
                continue
            booked = {order.id for order in book.orders()}
            for order_id in open_ids.keys() - booked:
                await self.refresh(open_ids[order_id], order_id)
            for order_id in booked - open_ids.keys():
                owner = self._owner.get(order_id)
                if owner is not None:
                    await self.refresh(owner, order_id)

    async def create_order(self, uid: str, request: OrderRequest) -> dict[str, Any]:
        return await self._retrying(uid, lambda: self._create_order(uid, request))

    async def _create_order(self, uid: str, request: OrderRequest) -> dict[str, Any]:
        market = (await self.markets()).get(request.symbol)
        book = self._book(request.symbol)
        if market is None or book is None:
            raise InvalidOrder(f"Unknown symbol {request.symbol}")
        last = await self._last_price(request.symbol)
        if request.type == "market":
            check_notional(request, market, last)
        check_order_now(request, market, last)
        now = self._now_ms()
        order = self._new_order(self._new_id(now), request, market, now, last)
        claim = idempotency_create(request, order["id"])
        async with self._locks[uid]:
            await self._begin(uid)
            if len(self._open[uid]) >= self._max_open:
                raise TooManyOpenOrders(
                    f"You have {self._max_open} open orders, the most one account may hold; "
                    "cancel one before placing another"
                )
            try:
                placement = book.submit(_book_order(order), last_price=last, timestamp_ms=now, dry_run=True)
            except WouldTrade as exc:
                raise OrderWouldTrade(str(exc)) from exc
            totals = await self._balances(uid)
            self._check_funds(request, market, self._free(uid, totals), self._quote_needed(order, placement))
            updated, writes, exit_doc = await self._apply(uid, order, list(placement.events), totals)
            # A new order (a fresh id): written by one INSERT, where a Put would try an UPDATE first.
            writes[0] = Create(ORDERS, updated["id"], updated)
            await self._commit(uid, [claim, *writes])
            if placement.resting is not None:
                book.rest(placement)
            self._settle(uid, updated, exit_doc)
            return updated

    async def cancel_order(self, uid: str, order_id: str) -> dict[str, Any]:
        return await self._retrying(uid, lambda: self._cancel_order(uid, order_id))

    async def _cancel_order(self, uid: str, order_id: str) -> dict[str, Any]:
        async with self._locks[uid]:
            await self._begin(uid)
            order = self._open[uid].get(order_id)
            if order is None:
                stored = await self._store.get(uid, ORDERS, order_id)
                if stored is None:
                    raise OrderNotFound(f"Order {order_id} not found")
                raise OrderNotCancelable(f"Order {order_id} is already {stored['status']}")
            # A partly filled bracket entry still protects what it bought: its exit is placed now.
            canceled, exit_doc = self._bracket_exit(
                uid, {**order, "status": "canceled"}, await self._balances(uid)
            )
            writes: list[Write] = [Put(ORDERS, order_id, canceled)]
            if exit_doc is not None:
                writes.append(Put(ORDERS, exit_doc["id"], exit_doc))
            await self._commit(uid, writes)
            self._settle(uid, canceled, exit_doc)
            return canceled

    async def fetch_order(self, uid: str, order_id: str) -> dict[str, Any]:
        order = await self._store.get(uid, ORDERS, order_id)
        if order is None:
            raise OrderNotFound(f"Order {order_id} not found")
        return self._live(order)

    async def fetch_orders(self, uid: str, status: StatusFilter = "all") -> list[dict[str, Any]]:
        orders = await self._store.list(uid, ORDERS)
        if status == "open":
            orders = [o for o in orders if o["status"] == "open"]
        elif status == "closed":
            orders = [o for o in orders if o["status"] != "open"]
        # Ids are time-ordered (see `_new_id`), so this is newest first.
        return [self._live(o) for o in sorted(orders, key=lambda o: o["id"], reverse=True)]

    async def fetch_order_page(
        self, uid: str, status: StatusFilter = "all", *, limit: int, after: PageKey | None = None
    ) -> Page:
        page = await order_page(self._store, uid, status, limit=limit, after=after)
        return replace(page, docs=[self._live(o) for o in page.docs])

    def _live(self, order: dict[str, Any]) -> dict[str, Any]:
        """A trailing stop's trigger as it stands now (it follows the market in the book; the stored
        document keeps the one it was placed with, so a trade never costs a write per trailing stop)."""
        if order.get("type") != "trailing_stop" or order.get("status") != "open":
            return order
        book = self._books.get(order["symbol"])
        resting = book.get(order["id"]) if book is not None else None
        if resting is None or resting.peak is None:
            return order
        market = self._markets[order["symbol"]]
        assert resting.trailing_percent is not None
        trigger = num(_trail(resting.side, resting.peak, resting.trailing_percent, _step(market, "price")))
        return {**order, "stopPrice": trigger, "triggerPrice": trigger,
                "info": {**order["info"], "peak": text(resting.peak)}}

    async def fetch_positions(self, uid: str) -> list[dict[str, Any]]:
        out = []
        now = self._now_ms()
        for doc in await self._store.list(uid, POSITIONS):
            if doc.get("amount"):
                with contextlib.suppress(BrokerUnavailable):
                    doc = remark(doc, await self._last_price(doc["symbol"]), now)
            out.append(doc)
        return out

    async def fetch_balance(self, uid: str) -> dict[str, Any]:
        if self._role != "all":
            async with self._locks[uid]:
                await self._begin(uid)
                self._expect.pop(uid, None)
                try:
                    return await self._balance_now(uid)
                finally:
                    self._open.pop(uid, None)  # the store is the truth: nothing of the trader stays here
        return await self._balance_now(uid)

    async def _balance_now(self, uid: str) -> dict[str, Any]:
        totals = await self._balances(uid)
        used: dict[str, Decimal] = defaultdict(Decimal)
        for order in self._open[uid].values():
            currency, amount = self._reservation(order)
            used[currency] += amount
        balance: dict[str, Any] = {"free": {}, "used": {}, "total": {}}
        for currency in sorted(set(totals) | set(used)):
            total, reserved = totals.get(currency, ZERO), used.get(currency, ZERO)
            entry = {"free": num(total - reserved), "used": num(reserved), "total": num(total)}
            balance[currency] = entry
            for key in ("free", "used", "total"):
                balance[key][currency] = entry[key]
        return balance

    # -- matching ------------------------------------------------------------------------------------

    async def _match_forever(self) -> None:
        await follow_trades(self._feed, sorted(self._markets), self.on_tick, who="paper broker",
                            retry_s=_RETRY_FEED_S)

    async def on_tick(self, tick: Tick) -> None:
        """Match one trade: the book says which orders it reaches (O(log n + k)); persist each of those."""
        book = self._books.get(tick.symbol)
        if book is None:
            return
        events = book.on_trade(dec(tick.price), dec(tick.amount), tick.timestamp_ms)
        if not events:
            return
        by_order: dict[str, list[Event]] = {}
        for event in events:
            by_order.setdefault(event.order_id, []).append(event)
        for order_id, its_events in by_order.items():
            uid = self._owner.get(order_id)
            if uid is None:
                continue
            for _attempt in range(_CONFLICT_ATTEMPTS):
                if not await self._match_one(uid, order_id, its_events, book, tick.symbol):
                    break

    async def _match_one(
        self, uid: str, order_id: str, its_events: list[Event], book: OrderBook, symbol: str
    ) -> bool:
        """Persist one order's events; True when it must be tried again (the trader's state moved)."""
        async with self._locks[uid]:
            await self._begin(uid)
            order = self._open[uid].get(order_id)
            if order is None:  # canceled while this trade was being matched: the cancel won
                if self._role != "all":  # (in one process the cancel took it out of the book already)
                    book.cancel(order_id)
                    self._owner.pop(order_id, None)
                return False
            try:
                totals = await self._balances(uid)
                updated, writes, exit_doc = await self._apply(
                    uid, order, its_events, totals, check_afford=True
                )
                await self._commit(uid, writes, symbol)
            except VersionConflict:
                return True
            except LeaseLost:
                raise  # the worker gives the symbol up: its successor rebuilds from the store
            except Exception:
                # A store hiccup must not starve the other orders: the book takes the order back as the
                # store still has it, and a later trade retries.
                log.exception("paper broker: matching order %s failed", order_id)
                book.restore(_book_order(order))
                return False
            self._settle(uid, updated, exit_doc)
            return False

    async def _apply(
        self,
        uid: str,
        order: dict[str, Any],
        events: list[Event],
        totals: dict[str, Decimal],
        *,
        check_afford: bool = False,
    ) -> tuple[dict[str, Any], list[Write], dict[str, Any] | None]:
        """The order after `events`, the writes that persist it (with position and balances), and the
        bracket exit placed when the entry leaves the book filled (written with it)."""
        market = self._markets[order["symbol"]]
        base, quote = market["base"], market["quote"]
        before = totals
        position_id = position_doc_id(order["symbol"])
        position: dict[str, Any] | None = None
        filled_any = False
        for event in events:
            if isinstance(event, Triggered):
                order = {**order, "info": {**order["info"], "triggered": True, "triggerTimestamp": event.timestamp_ms}}
            elif isinstance(event, Canceled):
                order = {**order, "status": "canceled", "info": {**order["info"], "reason": event.reason}}
            elif isinstance(event, Execution):
                rate = self._maker if event.liquidity == "maker" else self._taker
                fill = Fill(order["side"], event.amount, event.price, fee_of(event.amount * event.price, rate),
                            event.timestamp_ms)
                if position is None:
                    position = await self._position(uid, position_id)
                totals = apply_to_balances(totals, fill, base=base, quote=quote)
                position = apply_to_position(position, fill, symbol=order["symbol"], quote=quote)
                order = _order_after_fill(order, fill, event.liquidity, quote, event.leg)
                filled_any = True
        if filled_any and check_afford:
            others = {k: v for k, v in self._open[uid].items() if k != order["id"]}
            if not self._affordable(totals, others):
                # Only a stop that gapped past its reservation gets here.
                rejected = {
                    **order,
                    "status": "rejected",
                    "info": {**order["info"], "reason": "insufficient balance"},
                }
                return rejected, [Put(ORDERS, order["id"], rejected)], None
        writes: list[Write] = []
        if filled_any:
            assert position is not None
            writes += [
                Put(POSITIONS, position_id, position),
                Put(ACCOUNT, ACCOUNT_DOC, {"balances": {k: text(v) for k, v in totals.items()}}),
            ]
        order, exit_doc = self._bracket_exit(uid, order, totals if filled_any else before)
        if exit_doc is not None:
            writes.append(Put(ORDERS, exit_doc["id"], exit_doc))
        return order, [Put(ORDERS, order["id"], order), *writes], exit_doc

    def _bracket_exit(
        self, uid: str, entry: dict[str, Any], totals: dict[str, Decimal]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """When an entry with take-profit / stop-loss leaves the book having filled, the exit order for
        the filled amount (an OCO when both are set): returns the entry (pointing at its exit) and the
        exit, to be written with the entry and then put in the book by `_settle`."""
        tp, sl = opt_dec(entry.get("takeProfitPrice")), opt_dec(entry.get("stopLossPrice"))
        if entry["status"] == "open" or (tp is None and sl is None) or entry.get("exitId"):
            return entry, None
        market = self._markets[entry["symbol"]]
        amount = floor_to(dec(entry["filled"]), _step(market, "amount"))
        if amount <= 0:
            return entry, None
        side = "sell" if entry["side"] == "buy" else "buy"
        exit_type = "oco" if tp is not None and sl is not None else ("limit" if tp is not None else "stop_market")
        now = self._now_ms()
        request = OrderRequest(
            symbol=entry["symbol"],
            side=side,  # type: ignore[arg-type]
            type=exit_type,  # type: ignore[arg-type]
            amount=amount,
            client_order_id=f"{entry['clientOrderId']}.exit"[:64],
            price=tp,
            stop_price=sl,
        )
        exit_doc = self._new_order(self._new_id(now), request, market, now, None)
        exit_doc["parentId"] = entry["id"]
        currency, needed = self._reservation(exit_doc)
        free = self._free(uid, totals)
        if free.get(currency, ZERO) < needed:
            exit_doc = {**exit_doc, "status": "rejected", "info": {**exit_doc["info"], "reason": "insufficient balance"}}
        return {**entry, "exitId": exit_doc["id"]}, exit_doc

    def _settle(self, uid: str, order: dict[str, Any], exit_doc: dict[str, Any] | None) -> None:
        """Index or unindex `order` and put its bracket exit in the book, once their writes are on disk
        (api role: announce them to the workers instead)."""
        if self._role == "api":
            for doc in (order, exit_doc):
                if doc is not None and doc["status"] in ("open", "canceled"):
                    self._announce[uid].append(OrderEvent("order", uid, doc["id"], doc["symbol"]))
            return
        if order["status"] == "open":
            self._index(uid, order)
        else:
            self._unindex(uid, order)
            self._books[order["symbol"]].cancel(order["id"])  # a rejected fill leaves nothing resting
        if exit_doc is not None and exit_doc["status"] == "open":
            self._books[exit_doc["symbol"]].restore(_book_order(exit_doc))
            self._index(uid, exit_doc)

    # -- money ---------------------------------------------------------------------------------------

    async def _position(self, uid: str, position_id: str) -> dict[str, Any] | None:
        doc = self._positions.get((uid, position_id))
        if doc is None:
            doc = await self._store.get(uid, POSITIONS, position_id)
        return doc

    async def _balances(self, uid: str) -> dict[str, Decimal]:
        doc = self._accounts.get(uid)
        if doc is None:
            doc = await self._store.get(uid, ACCOUNT, ACCOUNT_DOC)
        if doc is None:
            return dict(self._starting)
        return {k: Decimal(v) for k, v in doc["balances"].items()}

    def _reservation(self, order: dict[str, Any]) -> tuple[str, Decimal]:
        """What an open order holds back: base for a sell, quote (with fee) for a buy."""
        market = self._markets[order["symbol"]]
        remaining = dec(order["remaining"])
        if order["side"] == "sell":
            return market["base"], remaining
        return market["quote"], remaining * self._worst_buy_price(order) * (1 + max(self._taker, self._maker))

    def _worst_buy_price(self, order: dict[str, Any]) -> Decimal:
        """The most a buy may pay per unit: its limit, or its (highest) stop plus slippage."""
        prices = []
        if order["price"] is not None:
            prices.append(dec(order["price"]))
        stop_leg_live = order["type"] != "stop_limit" and order["info"].get("leg") != "limit"
        if order.get("stopPrice") is not None and stop_leg_live and order["type"] != "limit":
            prices.append(dec(order["stopPrice"]) * (1 + self._slippage))
        return max(prices)

    def _quote_needed(self, order: dict[str, Any], placement: Placement) -> Decimal:
        """Quote a buy needs now: what trades at once (with its fee) plus what the rest reserves."""
        needed = ZERO
        for event in placement.events:
            if isinstance(event, Execution):
                rate = self._maker if event.liquidity == "maker" else self._taker
                needed += event.amount * event.price + fee_of(event.amount * event.price, rate)
        if placement.resting is not None:
            needed += self._reservation({**order, "remaining": num(placement.resting.remaining)})[1]
        return needed

    def _free(self, uid: str, totals: dict[str, Decimal]) -> dict[str, Decimal]:
        free = dict(totals)
        for order in self._open[uid].values():
            currency, amount = self._reservation(order)
            free[currency] = free.get(currency, ZERO) - amount
        return free

    def _affordable(self, totals: dict[str, Decimal], open_orders: dict[str, dict[str, Any]]) -> bool:
        free = dict(totals)
        for order in open_orders.values():
            currency, amount = self._reservation(order)
            free[currency] = free.get(currency, ZERO) - amount
        return all(v >= 0 for v in free.values())

    def _check_funds(
        self, request: OrderRequest, market: dict[str, Any], free: dict[str, Decimal], quote_needed: Decimal
    ) -> None:
        base, quote = market["base"], market["quote"]
        if request.side == "sell":
            have = free.get(base, ZERO)
            if have < request.amount:
                raise InsufficientFunds(
                    f"Insufficient balance: selling {words(request.amount)} {base} needs that much free, "
                    f"you have {words(max(have, ZERO))} {base}"
                )
            return
        have = free.get(quote, ZERO)
        if have < quote_needed:
            raise InsufficientFunds(
                f"Insufficient balance: this order needs about {quote_needed:,.2f} {quote} with fees, "
                f"you have {max(have, ZERO):,.2f} {quote} free"
            )

    async def _last_price(self, symbol: str) -> Decimal:
        return await last_price(self._feed, symbol)

    # -- book-keeping --------------------------------------------------------------------------------

    def _index(self, uid: str, order: dict[str, Any]) -> None:
        self._open[uid][order["id"]] = order
        self._owner[order["id"]] = uid

    def _unindex(self, uid: str, order: dict[str, Any]) -> None:
        self._open[uid].pop(order["id"], None)
        self._owner.pop(order["id"], None)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _new_id(self, now_ms: int) -> str:
        # Time-ordered (microseconds, strictly increasing here) so sorting ids sorts orders by age;
        # the random tail keeps ids from two processes apart.
        micros = max(now_ms * 1000, self._last_id + 1)
        self._last_id = micros
        return f"{micros:017d}{self._id_tails.getrandbits(24):06x}"

    def _new_order(
        self, order_id: str, request: OrderRequest, market: dict[str, Any], now: int, last: Decimal | None
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"broker": "paper"}
        stop = request.stop_price
        if request.type in ("stop_market", "stop_limit", "trailing_stop", "oco"):
            info["triggered"] = False
        if request.type == "trailing_stop":
            assert last is not None and request.trailing_percent is not None
            info["peak"] = text(last)
            stop = _trail(request.side, last, request.trailing_percent, _step(market, "price"))
        return {
            "id": order_id,
            "clientOrderId": request.client_order_id,
            "datetime": iso(now),
            "timestamp": now,
            "lastTradeTimestamp": None,
            "symbol": request.symbol,
            "type": request.type,
            "timeInForce": request.time_in_force,
            "postOnly": request.post_only,
            "side": request.side,
            "price": num(request.price),
            "stopPrice": num(stop),
            "triggerPrice": num(stop),
            "trailingPercent": num(request.trailing_percent),
            "takeProfitPrice": num(request.take_profit_price),
            "stopLossPrice": num(request.stop_loss_price),
            "parentId": None,
            "ocoId": order_id if request.type == "oco" else None,
            "exitId": None,
            "emulated": False,
            "amount": num(request.amount),
            "cost": 0,
            "average": None,
            "filled": 0,
            "remaining": num(request.amount),
            "status": "open",
            "fee": {"cost": 0, "currency": market["quote"]},
            "trades": [],
            "info": info,
        }


def _book_order(doc: dict[str, Any]) -> BookOrder:
    """The book's view of a stored open order."""
    info = doc.get("info") or {}
    order_type = doc["type"]
    stop = opt_dec(doc.get("stopPrice"))
    if order_type == "oco" and info.get("leg") == "limit":  # its limit leg traded: the stop leg is gone
        order_type, stop = "limit", None
    peak = opt_dec(info.get("peak"))
    return BookOrder(
        id=doc["id"],
        side=doc["side"],
        type=order_type,
        remaining=dec(doc["remaining"]),
        seq=_seq(doc["id"]),
        price=opt_dec(doc.get("price")),
        stop_price=None if order_type == "trailing_stop" else stop,
        trailing_percent=opt_dec(doc.get("trailingPercent")),
        peak=peak,
        time_in_force=doc.get("timeInForce") or "GTC",
        post_only=bool(doc.get("postOnly")),
        triggered=bool(info.get("triggered")) and order_type == "stop_limit",
    )


def _seq(order_id: str) -> int:
    """Age rank from the id's time prefix (ties keep the book's id order)."""
    head = order_id[:17]
    return int(head) if head.isdigit() else 0


def _trail(side: str, last: Decimal, percent: Decimal, tick: Decimal) -> Decimal:
    level = last * (1 - percent / 100) if side == "sell" else last * (1 + percent / 100)
    return floor_to(level, tick) if tick > 0 else level


def _order_after_fill(
    order: dict[str, Any], fill: Fill, taker_or_maker: str, quote: str, leg: str | None = None
) -> dict[str, Any]:
    filled = dec(order["filled"]) + fill.amount
    remaining = dec(order["amount"]) - filled
    cost = dec(order["cost"]) + fill.cost
    fee = dec(order["fee"]["cost"]) + fill.fee
    trade = {
        "id": f"{order['id']}-{len(order['trades']) + 1}",
        "order": order["id"],
        "timestamp": fill.timestamp_ms,
        "datetime": iso(fill.timestamp_ms),
        "symbol": order["symbol"],
        "side": fill.side,
        "takerOrMaker": taker_or_maker,
        "price": num(fill.price),
        "amount": num(fill.amount),
        "cost": num(fill.cost),
        "fee": {"cost": num(fill.fee), "currency": quote},
    }
    info = order["info"]
    if leg is not None:
        info = {**info, "leg": leg}
    if taker_or_maker == "taker" and order["type"] in ("stop_market", "trailing_stop", "oco"):
        info = {**info, "triggered": True, "triggerTimestamp": fill.timestamp_ms}
    return {
        **order,
        "filled": num(filled),
        "remaining": num(remaining),
        "cost": num(cost),
        "average": num((cost / filled).quantize(Decimal("0.00000001"))) if filled else None,
        "fee": {"cost": num(fee), "currency": quote},
        "lastTradeTimestamp": fill.timestamp_ms,
        "status": "closed" if remaining <= 0 else order["status"],
        "trades": [*order["trades"], trade],
        "info": info,
    }


def _step(market: dict[str, Any], key: str) -> Decimal:
    return opt_dec((market.get("precision") or {}).get(key)) or ZERO

