"""`PaperBroker`: simulated trading against the market feed, with a paper account in the `StateStore`.

Market orders fill at once at the feed's last price plus slippage (taker fee). Limit orders rest and fill
at their price when a trade crosses it, no more than each crossing trade's amount (so a big order fills in
parts, maker fee). Stop orders wait for a trade at or through their stop price, then become a market order
(stop_market) or a resting limit (stop_limit). One background task consumes the feed's trades and matches.

Every state change is one store transaction (order + position + balances together), and the in-memory book
is only an index of the open orders in the store: it is rebuilt from the store at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
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
    STOP_TYPES,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRequest,
    StatusFilter,
    idempotency_create,
)
from backend_stub.listing import order_page
from backend_stub.money import ceil_to, dec, fee_of, floor_to, num, opt_dec, text
from backend_stub.store.base import ACCOUNT, ORDERS, POSITIONS, Page, PageKey, Put, StateStore, Write
from backend_stub.timefmt import iso
from backend_stub.trades import follow_trades, last_price
from backend_stub.validation import check_notional
from services.market.types import MarketFeed, Tick

log = logging.getLogger(__name__)

ACCOUNT_DOC = "paper"
_RETRY_FEED_S = 1.0


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._feed = feed
        self._starting = {quote_currency: starting_balance}
        self._taker = taker_fee
        self._maker = maker_fee
        self._slippage = slippage
        self._clock = clock
        self._markets: dict[str, dict[str, Any]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._open: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # uid → id → order
        self._resting: defaultdict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)  # symbol
        self._task: asyncio.Task[None] | None = None
        self._last_id = 0

    @property
    def mode(self) -> str:
        return "Paper"

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> PaperBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.markets()
        for uid, doc in await self._store.find(ORDERS, "status", "open"):
            self._index(uid, doc)
        self._task = asyncio.create_task(self._match_forever(), name="paper-broker-matching")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def markets(self) -> dict[str, dict[str, Any]]:
        if not self._markets:
            try:
                self._markets = await self._feed.markets()
            except Exception as exc:
                raise BrokerUnavailable(f"Market data is unavailable: {exc}") from exc
        return self._markets

    # -- orders --------------------------------------------------------------------------------------

    async def create_order(self, uid: str, request: OrderRequest) -> dict[str, Any]:
        market = (await self.markets()).get(request.symbol)
        if market is None:
            raise InvalidOrder(f"Unknown symbol {request.symbol}")
        last = await self._last_price(request.symbol)
        if request.type == "market":
            check_notional(request, market, last)
        if request.type in STOP_TYPES:
            _check_stop_not_crossed(request, last, market["quote"])
        now = self._now_ms()
        order = self._new_order(self._new_id(now), request, market, now)
        claim = idempotency_create(request, order["id"])
        async with self._locks[uid]:
            totals = await self._balances(uid)
            free = self._free(uid, totals)
            marketable = request.type == "market" or (
                request.type == "limit" and _crosses(request.side, last, dec(request.price))
            )
            if marketable:
                price = self._slipped(last, request.side, market) if request.type == "market" else last
                fee = fee_of(request.amount * price, self._taker)
                self._check_funds(request, market, free, request.amount * price + fee)
                fill = Fill(request.side, request.amount, price, fee, now)
                return await self._commit_fill(uid, order, fill, "taker", totals, first_writes=[claim])
            self._check_funds(request, market, free, self._reservation(order)[1])
            await self._store.transact(uid, [claim, Put(ORDERS, order["id"], order)])
            self._index(uid, order)
            return order

    async def cancel_order(self, uid: str, order_id: str) -> dict[str, Any]:
        async with self._locks[uid]:
            order = self._open[uid].get(order_id)
            if order is None:
                stored = await self._store.get(uid, ORDERS, order_id)
                if stored is None:
                    raise OrderNotFound(f"Order {order_id} not found")
                raise OrderNotCancelable(f"Order {order_id} is already {stored['status']}")
            canceled = {**order, "status": "canceled"}
            await self._store.transact(uid, [Put(ORDERS, order_id, canceled)])
            self._unindex(uid, canceled)
            return canceled

    async def fetch_order(self, uid: str, order_id: str) -> dict[str, Any]:
        order = await self._store.get(uid, ORDERS, order_id)
        if order is None:
            raise OrderNotFound(f"Order {order_id} not found")
        return order

    async def fetch_orders(self, uid: str, status: StatusFilter = "all") -> list[dict[str, Any]]:
        orders = await self._store.list(uid, ORDERS)
        if status == "open":
            orders = [o for o in orders if o["status"] == "open"]
        elif status == "closed":
            orders = [o for o in orders if o["status"] != "open"]
        # Ids are time-ordered (see `_new_id`), so this is newest first.
        return sorted(orders, key=lambda o: o["id"], reverse=True)

    async def fetch_order_page(
        self, uid: str, status: StatusFilter = "all", *, limit: int, after: PageKey | None = None
    ) -> Page:
        return await order_page(self._store, uid, status, limit=limit, after=after)

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
        """Match the resting orders of `tick.symbol` against one trade (price-time priority)."""
        book = self._resting.get(tick.symbol)
        if not book:
            return
        price, available = dec(tick.price), dec(tick.amount)
        for uid, order_id in sorted(book, key=lambda key: (book[key]["timestamp"], key[1])):
            async with self._locks[uid]:
                order = self._open[uid].get(order_id)
                if order is None:
                    continue
                try:
                    available = await self._match_one(uid, order, price, available, tick.timestamp_ms)
                except Exception:
                    # One order's failure (a store hiccup) must not starve the others; it is retried on
                    # the next trade, since the store and the book still say it is open.
                    log.exception("paper broker: matching order %s failed", order_id)

    async def _match_one(
        self, uid: str, order: dict[str, Any], price: Decimal, available: Decimal, timestamp_ms: int
    ) -> Decimal:
        """Execute what `order` gets from a trade at `price`; returns the trade amount left for others."""
        market = self._markets[order["symbol"]]
        side = order["side"]
        triggered_now = False
        if order["type"] in STOP_TYPES and not order["info"].get("triggered"):
            if not _stop_hit(side, price, dec(order["stopPrice"])):
                return available
            order = {**order, "info": {**order["info"], "triggered": True, "triggerTimestamp": timestamp_ms}}
            triggered_now = True
            if order["type"] == "stop_market":
                fill_price = self._slipped(price, side, market)
                amount = dec(order["remaining"])
                fill = Fill(side, amount, fill_price, fee_of(amount * fill_price, self._taker), timestamp_ms)
                await self._commit_fill(uid, order, fill, "taker")
                return available
        limit = dec(order["price"])
        amount = floor_to(min(dec(order["remaining"]), available), _step(market, "amount"))
        if not _crosses(side, price, limit) or amount <= 0:
            if triggered_now:  # a stop-limit that became a resting limit: say so
                await self._store.transact(uid, [Put(ORDERS, order["id"], order)])
                self._index(uid, order)
            return available
        fill = Fill(side, amount, limit, fee_of(amount * limit, self._maker), timestamp_ms)
        await self._commit_fill(uid, order, fill, "maker")
        return available - amount

    async def _commit_fill(
        self,
        uid: str,
        order: dict[str, Any],
        fill: Fill,
        taker_or_maker: str,
        totals: dict[str, Decimal] | None = None,
        *,
        first_writes: list[Write] | None = None,
    ) -> dict[str, Any]:
        """Write order, position and balances after `fill` in one transaction; returns the order."""
        market = self._markets[order["symbol"]]
        base, quote = market["base"], market["quote"]
        if totals is None:
            totals = await self._balances(uid)
        after = apply_to_balances(totals, fill, base=base, quote=quote)
        others = {k: v for k, v in self._open[uid].items() if k != order["id"]}
        if not first_writes and not self._affordable(after, others):
            # Only a stop-market that gapped past its reservation gets here.
            rejected = {
                **order,
                "status": "rejected",
                "info": {**order["info"], "reason": "insufficient balance"},
            }
            await self._store.transact(uid, [Put(ORDERS, order["id"], rejected)])
            self._unindex(uid, rejected)
            return rejected
        updated = _order_after_fill(order, fill, taker_or_maker, quote)
        position_id = position_doc_id(order["symbol"])
        position = apply_to_position(
            await self._store.get(uid, POSITIONS, position_id), fill, symbol=order["symbol"], quote=quote
        )
        writes: list[Write] = [
            *(first_writes or []),
            Put(ORDERS, updated["id"], updated),
            Put(POSITIONS, position_id, position),
            Put(ACCOUNT, ACCOUNT_DOC, {"balances": {k: text(v) for k, v in after.items()}}),
        ]
        await self._store.transact(uid, writes)
        if updated["status"] == "open":
            self._index(uid, updated)
        else:
            self._unindex(uid, updated)
        return updated

    # -- money ---------------------------------------------------------------------------------------

    async def _balances(self, uid: str) -> dict[str, Decimal]:
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
        if order["price"] is not None:
            price = dec(order["price"])
        else:  # stop-market: the stop price plus the slippage it will pay
            price = dec(order["stopPrice"]) * (1 + self._slippage)
        return market["quote"], remaining * price * (1 + max(self._taker, self._maker))

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
                    f"Insufficient balance: selling {text(request.amount)} {base} needs that much free, "
                    f"you have {text(max(have, ZERO))} {base}"
                )
            return
        have = free.get(quote, ZERO)
        if have < quote_needed:
            raise InsufficientFunds(
                f"Insufficient balance: this order needs about {quote_needed:.2f} {quote} with fees, "
                f"you have {max(have, ZERO):.2f} {quote} free"
            )

    def _slipped(self, price: Decimal, side: str, market: dict[str, Any]) -> Decimal:
        """The price a market order pays: worse than the last trade by the slippage, on the tick grid."""
        tick = _step(market, "price")
        if side == "buy":
            return ceil_to(price * (1 + self._slippage), tick)
        return floor_to(price * (1 - self._slippage), tick)

    async def _last_price(self, symbol: str) -> Decimal:
        return await last_price(self._feed, symbol)

    # -- book-keeping --------------------------------------------------------------------------------

    def _index(self, uid: str, order: dict[str, Any]) -> None:
        self._open[uid][order["id"]] = order
        self._resting[order["symbol"]][(uid, order["id"])] = order

    def _unindex(self, uid: str, order: dict[str, Any]) -> None:
        self._open[uid].pop(order["id"], None)
        self._resting[order["symbol"]].pop((uid, order["id"]), None)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _new_id(self, now_ms: int) -> str:
        # Time-ordered (microseconds, strictly increasing here) so sorting ids sorts orders by age;
        # the random tail keeps ids from two processes apart.
        micros = max(now_ms * 1000, self._last_id + 1)
        self._last_id = micros
        return f"{micros:017d}{secrets.token_hex(3)}"

    def _new_order(
        self, order_id: str, request: OrderRequest, market: dict[str, Any], now: int
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"broker": "paper"}
        if request.type in STOP_TYPES:
            info["triggered"] = False
        return {
            "id": order_id,
            "clientOrderId": request.client_order_id,
            "datetime": iso(now),
            "timestamp": now,
            "lastTradeTimestamp": None,
            "symbol": request.symbol,
            "type": request.type,
            "timeInForce": "GTC",
            "side": request.side,
            "price": num(request.price),
            "stopPrice": num(request.stop_price),
            "triggerPrice": num(request.stop_price),
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


def _order_after_fill(order: dict[str, Any], fill: Fill, taker_or_maker: str, quote: str) -> dict[str, Any]:
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
    return {
        **order,
        "filled": num(filled),
        "remaining": num(remaining),
        "cost": num(cost),
        "average": num((cost / filled).quantize(Decimal("0.00000001"))) if filled else None,
        "fee": {"cost": num(fee), "currency": quote},
        "lastTradeTimestamp": fill.timestamp_ms,
        "status": "closed" if remaining <= 0 else "open",
        "trades": [*order["trades"], trade],
    }


def _step(market: dict[str, Any], key: str) -> Decimal:
    return opt_dec((market.get("precision") or {}).get(key)) or ZERO


def _crosses(side: str, price: Decimal, limit: Decimal) -> bool:
    """Whether a trade at `price` reaches a `side` limit at `limit`."""
    return price <= limit if side == "buy" else price >= limit


def _stop_hit(side: str, price: Decimal, stop: Decimal) -> bool:
    """A buy stop fires when the price rises to it, a sell stop when it falls to it."""
    return price >= stop if side == "buy" else price <= stop


def _check_stop_not_crossed(request: OrderRequest, last: Decimal, quote: str) -> None:
    stop = request.stop_price
    assert stop is not None
    if _stop_hit(request.side, last, stop):
        where = "above" if request.side == "buy" else "below"
        raise InvalidOrder(
            f"A {request.side} stop must be {where} the last price {text(last)} {quote}; "
            f"stop price {text(stop)} {quote} would trigger at once"
        )
