"""The backtester's core: a strategy's signals and exits over candles, booked by the one ledger.

Fill convention (backtesting.py's, Backtrader's and TradingView's): a signal at a candle's close fills at the
NEXT candle's open as a market order. Exits rest in the order book the paper broker matches with
(`services/ledger/book.py`): take-profit is a limit, stop-loss a stop-market, both together an OCO, and a
trailing stop a trailing_stop order; a candle is shown to the book as trades open → the extreme nearer the open
→ the other extreme → close (a tie: the high first), each leg a continuous move. So a candle that touches both
take-profit and stop-loss exits at whichever its path reaches first; a stop passed inside a candle fills at its
level, one the candle opens beyond fills at the open (both with slippage, against the trader); a take-profit
fills at its own price. A time exit (`timeInTrade`) is a market order at the open of the first candle that
starts at or after entry time + duration. A close where both the buy and the sell condition fire gives no
signal. Signals count only while they can act: an entry while flat, an opposite signal while in a position
(in `long_short` it closes and reverses). A position still open after the last candle is closed at the last
close (a market order: fee and slippage apply), exit reason "end".

Two loops give the same fills (tests/backtest/test_engine.py proves it on random data): `run` jumps from
event to event (next signal by binary search over the signal indices, the next candle whose range can reach an
exit level by a vectorised scan; only those candles go to the book), `run_per_candle` shows the book every
candle. Cost of `run`: O(n) numpy work plus
O(trades × log n) Python.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from services.backtest.candles import Candles, FloatArray
from services.backtest.strategy import Strategy
from services.ledger import ZERO, Fill, Ledger, Position, dec, fee_of
from services.ledger.book import BookOrder, BookType, Execution, OrderBook, candle_path

AMOUNT_STEP = Decimal("0.00000001")
_WIDEN = 1e-9
_HUNDRED = Decimal(100)
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip: entry fill to exit fill. `pnl` is net of both fees (the ledger's realised P&L)."""

    side: str  # "long" | "short"
    amount: Decimal
    entry_index: int
    exit_index: int
    entry_ms: int
    exit_ms: int  # the exit candle's timestamp (its open time, as in the candle file)
    entry_price: Decimal
    exit_price: Decimal
    entry_fee: Decimal
    exit_fee: Decimal
    pnl: Decimal
    exit_reason: str  # "signal" | "takeProfit" | "stopLoss" | "trailingStop" | "time" | "end"

    @property
    def return_pct(self) -> float:
        """P&L as a percent of the entry value (fees included)."""
        return float(self.pnl / (self.amount * self.entry_price) * _HUNDRED)


# A fill as the loop records it: (candle index, side, amount, price, fee). A trade: the Trade fields in order.
FillRecord = tuple[int, str, Decimal, Decimal, Decimal]
TradeRecord = tuple[str, Decimal, int, int, int, int, Decimal, Decimal, Decimal, Decimal, Decimal, str]


class Run:
    """What a backtest did: fills, trades, and the account after each fill (for the equity curve). The
    loop records plain tuples; `fills` and `trades` build the frozen objects on first use."""

    __slots__ = ("_fills", "_trades", "_fill_records", "_trade_records", "fill_index", "cash_after",
                 "amount_after", "cash", "final_cash", "symbol", "timestamps", "fees")

    def __init__(self, fill_records: list[FillRecord], trade_records: list[TradeRecord], cash_after: list[Decimal],
                 amount_after: list[Decimal], cash: Decimal, final_cash: Decimal, symbol: str,
                 timestamps: IntArray, fees: Decimal) -> None:
        self._fill_records, self._trade_records = fill_records, trade_records
        self._fills: tuple[Fill, ...] | None = None
        self._trades: tuple[Trade, ...] | None = None
        self.fill_index = np.fromiter((r[0] for r in fill_records), dtype=np.int64, count=len(fill_records))
        count = len(cash_after)  # (fromiter + map(float): np.asarray of Decimals takes a slow generic path)
        self.cash_after = np.fromiter(map(float, cash_after), np.float64, count)  # quote balance after each fill
        # signed base amount after; every exit leaves 0, which needs no float(Decimal) (~0.2 µs each)
        self.amount_after = np.fromiter((float(a) if a else 0.0 for a in amount_after), np.float64, count)
        self.cash, self.final_cash, self.symbol, self.timestamps = cash, final_cash, symbol, timestamps
        self.fees = fees  # every fill's fee, quote currency

    @property
    def fills(self) -> tuple[Fill, ...]:
        if self._fills is None:
            ts = self.timestamps
            self._fills = tuple(Fill(side, amount, price, fee, int(ts[i]), symbol=self.symbol)
                                for i, side, amount, price, fee in self._fill_records)
        return self._fills

    @property
    def trades(self) -> tuple[Trade, ...]:
        if self._trades is None:
            self._trades = tuple(Trade(*r) for r in self._trade_records)
        return self._trades

    def trade_columns(self) -> dict[str, npt.NDArray[Any]]:
        """pnl, entry value, entry/exit index and time per trade as float/int columns (for the figures)."""
        r, n = self._trade_records, len(self._trade_records)
        # fromiter + float(): np.asarray over Decimals takes numpy's slow generic path.
        return {
            "pnl": np.fromiter((float(t[10]) for t in r), np.float64, n),
            "entry_value": np.fromiter((float(t[1]) * float(t[6]) for t in r), np.float64, n),
            "entry_index": np.fromiter((t[2] for t in r), np.int64, n),
            "exit_index": np.fromiter((t[3] for t in r), np.int64, n),
            "entry_ms": np.fromiter((t[4] for t in r), np.int64, n),
            "exit_ms": np.fromiter((t[5] for t in r), np.int64, n),
        }

    def __len__(self) -> int:
        return len(self._trade_records)


