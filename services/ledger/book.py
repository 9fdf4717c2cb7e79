"""`OrderBook`: one symbol's resting orders and the matching engine that fills them against market trades.

Pure, synchronous and I/O-free: the paper broker (which persists what it returns) and the backtester (which
feeds candles) drive the same code. Money is `Decimal`; fees are the ledger's business, the book only says
whether a fill was a maker or a taker fill.

How orders trade (the paper market's rules):
- **market**: fills its whole amount at once at the last price plus slippage (worse by `slippage`, on the
  price tick), as a taker.
- **limit**: one that crosses the last price at once trades as a taker at the last price — GTC: the whole
  amount; IOC and FOK meet only the last trade's amount (what the market showed at that price), IOC
  cancels the rest, FOK trades all or nothing. `post_only` refuses (`WouldTrade`) an order that would trade
  at once. A resting limit fills at its own price when a trade reaches it, no more than that trade's amount
  shared among the resting orders in price-time priority (each side of the book gets the whole trade).
- **stop_market** / **stop_limit**: wait for a trade at or through the stop price (a buy stop when the price
  rises to it, a sell stop when it falls to it); then a stop-market fills its whole remaining amount like a
  market order and a stop-limit becomes a resting limit (which the triggering trade may fill at once).
- **trailing_stop**: a stop-market whose trigger follows the best price seen since it was placed: a sell
  fires when the price falls `trailing_percent` % below the highest trade, a buy when it rises that much
  above the lowest.
- **oco**: a limit leg at `price` and a stop-market leg at `stop_price`, same side and amount; the first
  leg to trade cancels the other (a partly filled limit leg keeps resting as a plain limit).
- Brackets are the broker's: when an entry leaves the book filled, it places an OCO exit (`oco` here).

Trigger price on a continuous path: `on_trade(..., path_from=p)` says the market moved continuously from `p`
to this trade, so a stop lying strictly between them fires at its own price (plus slippage), not at the
trade's. Without `path_from` (a live trade: the market may have gapped) a stop fills at the trade's price.

Candles (`on_candle`, for backtests): a candle is fed as four trades open → high → low → close or
open → low → high → close, **whichever extreme is nearer the open first** (ties: high first), each leg a
continuous path from the previous point, each trade a quarter of the candle's volume (unbounded when the
volume is not given).

Cost: every structure is sorted by price (sortedcontainers), so a trade costs O(log n + k) for k orders it
triggers or fills; trailing stops are grouped by percent and peak, O(g log n + k) amortised for g distinct
percents (peaks passed by a new extreme are merged, smaller group into larger).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from sortedcontainers import SortedDict, SortedList

Side = Literal["buy", "sell"]
BookType = Literal["market", "limit", "stop_market", "stop_limit", "trailing_stop", "oco"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
Liquidity = Literal["maker", "taker"]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
STOP_TYPES: frozenset[str] = frozenset({"stop_market", "stop_limit", "oco"})


class WouldTrade(ValueError):
    """A post-only order that would trade at once; the message says so in a trader's words."""


@dataclass(frozen=True, slots=True)
class BookOrder:
    """An order as the book sees it: what is left of it and how it trades.

    `price` is the limit (limit, stop_limit, an oco's limit leg); `stop_price` the trigger (stop_*, an oco's
    stop leg); `trailing_percent` and `peak` (the best price seen) make a trailing stop. `triggered` marks
    a stop-limit that became a limit. `seq` orders equal prices by age (smaller is older).
    """

    id: str
    side: Side
    type: BookType
    remaining: Decimal
    seq: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_percent: Decimal | None = None
    peak: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    triggered: bool = False

    def trigger_price(self) -> Decimal | None:
        """Where a stop fires now (a trailing stop's moves with its peak); None for a plain limit."""
        if self.type == "trailing_stop":
            assert self.peak is not None and self.trailing_percent is not None
            return _trail_level(self.side, self.peak, self.trailing_percent)
        if self.type in STOP_TYPES and not self.triggered:
            return self.stop_price
        return None


@dataclass(frozen=True, slots=True)
class Execution:
    """Part (or all) of an order traded. `leg` is "limit" or "stop" for an oco, else None."""

    order_id: str
    amount: Decimal
    price: Decimal
    liquidity: Liquidity
    timestamp_ms: int
    leg: str | None = None


@dataclass(frozen=True, slots=True)
class Triggered:
    """A stop-limit reached its stop and now rests as a limit."""

    order_id: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Canceled:
    """The book let go of what is left of an order (IOC/FOK remainder, nothing it could do)."""

    order_id: str
    reason: str
    timestamp_ms: int


Event = Execution | Triggered | Canceled


@dataclass(frozen=True, slots=True)
class Placement:
    """What submitting an order does: events at once, and what then rests (None: nothing)."""

    order: BookOrder
    events: tuple[Event, ...]
    resting: BookOrder | None


