"""`OrderBook`: each order type against trades, time in force, post-only, OCO, trailing stops and candles,
and a property test of the sorted book against a naive matcher that scans and sorts every order per trade."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.book import (
    BookOrder,
    Canceled,
    Event,
    Execution,
    OrderBook,
    Triggered,
    WouldTrade,
    candle_path,
)


def book(**kwargs: object) -> OrderBook:
    return OrderBook(price_step=D("0.01"), amount_step=D("0.001"), **kwargs)  # type: ignore[arg-type]


_seq = iter(range(1, 10**9))


def order(id_: str, side: str, type_: str, amount: str, **kw: object) -> BookOrder:
    return BookOrder(id=id_, side=side, type=type_, remaining=D(amount), seq=next(_seq), **kw)  # type: ignore[arg-type]


def fills(events: list[Event]) -> list[tuple[str, D, D, str]]:
    return [(e.order_id, e.amount, e.price, e.liquidity) for e in events if isinstance(e, Execution)]


def test_market_fills_whole_amount_at_last_price_plus_slippage() -> None:
    b = book(slippage=D("0.001"))
    p = b.submit(order("m", "buy", "market", "2"), last_price=D(100), timestamp_ms=1)
    assert fills(list(p.events)) == [("m", D(2), D("100.10"), "taker")]
    assert p.resting is None and len(b) == 0


def test_resting_limits_fill_in_price_time_priority_sharing_the_trade() -> None:
    b = book()
    for id_, price in (("old", "99"), ("better", "100"), ("young", "99")):
        b.submit(order(id_, "buy", "limit", "1", price=D(price)), last_price=D(101), timestamp_ms=1)
    assert b.on_trade(D("99.5"), D(5), 2) == [Execution("better", D(1), D(100), "maker", 2)]
    events = b.on_trade(D(99), D("1.5"), 3)
    assert fills(events) == [("old", D(1), D(99), "maker"), ("young", D("0.5"), D(99), "maker")]
    assert b.get("young").remaining == D("0.5")  # type: ignore[union-attr]
    assert b.on_trade(D(100), D(9), 4) == []  # above every bid


def test_crossing_gtc_limit_fills_at_last_price_ioc_cancels_rest_fok_all_or_nothing() -> None:
    b = book()
    b.on_trade(D(100), D("0.4"), 1)  # the market's last trade: 0.4 at 100
    gtc = b.submit(order("g", "buy", "limit", "1", price=D(101)), last_price=D(100), timestamp_ms=2)
    assert fills(list(gtc.events)) == [("g", D(1), D(100), "taker")] and gtc.resting is None
    ioc = b.submit(
        order("i", "buy", "limit", "1", price=D(101), time_in_force="IOC"), last_price=D(100), timestamp_ms=3
    )
    assert fills(list(ioc.events)) == [("i", D("0.4"), D(100), "taker")]
    assert isinstance(ioc.events[-1], Canceled) and ioc.resting is None
    fok = b.submit(
        order("f", "buy", "limit", "1", price=D(101), time_in_force="FOK"), last_price=D(100), timestamp_ms=4
    )
    assert fills(list(fok.events)) == [] and isinstance(fok.events[0], Canceled)
    fok_small = b.submit(
        order("s", "buy", "limit", "0.3", price=D(101), time_in_force="FOK"), last_price=D(100), timestamp_ms=5
    )
    assert fills(list(fok_small.events)) == [("s", D("0.3"), D(100), "taker")]
    away = b.submit(
        order("a", "buy", "limit", "1", price=D(90), time_in_force="IOC"), last_price=D(100), timestamp_ms=6
    )
    assert isinstance(away.events[0], Canceled) and len(b) == 0


def test_post_only_that_would_trade_is_refused_and_one_that_rests_rests() -> None:
    b = book()
    with pytest.raises(WouldTrade, match="post-only buy at 100 .* last price 99"):
        b.submit(order("p", "buy", "limit", "1", price=D(100), post_only=True), last_price=D(99), timestamp_ms=1)
    p = b.submit(order("q", "buy", "limit", "1", price=D(98), post_only=True), last_price=D(99), timestamp_ms=1)
    assert p.resting is not None and "q" in b


def test_stop_market_fires_on_the_trade_that_reaches_it() -> None:
    b = book(slippage=D("0.001"))
    b.submit(order("s", "sell", "stop_market", "1", stop_price=D(95)), last_price=D(100), timestamp_ms=1)
    assert b.on_trade(D("95.01"), D(1), 2) == []
    assert fills(b.on_trade(D(94), D("0.1"), 3)) == [("s", D(1), D("93.90"), "taker")]  # whole amount
    assert len(b) == 0


def test_stop_limit_becomes_a_limit_and_may_fill_on_the_same_trade() -> None:
    b = book()
    b.submit(order("a", "buy", "stop_limit", "1", stop_price=D(105), price=D(106)), last_price=D(100), timestamp_ms=1)
    b.submit(order("b", "buy", "stop_limit", "1", stop_price=D(105), price=D(104)), last_price=D(100), timestamp_ms=1)
    events = b.on_trade(D(105), D("0.6"), 2)
    assert [e for e in events if isinstance(e, Triggered)] == [Triggered("a", 2), Triggered("b", 2)]
    assert fills(events) == [("a", D("0.6"), D(106), "maker")]
    assert b.get("b").triggered  # type: ignore[union-attr]
    assert fills(b.on_trade(D(104), D(5), 3)) == [("a", D("0.4"), D(106), "maker"), ("b", D(1), D(104), "maker")]


def test_trailing_sell_follows_the_high_and_fires_percent_below_it() -> None:
    b = book()
    b.submit(order("t", "sell", "trailing_stop", "1", trailing_percent=D(5)), last_price=D(100), timestamp_ms=1)
    assert b.on_trade(D(96), D(1), 2) == []  # 5% below 100 is 95
    assert b.on_trade(D(120), D(1), 3) == []
    assert b.get("t").trigger_price() == D(114)  # type: ignore[union-attr]
    assert b.on_trade(D("114.5"), D(1), 4) == []
    assert fills(b.on_trade(D(114), D(1), 5)) == [("t", D(1), D(114), "taker")]


def test_trailing_buy_follows_the_low() -> None:
    b = book()
    b.submit(order("t", "buy", "trailing_stop", "1", trailing_percent=D(10)), last_price=D(100), timestamp_ms=1)
    b.on_trade(D(80), D(1), 2)
    assert b.on_trade(D(87), D(1), 3) == []
    assert fills(b.on_trade(D(88), D(1), 4)) == [("t", D(1), D(88), "taker")]


def test_oco_first_leg_cancels_the_other() -> None:
    b = book()
    b.submit(order("o", "sell", "oco", "1", price=D(110), stop_price=D(90)), last_price=D(100), timestamp_ms=1)
    b.submit(order("p", "sell", "oco", "1", price=D(110), stop_price=D(90)), last_price=D(100), timestamp_ms=1)
    events = b.on_trade(D(110), D("1.5"), 2)
    assert [(e.order_id, e.amount, e.leg) for e in events if isinstance(e, Execution)] == [
        ("o", D(1), "limit"), ("p", D("0.5"), "limit")
    ]
    assert "o" not in b
    rest = b.get("p")
    assert rest is not None and rest.type == "limit" and rest.stop_price is None  # stop leg gone
    assert b.on_trade(D(80), D(1), 3) == []
    b.submit(order("q", "sell", "oco", "2", price=D(110), stop_price=D(90)), last_price=D(100), timestamp_ms=4)
    events = b.on_trade(D(89), D(1), 5)
    assert [(e.order_id, e.amount, e.leg) for e in events if isinstance(e, Execution)] == [("q", D(2), "stop")]
    assert b.on_trade(D(120), D(9), 6) == [Execution("p", D("0.5"), D(110), "maker", 6)]
    assert len(b) == 0


def test_cancel_and_restore() -> None:
    b = book()
    b.submit(order("a", "buy", "limit", "1", price=D(99)), last_price=D(100), timestamp_ms=1)
    b.submit(order("t", "sell", "trailing_stop", "1", trailing_percent=D(1)), last_price=D(100), timestamp_ms=1)
    assert b.cancel("a") is not None and b.cancel("a") is None
    t = b.cancel("t")
    assert t is not None and b.on_trade(D(10), D(1), 2) == []
    b.restore(t)
    assert fills(b.on_trade(D(10), D(1), 3)) == [("t", D(1), D(10), "taker")]


def test_candle_goes_to_the_nearer_extreme_first_and_stops_fill_at_their_price_on_the_way() -> None:
    assert candle_path(D(100), D(101), D(90), D(95)) == (D(100), D(101), D(90), D(95))
    assert candle_path(D(100), D(110), D(99), D(105)) == (D(100), D(99), D(110), D(105))
    b = book()
    b.submit(order("s", "sell", "stop_market", "1", stop_price=D(95)), last_price=D(100), timestamp_ms=0)
    b.submit(order("l", "buy", "limit", "1", price=D(92)), last_price=D(100), timestamp_ms=0)
    events = b.on_candle(D(100), D(101), D(90), D(95), 60_000, volume=D(8), duration_ms=60_000)
    assert fills(events) == [("s", D(1), D(95), "taker"), ("l", D(1), D(92), "maker")]
    gap = book()
    gap.submit(order("s", "sell", "stop_market", "1", stop_price=D(95)), last_price=D(100), timestamp_ms=0)
    assert fills(gap.on_candle(D(90), D(91), D(85), D(88), 0)) == [("s", D(1), D(90), "taker")]  # gapped open


# -- property: the sorted book equals a naive matcher ---------------------------------------------------


@dataclass
class NaiveOrder:
    o: BookOrder
    remaining: D
    triggered: bool = False
    peak: D | None = None
    kind: str = ""
    events: list[tuple[object, ...]] = field(default_factory=list)


class NaiveBook:
    """Every trade: scan every order, sort everything. Same rules as the docstring of `OrderBook`."""

    def __init__(self, slip: D) -> None:
        self.orders: dict[str, NaiveOrder] = {}
        self.slip = slip
        self.ref = book(slippage=slip)  # only for its `slipped` price rounding

    def add(self, o: BookOrder, last: D) -> None:
        self.orders[o.id] = NaiveOrder(o, o.remaining, peak=last if o.type == "trailing_stop" else None, kind=o.type)

    def trade(self, price: D, amount: D, log: dict[str, list[tuple[object, ...]]]) -> None:
        for n in self.orders.values():
            if n.kind == "trailing_stop":
                n.peak = max(n.peak, price) if n.o.side == "sell" else min(n.peak, price)  # type: ignore[type-var]
        fired = []
        for n in self.orders.values():
            if n.kind == "trailing_stop":
                pct = n.o.trailing_percent
                lvl = n.peak * (1 - pct / 100) if n.o.side == "sell" else n.peak * (1 + pct / 100)  # type: ignore[operator]
            elif n.kind in ("stop_market", "oco") or (n.kind == "stop_limit" and not n.triggered):
                lvl = n.o.stop_price
            else:
                continue
            if (n.o.side == "buy" and price >= lvl) or (n.o.side == "sell" and price <= lvl):
                fired.append(n)
        for n in sorted(fired, key=lambda n: n.o.seq):
            if n.kind == "stop_limit":
                n.triggered = True
                log[n.o.id].append(("trig",))
            else:
                log[n.o.id].append(("fill", n.remaining, self.ref.slipped(price, n.o.side), "taker"))
                del self.orders[n.o.id]
        for side in ("buy", "sell"):
            limits = [
                n for n in self.orders.values()
                if n.o.side == side and (n.kind in ("limit", "oco") or (n.kind == "stop_limit" and n.triggered))
                and (price <= n.o.price if side == "buy" else price >= n.o.price)  # type: ignore[operator]
            ]
            limits.sort(key=lambda n: ((-n.o.price if side == "buy" else n.o.price), n.o.seq))  # type: ignore[operator]
            left = amount
            for n in limits:
                take = min(n.remaining, (left / D("0.001")).to_integral_value(rounding="ROUND_FLOOR") * D("0.001"))
                if take <= 0:
                    break
                log[n.o.id].append(("fill", take, n.o.price, "maker"))
                left -= take
                n.remaining -= take
                if n.remaining == 0:
                    del self.orders[n.o.id]
                elif n.kind == "oco":
                    n.kind = "limit"


prices = st.integers(min_value=90, max_value=110).map(D)
amounts = st.integers(min_value=1, max_value=30).map(lambda i: D(i) / 10)
new_order = st.tuples(
    st.sampled_from(["limit", "stop_market", "stop_limit", "trailing_stop", "oco"]),
    st.sampled_from(["buy", "sell"]),
    amounts,
    prices,
    st.integers(min_value=-8, max_value=8),
    st.sampled_from([D(1), D(2), D(5)]),
)
step = st.one_of(
    st.tuples(st.just("order"), new_order),
    st.tuples(st.just("trade"), st.tuples(prices, amounts)),
    st.tuples(st.just("trade"), st.tuples(prices, amounts)),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=20, max_size=80))
def test_sorted_book_matches_naive_sort_everything_matcher(steps: list[tuple[str, Any]]) -> None:
    slip = D("0.001")
    fast, naive = book(slippage=slip), NaiveBook(slip)
    log_fast: dict[str, list[tuple[object, ...]]] = {}
    log_naive: dict[str, list[tuple[object, ...]]] = {}
    last, ids = D(100), []
    for i, (kind, arg) in enumerate(steps):
        if kind == "order":
            type_, side, amount, _, offset, pct = arg
            sign = 1 if side == "buy" else -1
            kw: dict[str, object] = {}
            if type_ == "limit":  # resting: at or away from the last price on its own side
                kw = {"price": last - sign * abs(offset)}
            elif type_ in ("stop_market", "stop_limit"):
                stop = last + sign * (abs(offset) + 1)  # beyond the last price: not crossed at once
                kw = {"stop_price": stop}
                if type_ == "stop_limit":
                    kw["price"] = stop + offset
            elif type_ == "trailing_stop":
                kw = {"trailing_percent": pct}
            else:  # oco: limit leg on the favourable side, stop leg beyond the last price
                kw = {"price": last - sign * (abs(offset) + 1), "stop_price": last + sign * (abs(offset) + 1)}
            o = BookOrder(id=f"o{i}", side=side, type=type_, remaining=amount, seq=i, **kw)  # type: ignore[arg-type]
            if type_ == "limit" and offset == 0:
                continue  # crossing at once is covered above; the property is about resting orders
            fast.submit(o, last_price=last, timestamp_ms=i)
            naive.add(o, last)
            log_fast[o.id], log_naive[o.id] = [], []
            ids.append(o.id)
        elif kind == "trade":
            price, amount = arg
            last = price
            for e in fast.on_trade(price, amount, i):
                if isinstance(e, Execution):
                    log_fast[e.order_id].append(("fill", e.amount, e.price, e.liquidity))
                elif isinstance(e, Triggered):
                    log_fast[e.order_id].append(("trig",))
            naive.trade(price, amount, log_naive)
        elif ids:
            victim = ids[arg % len(ids)]
            assert (fast.cancel(victim) is not None) == (naive.orders.pop(victim, None) is not None)
    assert log_fast == log_naive
    assert {o.id: o.remaining for o in fast.orders()} == {k: n.remaining for k, n in naive.orders.items()}