def net_signal(buy: npt.NDArray[np.bool_] | None, sell: npt.NDArray[np.bool_] | None, n: int) -> npt.NDArray[np.int8]:
    """+1 where only buy fires at a close, -1 where only sell fires, 0 elsewhere."""
    b = buy if buy is not None else np.zeros(n, dtype=bool)
    s = sell if sell is not None else np.zeros(n, dtype=bool)
    return (b & ~s).astype(np.int8) - (s & ~b).astype(np.int8)


@dataclass(frozen=True, slots=True)
class MarketSteps:
    """The market's price tick and amount step (0: none; amounts then go to 1e-8)."""

    price_step: Decimal = ZERO
    amount_step: Decimal = ZERO


def order_amount(kind: str, value: Decimal, cash: Decimal, price: Decimal, fee_factor: Decimal, side: int,
                 step: Decimal = ZERO) -> Decimal:
    """An entry's base amount: `equityPct` (value as a fraction of the cash, ≤ 1), `quote` (a value in
    quote) or `amount`; a long never spends more than the cash, fees included. Floored to `step`. Shared by
    the backtester and the live runner (`services.backtest.live`)."""
    unit_cost = price * fee_factor
    if kind == "equityPct":
        amount = cash * value / unit_cost  # value <= 1: within the cash
    else:
        amount = value if kind == "amount" else value / unit_cost
        if side > 0:
            amount = min(amount, cash / unit_cost)
    if step > 0:
        return (amount / step).to_integral_value(ROUND_FLOOR) * step
    return amount.quantize(AMOUNT_STEP, ROUND_FLOOR)