class _Trail:
    """Trailing stops of one side and percent sharing one peak; mutable, owned by `_TrailGroup`."""

    __slots__ = ("ids", "peak")

    def __init__(self, peak: Decimal) -> None:
        self.peak = peak
        self.ids: dict[str, None] = {}  # insertion-ordered set: age order within a peak


@dataclass
class _TrailGroup:
    """Trailing stops of one (side, percent): peak → `_Trail`, sorted by peak."""

    side: Side
    percent: Decimal
    by_peak: SortedDict = field(default_factory=SortedDict)

    def add(self, order_id: str, peak: Decimal) -> _Trail:
        trail = self.by_peak.get(peak)
        if trail is None:
            trail = self.by_peak[peak] = _Trail(peak)
        trail.ids[order_id] = None
        return trail

    def follow(self, price: Decimal, where: dict[str, _Trail]) -> None:
        """Raise (sell) or lower (buy) every peak the price went past to the price: O(log n) per merge."""
        if self.side == "sell":
            passed = list(self.by_peak.irange(maximum=price, inclusive=(True, False)))
        else:
            passed = list(self.by_peak.irange(minimum=price, inclusive=(False, True)))
        if not passed:
            return
        trails = [self.by_peak.pop(p) for p in passed]
        existing = self.by_peak.pop(price, None)
        if existing is not None:
            trails.append(existing)
        largest = max(trails, key=lambda t: len(t.ids))
        for trail in trails:
            if trail is largest:
                continue
            for order_id in trail.ids:  # small into large: an order moves O(log n) times in all
                largest.ids[order_id] = None
                where[order_id] = largest
        largest.peak = price
        self.by_peak[price] = largest

    def fired(self, price: Decimal) -> list[_Trail]:
        """Groups whose trigger the price reached: a sell's peak × (1 − p) ≥ price, a buy's ≤ price."""
        out = []
        if self.side == "sell":
            for peak in reversed(self.by_peak):
                if _trail_level("sell", peak, self.percent) < price:
                    break
                out.append(self.by_peak[peak])
        else:
            for peak in self.by_peak:
                if _trail_level("buy", peak, self.percent) > price:
                    break
                out.append(self.by_peak[peak])
        return out