class _Account:
    """The ledger, the order book and the open position's exit orders; shared by both loops so they differ
    only in how they find the next candle to show the book."""

    def __init__(self, strategy: Strategy, candles: Candles, cash: Decimal, symbol: str,
                 market: MarketSteps | None = None) -> None:
        self.s = strategy
        self.c = candles
        self.symbol = symbol
        self.quote = symbol.partition("/")[2] or "USDT"
        self.cash0 = cash
        self.ledger = Ledger(balances={self.quote: cash})
        self.fee = dec(strategy.fee)
        self.fee_factor = 1 + self.fee
        value = dec(strategy.sizing.value)
        self.sizing = (strategy.sizing.type, value / _HUNDRED if strategy.sizing.type == "equityPct" else value)
        steps = market or MarketSteps()
        self.amount_step = steps.amount_step
        self.book = OrderBook(price_step=steps.price_step, amount_step=steps.amount_step,
                              slippage=dec(strategy.slippage))
        # A market order fills at the book's rule, `slipped(last price)`; the order never rests, so it is not
        # put through `submit` (which would only echo that price back).
        self.slipping = bool(strategy.slippage)
        # Read one value at a time with `.item` (a Python float/int, ~50 ns): the loops touch only the candles
        # where something happens, so converting whole columns to lists (~40 ms a million) would cost more.
        self.ts = candles.timestamp_ms.item
        self.opens = candles.open.item
        self.seq = 0
        self.fills: list[FillRecord] = []
        self.cash_after: list[Decimal] = []
        self.amount_after: list[Decimal] = []
        self.trades: list[TradeRecord] = []
        self._book, self._put_fill = self.ledger.book, self.fills.append
        self._put_cash, self._put_amount = self.cash_after.append, self.amount_after.append
        self.balances = self.ledger.balances
        self.position = self.ledger.positions.setdefault(symbol, Position())
        self._realised_before = ZERO
        self.side = 0  # +1 long, -1 short, 0 flat
        self.entry: tuple[int, int, Decimal, Decimal, Decimal] | None = None  # index, ms, price, fee, amount
        ex = strategy.exits
        self.sl_pct, self.tp_pct, self.trail = ex.stop_loss_pct, ex.take_profit_pct, ex.trailing_stop_pct
        self.trail_f = (ex.trailing_stop_pct or 0.0) / 100.0
        # Float copies of the exit levels for the vectorised scan, widened by a hair so float rounding can
        # only add candidates (the book decides), never lose one.
        self.sl_f = self.tp_f = math.nan
        self.exit_orders: dict[str, str] = {}  # book order id -> exit reason
        self.trail_id: str | None = None
        self.has_levels = ex.stop_loss_pct is not None or ex.take_profit_pct is not None or ex.trailing_stop_pct is not None

    # -- fills -----------------------------------------------------------------------------------------
    def _fill(self, index: int, side: str, amount: Decimal, price: Decimal) -> Decimal:
        """Book one fill in the ledger; its fee. (Bound methods kept in attributes: this runs twice a trade.)"""
        fee = fee_of(amount * price, self.fee) if self.fee else ZERO
        self._book(self.symbol, amount if side == "buy" else -amount, price, fee)
        self._put_fill((index, side, amount, price, fee))
        self._put_cash(self.balances[self.quote])
        self._put_amount(self.position.amount)
        return fee

    def _order(self, side: str, kind: BookType, amount: Decimal, **levels: Decimal) -> BookOrder:
        self.seq += 1
        return BookOrder(id=f"{kind}-{self.seq}", side=side, type=kind, remaining=amount, seq=self.seq, **levels)  # type: ignore[arg-type]

    def enter(self, index: int, side: int) -> None:
        """A market order at candle `index`'s open, then its exit orders in the book."""
        market = dec(self.opens(index))
        order_side = "buy" if side > 0 else "sell"
        price = self.book.slipped(market, order_side) if self.slipping else market
        kind, value = self.sizing
        amount = order_amount(kind, value, self.balances[self.quote], price, self.fee_factor, side, self.amount_step)
        if amount <= 0:
            return
        fee = self._fill(index, order_side, amount, price)
        self.side = side
        ts = self.ts(index)
        self.entry = (index, ts, price, fee, amount)
        if not self.has_levels:
            return
        exit_side = "sell" if side > 0 else "buy"
        sl = tp = None
        if self.sl_pct is not None:
            sl = price * (1 - side * dec(self.sl_pct) / _HUNDRED)
            self.sl_f = float(sl) * (1 + side * _WIDEN)
        if self.tp_pct is not None:
            tp = price * (1 + side * dec(self.tp_pct) / _HUNDRED)
            self.tp_f = float(tp) * (1 - side * _WIDEN)
        orders: list[tuple[BookOrder, str]] = []
        if sl is not None and tp is not None:
            orders.append((self._order(exit_side, "oco", amount, price=tp, stop_price=sl), "oco"))
        elif sl is not None:
            orders.append((self._order(exit_side, "stop_market", amount, stop_price=sl), "stopLoss"))
        elif tp is not None:
            orders.append((self._order(exit_side, "limit", amount, price=tp), "takeProfit"))
        if self.trail is not None:
            trail = self._order(exit_side, "trailing_stop", amount, trailing_percent=dec(self.trail))
            orders.append((trail, "trailingStop"))
            self.trail_id = trail.id
        for order, reason in orders:
            self.book.submit(order, last_price=market, timestamp_ms=ts)
            self.exit_orders[order.id] = reason

    def exit(self, index: int, price: Decimal, reason: str) -> None:
        assert self.entry is not None
        entry_index, entry_ms, entry_price, entry_fee, amount = self.entry
        held = self.position.amount
        fee = self._fill(index, "sell" if held > 0 else "buy", abs(held), price)
        realised = self.ledger.realised
        self.trades.append(("long" if self.side > 0 else "short", amount, entry_index, index, entry_ms,
                            self.ts(index), entry_price, price, entry_fee, fee,
                            realised - self._realised_before, reason))
        self._realised_before = realised
        if self.exit_orders:
            for order_id in self.exit_orders:
                self.book.cancel(order_id)
            self.exit_orders.clear()
        self.trail_id = None
        self.side = 0
        self.entry = None
        self.sl_f = self.tp_f = math.nan

    def exit_at(self, index: int, last: Decimal, reason: str) -> None:
        """A market exit with the market at `last`."""
        self.exit(index, self.book.slipped(last, "sell" if self.side > 0 else "buy") if self.slipping else last,
                  reason)

    def exit_at_open(self, index: int, reason: str) -> None:
        last = dec(self.opens(index))
        self.exit(index, self.book.slipped(last, "sell" if self.side > 0 else "buy") if self.slipping else last,
                  reason)

    # -- the book sees one candle ----------------------------------------------------------------------
    @property
    def peak(self) -> float:
        """The trailing stop's best price so far (the book's)."""
        assert self.trail_id is not None
        order = self.book.get(self.trail_id)
        assert order is not None and order.peak is not None
        return float(order.peak)

    def skip_to_peak(self, best: float) -> None:
        """Candles skipped without an event only moved the trailing stop's peak to their best price."""
        if self.trail_id is None:
            return
        order = self.book.get(self.trail_id)
        assert order is not None and order.peak is not None
        peak = dec(best)
        if (peak > order.peak) if self.side > 0 else (peak < order.peak):
            self.book.restore(replace(order, peak=peak))

    def scan_candle(self, j: int) -> bool:
        """Feed candle j to the book as its path of trades; exit at the first execution. True if it exited.
        O(log orders) per point."""
        assert self.entry is not None
        o, h, lo, c = (dec(float(x[j])) for x in (self.c.open, self.c.high, self.c.low, self.c.close))
        path = candle_path(o, h, lo, c)
        ts = int(self.c.timestamp_ms[j])
        previous: Decimal | None = None
        if j == self.entry[0]:  # the open already traded: it was our entry
            path, previous = path[1:], o
        for price in path:
            events = self.book.on_trade(price, None, ts, path_from=previous)
            done = [e for e in events if isinstance(e, Execution) and e.order_id in self.exit_orders]
            if done:
                # Two stops passed in one move: the one the price met first (best for the trader).
                first = max(done, key=lambda e: e.price) if self.side > 0 else min(done, key=lambda e: e.price)
                reason = self.exit_orders[first.order_id]
                if reason == "oco":
                    reason = "takeProfit" if first.leg == "limit" else "stopLoss"
                self.exit(j, first.price, reason)
                return True
            previous = price
        return False

    def finish(self, n: int) -> Run:
        if self.side:
            self.exit_at(n - 1, dec(float(self.c.close[n - 1])), "end")
        return Run(self.fills, self.trades, self.cash_after, self.amount_after, self.cash0,
                   self.balances[self.quote], self.symbol, self.c.timestamp_ms, self.ledger.fees)


def _time_exit_index(book: _Account, ts: IntArray) -> int:
    """First candle starting at or after entry + timeInTrade (n if none)."""
    limit = book.s.exits.time_in_trade_ms
    if limit is None or book.entry is None:
        return ts.shape[0]
    return max(int(np.searchsorted(ts, book.entry[1] + limit, side="left")), book.entry[0] + 1)


def run(strategy: Strategy, candles: Candles, signal: npt.NDArray[np.int8], *, cash: Decimal,
        symbol: str = "ASSET/USDT", market: MarketSteps | None = None) -> Run:
    """Event-skipping loop (see the module docstring). `signal` is `net_signal(...)` at each close."""
    n = len(candles)
    book = _Account(strategy, candles, cash, symbol, market)
    ts, low, high = candles.timestamp_ms, candles.low, candles.high
    allowed = strategy.positions
    # Python lists + bisect: a scalar np.searchsorted costs ~1 µs of call overhead, bisect ~0.1 µs.
    long_idx: list[int] = np.flatnonzero(signal > 0).tolist()
    short_idx: list[int] = np.flatnonzero(signal < 0).tolist()
    entry_idx = (long_idx if allowed == "long" else short_idx if allowed == "short"
                 else np.flatnonzero(signal).tolist())
    sig = signal.item
    use_signal_exit = strategy.exits.signal
    timed = strategy.exits.time_in_trade_ms is not None
    i = 0  # first close not yet looked at for an entry
    while True:
        if not book.side:
            k_pos = bisect_left(entry_idx, i)
            if k_pos >= len(entry_idx):
                break
            k = entry_idx[k_pos]
            if k + 1 >= n:
                break
            book.enter(k + 1, sig(k))
            if not book.side:  # nothing to buy with
                i = k + 1
                continue
        assert book.entry is not None
        e = book.entry[0]
        # The next open where a market exit acts: an opposite signal's next candle, or the time limit.
        open_at, reason = n, ""
        if use_signal_exit:
            opposite = short_idx if book.side > 0 else long_idx
            pos = bisect_left(opposite, e)
            if pos < len(opposite) and opposite[pos] + 1 < n:
                open_at, reason = opposite[pos] + 1, "signal"
        if timed:
            t = _time_exit_index(book, ts)
            if t < open_at:
                open_at, reason = t, "time"
        # Exit levels inside candles e .. open_at - 1: scan ranges in growing chunks.
        exited_at = -1
        if book.has_levels:
            exited_at = _scan_levels(book, e, open_at, low, high)
        if exited_at >= 0:
            i = exited_at
            continue
        if open_at >= n:
            break
        side = book.side
        book.exit_at_open(open_at, reason)
        if reason == "signal" and allowed == "long_short":
            book.enter(open_at, -side)
        i = open_at
    return book.finish(n)