class OrderBook:
    """One symbol's book. `submit` places an order, `on_trade` / `on_candle` match the market against it,
    `cancel` removes one; each returns the `Event`s that happened, in order."""

    def __init__(
        self, *, price_step: Decimal = ZERO, amount_step: Decimal = ZERO, slippage: Decimal = ZERO
    ) -> None:
        self._price_step = price_step
        self._amount_step = amount_step
        self._slippage = slippage
        self._orders: dict[str, BookOrder] = {}
        # Keys sort best first: bids by (-price, seq), asks by (price, seq); stops by nearest trigger first.
        self._bids: SortedList = SortedList()
        self._asks: SortedList = SortedList()
        self._buy_stops: SortedList = SortedList()  # (stop, seq, id): fire while stop <= price
        self._sell_stops: SortedList = SortedList()  # (-stop, seq, id): fire while stop >= price
        self._trails: dict[tuple[str, Decimal], _TrailGroup] = {}
        self._trail_of: dict[str, _Trail] = {}
        self._last_amount: Decimal | None = None

    # -- reading ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: str) -> BookOrder | None:
        """The order as it rests now (a trailing stop with its current peak); None when it left."""
        order = self._orders.get(order_id)
        if order is not None and order.type == "trailing_stop":
            order = replace(order, peak=self._trail_of[order_id].peak)
        return order

    def orders(self) -> list[BookOrder]:
        return [o for i in self._orders if (o := self.get(i)) is not None]

    # -- placing and canceling ----------------------------------------------------------------------

    def submit(
        self,
        order: BookOrder,
        *,
        last_price: Decimal,
        timestamp_ms: int,
        dry_run: bool = False,
    ) -> Placement:
        """Place `order` with the market at `last_price`. `dry_run` says what would happen without
        changing the book (the broker checks funds, persists, then calls `rest`). `WouldTrade` for a
        post-only order that would trade at once."""
        if order.id in self._orders:
            raise ValueError(f"order {order.id} is already in the book")
        events: list[Event] = []
        resting: BookOrder | None = None
        if order.type == "market":
            price = self.slipped(last_price, order.side)
            events.append(Execution(order.id, order.remaining, price, "taker", timestamp_ms))
        elif order.type == "limit":
            resting = self._submit_limit(order, last_price, timestamp_ms, events)
        else:
            if order.type == "trailing_stop":
                order = replace(order, peak=order.peak if order.peak is not None else last_price)
            resting = order
        placement = Placement(order=order, events=tuple(events), resting=resting)
        if not dry_run:
            self.rest(placement)
        return placement

    def _submit_limit(
        self, order: BookOrder, last: Decimal, timestamp_ms: int, events: list[Event]
    ) -> BookOrder | None:
        assert order.price is not None
        crosses = _reaches(order.side, last, order.price)
        if order.post_only and crosses:
            where = "at or above" if order.side == "buy" else "at or below"
            raise WouldTrade(
                f"A post-only {order.side} at {_plain(order.price)} is {where} the last price "
                f"{_plain(last)}, so it would trade at once; it was not placed"
            )
        if not crosses:
            if order.time_in_force == "GTC":
                return order
            events.append(
                Canceled(order.id, f"{order.time_in_force}: nothing traded at your price at once", timestamp_ms)
            )
            return None
        amount = order.remaining
        if order.time_in_force != "GTC" and self._last_amount is not None:
            amount = min(amount, self._floor_amount(self._last_amount))
        if order.time_in_force == "FOK" and amount < order.remaining:
            events.append(
                Canceled(order.id, "FOK: the market could not fill the whole amount at once", timestamp_ms)
            )
            return None
        if amount > 0:
            events.append(Execution(order.id, amount, last, "taker", timestamp_ms))
        left = order.remaining - amount
        if left <= 0:
            return None
        if order.time_in_force == "IOC":
            events.append(Canceled(order.id, "IOC: the rest did not trade at once", timestamp_ms))
            return None
        return replace(order, remaining=left)

    def rest(self, placement: Placement) -> None:
        """Put what `placement` leaves resting into the book (after a `dry_run` submit)."""
        if placement.resting is not None:
            self._insert(placement.resting)

    def restore(self, order: BookOrder) -> None:
        """Put back an order as it stood (after a restart, or when persisting a fill failed)."""
        if order.id in self._orders:
            self._remove(order.id)
        if order.remaining > 0:
            self._insert(order)

    def cancel(self, order_id: str) -> BookOrder | None:
        """Take an order out; None when it is not in the book (already filled or canceled)."""
        if order_id not in self._orders:
            return None
        order = self.get(order_id)
        self._remove(order_id)
        return order

    # -- matching -----------------------------------------------------------------------------------

    def on_trade(
        self,
        price: Decimal,
        amount: Decimal | None,
        timestamp_ms: int,
        *,
        path_from: Decimal | None = None,
    ) -> list[Event]:
        """Match one market trade (`amount` None: unbounded). Stops fire first (trailing peaks follow the
        price before their triggers are tested), then resting limits fill, each side sharing `amount`."""
        self._last_amount = amount
        if not self._orders:
            return []
        events: list[Event] = []
        for group in self._trails.values():
            group.follow(price, self._trail_of)
        for order in self._fired_stops(price):
            self._fire(order, price, path_from, timestamp_ms, events)
        self._match_limits(self._bids, price, amount, timestamp_ms, events, lambda key: -key[0] >= price)
        self._match_limits(self._asks, price, amount, timestamp_ms, events, lambda key: key[0] <= price)
        return events

    def on_candle(
        self,
        open_: Decimal,
        high: Decimal,
        low: Decimal,
        close: Decimal,
        timestamp_ms: int,
        *,
        volume: Decimal | None = None,
        duration_ms: int = 0,
    ) -> list[Event]:
        """Feed a candle as four trades (the rule in the module docstring); events of all four."""
        path = candle_path(open_, high, low, close)
        share = None if volume is None else volume / 4
        events: list[Event] = []
        previous: Decimal | None = None
        for i, price in enumerate(path):
            ts = timestamp_ms + (duration_ms * i) // 4
            events.extend(self.on_trade(price, share, ts, path_from=previous))
            previous = price
        return events

    def _fired_stops(self, price: Decimal) -> list[BookOrder]:
        fired: list[BookOrder] = []
        for key in self._buy_stops.irange(maximum=(price, float("inf"), "")):
            fired.append(self._orders[key[2]])
        for key in self._sell_stops.irange(maximum=(-price, float("inf"), "")):
            fired.append(self._orders[key[2]])
        for group in self._trails.values():
            for trail in group.fired(price):
                fired.extend(self.get(i) for i in trail.ids)  # type: ignore[misc]
        fired.sort(key=lambda o: o.seq)
        return fired

    def _fire(
        self,
        order: BookOrder,
        price: Decimal,
        path_from: Decimal | None,
        timestamp_ms: int,
        events: list[Event],
    ) -> None:
        trigger = order.trigger_price()
        assert trigger is not None
        self._remove(order.id)
        if order.type == "stop_limit":
            limit = replace(order, triggered=True)
            self._insert(limit)
            events.append(Triggered(order.id, timestamp_ms))
            return
        reference = price
        if path_from is not None and _strictly_between(trigger, path_from, price):
            reference = trigger  # the market passed through the stop on its way
        fill_price = self.slipped(reference, order.side)
        leg = "stop" if order.type == "oco" else None
        events.append(Execution(order.id, order.remaining, fill_price, "taker", timestamp_ms, leg))

    def _match_limits(
        self,
        side_keys: SortedList,
        price: Decimal,
        amount: Decimal | None,
        timestamp_ms: int,
        events: list[Event],
        reaches: object,
    ) -> None:
        left = amount
        done: list[str] = []
        partial: BookOrder | None = None
        for key in side_keys:
            if not reaches(key):  # type: ignore[operator]
                break
            if left is not None and self._floor_amount(left) <= 0:
                break
            order = self._orders[key[2]]
            take = order.remaining if left is None else min(order.remaining, self._floor_amount(left))
            assert order.price is not None
            leg = "limit" if order.type == "oco" else None
            events.append(Execution(order.id, take, order.price, "maker", timestamp_ms, leg))
            if left is not None:
                left -= take
            if take >= order.remaining:
                done.append(order.id)
            else:
                partial = replace(order, remaining=order.remaining - take)
                break
        for order_id in done:
            self._remove(order_id)
        if partial is not None:
            if partial.type == "oco":  # the limit leg traded: the stop leg is canceled
                self._remove(partial.id)
                self._insert(replace(partial, type="limit", stop_price=None))
            else:
                self._orders[partial.id] = partial

    # -- structures ---------------------------------------------------------------------------------

    def _insert(self, order: BookOrder) -> None:
        self._orders[order.id] = order
        if order.type in ("limit", "oco") or (order.type == "stop_limit" and order.triggered):
            assert order.price is not None
            if order.side == "buy":
                self._bids.add((-order.price, order.seq, order.id))
            else:
                self._asks.add((order.price, order.seq, order.id))
        if order.type in ("stop_market", "oco") or (order.type == "stop_limit" and not order.triggered):
            assert order.stop_price is not None
            if order.side == "buy":
                self._buy_stops.add((order.stop_price, order.seq, order.id))
            else:
                self._sell_stops.add((-order.stop_price, order.seq, order.id))
        if order.type == "trailing_stop":
            assert order.trailing_percent is not None and order.peak is not None
            key = (order.side, order.trailing_percent)
            group = self._trails.get(key)
            if group is None:
                group = self._trails[key] = _TrailGroup(order.side, order.trailing_percent)
            self._trail_of[order.id] = group.add(order.id, order.peak)

    def _remove(self, order_id: str) -> None:
        order = self._orders.pop(order_id)
        if order.price is not None:
            for keys, key in (
                (self._bids, (-order.price, order.seq, order.id)),
                (self._asks, (order.price, order.seq, order.id)),
            ):
                keys.discard(key)
        if order.stop_price is not None:
            self._buy_stops.discard((order.stop_price, order.seq, order.id))
            self._sell_stops.discard((-order.stop_price, order.seq, order.id))
        trail = self._trail_of.pop(order_id, None)
        if trail is not None:
            del trail.ids[order_id]
            if not trail.ids:
                assert order.trailing_percent is not None
                group = self._trails[(order.side, order.trailing_percent)]
                del group.by_peak[trail.peak]
                if not group.by_peak:
                    del self._trails[(order.side, order.trailing_percent)]

    # -- prices -------------------------------------------------------------------------------------

    def slipped(self, price: Decimal, side: str) -> Decimal:
        """What a taker pays: worse than `price` by the slippage, on the price tick."""
        if side == "buy":
            return _ceil_to(price * (1 + self._slippage), self._price_step)
        return _floor_to(price * (1 - self._slippage), self._price_step)

    def _floor_amount(self, amount: Decimal) -> Decimal:
        return _floor_to(amount, self._amount_step)


def candle_path(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> tuple[Decimal, ...]:
    """The four trades a candle is fed as: the extreme nearer the open first (ties: the high)."""
    if high - open_ <= open_ - low:
        return (open_, high, low, close)
    return (open_, low, high, close)


def _trail_level(side: str, peak: Decimal, percent: Decimal) -> Decimal:
    if side == "sell":
        return peak * (1 - percent / HUNDRED)
    return peak * (1 + percent / HUNDRED)


def _reaches(side: str, price: Decimal, limit: Decimal) -> bool:
    """Whether a trade at `price` reaches a `side` limit at `limit`."""
    return price <= limit if side == "buy" else price >= limit


def _strictly_between(x: Decimal, a: Decimal, b: Decimal) -> bool:
    return min(a, b) < x < max(a, b)


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_CEILING) * step


def _plain(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def events_of(events: Iterable[Event], order_id: str) -> list[Event]:
    """The events of one order (tests and callers reading one order's story)."""
    return [e for e in events if e.order_id == order_id]