def _scan_levels(book: _Account, start: int, stop: int, low: FloatArray, high: FloatArray) -> int:
    """First candle in [start, stop) where the position exits on a level (its index), else -1. Candidates
    come from a vectorised test in growing chunks (a superset: the range reaches a level); the book decides."""
    j, chunk = start, 64
    trailing = book.trail_id is not None
    while j < stop:
        end = min(stop, j + chunk)
        chunk *= 2
        side = book.side
        lo, hi = low[j:end], high[j:end]
        if side > 0:
            hit = hi >= book.tp_f if not math.isnan(book.tp_f) else np.zeros(end - j, dtype=bool)
            if not math.isnan(book.sl_f):
                hit |= lo <= book.sl_f
            if trailing:
                peak = np.maximum(np.maximum.accumulate(hi), book.peak)
                hit |= lo <= peak * (1 - book.trail_f) * (1 + _WIDEN)
        else:
            hit = lo <= book.tp_f if not math.isnan(book.tp_f) else np.zeros(end - j, dtype=bool)
            if not math.isnan(book.sl_f):
                hit |= hi >= book.sl_f
            if trailing:
                trough = np.minimum(np.minimum.accumulate(lo), book.peak)
                hit |= hi >= trough * (1 + book.trail_f) * (1 - _WIDEN)
        base = j
        for offset in np.flatnonzero(hit):
            candidate = base + int(offset)
            if trailing and candidate > j:
                book.skip_to_peak(float(high[j:candidate].max()) if side > 0 else float(low[j:candidate].min()))
            if book.scan_candle(candidate):
                return candidate
            j = candidate + 1
        if trailing and j < end:
            book.skip_to_peak(float(high[j:end].max()) if side > 0 else float(low[j:end].min()))
        j = end
    return -1


def run_per_candle(strategy: Strategy, candles: Candles, signal: npt.NDArray[np.int8], *, cash: Decimal,
                   symbol: str = "ASSET/USDT", market: MarketSteps | None = None) -> Run:
    """The plain loop, one candle at a time: the reference `run` is proved equal to."""
    n = len(candles)
    book = _Account(strategy, candles, cash, symbol, market)
    allowed = strategy.positions
    pending = 0  # +1 / -1: a market order at the next open (entry, exit, or exit-and-reverse)
    for j in range(n):
        if book.side:
            t = _time_exit_index(book, candles.timestamp_ms)
            if pending:
                side = book.side
                book.exit_at_open(j, "signal")
                if allowed == "long_short":
                    book.enter(j, -side)
            elif j >= t:
                book.exit_at_open(j, "time")
        elif pending:
            book.enter(j, pending)
        pending = 0
        if book.side and book.has_levels:
            book.scan_candle(j)
        sig = int(signal[j])
        if j + 1 >= n or not sig:
            continue
        if not book.side:
            if allowed == "long_short" or (allowed == "long") == (sig > 0):
                pending = sig
        elif strategy.exits.signal and sig == -book.side:
            pending = sig
    return book.finish(n)
