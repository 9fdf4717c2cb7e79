"""The backtester's core: a strategy's signals and exits over candles, booked by the one ledger.

Fill convention (backtesting.py's, Backtrader's and TradingView's): a signal at a candle's close fills at the
NEXT candle's open as a market order (slippage against the trader). Take-profit is a limit order and fills at
its price when a candle's range reaches it (at the open if the candle opens beyond it); stop-loss and trailing
stop are stop orders and fill at their level minus slippage (at the open, minus slippage, on a gap). Inside a
candle the price is taken to move open → the nearer extreme → the farther extreme → close; when open is
exactly as far from the high as from the low, the move against the position comes first (pessimistic). So a
candle that touches both take-profit and stop-loss exits at whichever its path reaches first. A trailing stop
follows the best price along that path. A time exit (`timeInTrade`) fills at the open of the first candle that
starts at or after entry time + duration. A close where both the buy and the sell condition fire gives no
signal. Signals count only while they can act: an entry while flat, an opposite signal while in a position
(in `long_short` it closes and reverses). A position still open after the last candle is closed at the last
close (a market order: fee and slippage apply), exit reason "end".

Two loops give the same fills (tests/backtest/test_engine.py proves it on random data): `run` jumps from
event to event (next signal by binary search over the signal indices, the next candle whose range can reach an
exit level by a vectorised scan), `run_per_candle` steps every candle. Cost of `run`: O(n) numpy work plus
O(trades × log n) Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import numpy.typing as npt

from services.backtest.candles import Candles, FloatArray
from services.backtest.strategy import Strategy
from services.ledger import ZERO, Fill, Ledger, dec, fee_of

AMOUNT_STEP = Decimal("0.00000001")
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


@dataclass(frozen=True, slots=True, eq=False)
class Run:
    """What a backtest did: fills, trades, and the account after each fill (for the equity curve)."""

    trades: tuple[Trade, ...]
    fills: tuple[Fill, ...]
    fill_index: IntArray  # candle of each fill
    cash_after: FloatArray  # quote balance after each fill
    amount_after: FloatArray  # signed base amount after each fill
    cash: Decimal
    final_cash: Decimal


def net_signal(buy: npt.NDArray[np.bool_] | None, sell: npt.NDArray[np.bool_] | None, n: int) -> npt.NDArray[np.int8]:
    """+1 where only buy fires at a close, -1 where only sell fires, 0 elsewhere."""
    b = buy if buy is not None else np.zeros(n, dtype=bool)
    s = sell if sell is not None else np.zeros(n, dtype=bool)
    return (b & ~s).astype(np.int8) - (s & ~b).astype(np.int8)


class _Book:
    """The account and the open position's exit levels; shared by both loops so they differ only in how they
    find the next candle to look at."""

    def __init__(self, strategy: Strategy, candles: Candles, cash: Decimal, symbol: str) -> None:
        self.s = strategy
        self.c = candles
        self.symbol = symbol
        self.quote = symbol.partition("/")[2] or "USDT"
        self.cash0 = cash
        self.ledger = Ledger(balances={self.quote: cash})
        self.fee = dec(strategy.fee)
        self.slip = dec(strategy.slippage)
        self.fills: list[Fill] = []
        self.fill_index: list[int] = []
        self.cash_after: list[float] = []
        self.amount_after: list[float] = []
        self.trades: list[Trade] = []
        self._realised_before = ZERO
        self.side = 0  # +1 long, -1 short, 0 flat
        self.entry: tuple[int, int, Decimal, Decimal, Decimal] | None = None  # index, ms, price, fee, amount
        ex = strategy.exits
        self.sl_pct, self.tp_pct, self.trail = ex.stop_loss_pct, ex.take_profit_pct, ex.trailing_stop_pct
        self.trail_f = (ex.trailing_stop_pct or 0.0) / 100.0
        self.sl_f = self.tp_f = math.nan
        self.sl_d: Decimal | None = None
        self.tp_d: Decimal | None = None
        self.peak = 0.0  # best price since entry (highest for a long, lowest for a short)
        self.has_levels = ex.stop_loss_pct is not None or ex.take_profit_pct is not None or ex.trailing_stop_pct is not None

    # -- fills -----------------------------------------------------------------------------------------
    def _fill(self, index: int, side: str, amount: Decimal, price: Decimal) -> Fill:
        fill = Fill(side, amount, price, fee_of(amount * price, self.fee), int(self.c.timestamp_ms[index]),
                    symbol=self.symbol)
        self.ledger.apply(fill)
        self.fills.append(fill)
        self.fill_index.append(index)
        self.cash_after.append(float(self.ledger.balances[self.quote]))
        self.amount_after.append(float(self.ledger.positions[self.symbol].amount))
        return fill

    def enter(self, index: int, side: int) -> None:
        """A market order at candle `index`'s open."""
        market = dec(float(self.c.open[index]))
        price = market * (1 + self.slip) if side > 0 else market * (1 - self.slip)
        amount = self._size(price, side)
        if amount <= 0:
            return
        fill = self._fill(index, "buy" if side > 0 else "sell", amount, price)
        self.side = side
        self.entry = (index, fill.timestamp_ms, price, fill.fee, amount)
        self.peak = float(self.c.open[index])
        if self.sl_pct is not None:
            self.sl_d = price * (1 - side * dec(self.sl_pct) / _HUNDRED)
            self.sl_f = float(self.sl_d)
        if self.tp_pct is not None:
            self.tp_d = price * (1 + side * dec(self.tp_pct) / _HUNDRED)
            self.tp_f = float(self.tp_d)

    def _size(self, price: Decimal, side: int) -> Decimal:
        sizing = self.s.sizing
        cash = self.ledger.balances[self.quote]
        unit_cost = price * (1 + self.fee)
        if sizing.type == "amount":
            amount = dec(sizing.value)
        elif sizing.type == "quote":
            amount = dec(sizing.value) / unit_cost
        else:
            amount = cash * dec(sizing.value) / _HUNDRED / unit_cost
        if side > 0:
            amount = min(amount, cash / unit_cost)
        return amount.quantize(AMOUNT_STEP, ROUND_FLOOR)

    def exit(self, index: int, price: Decimal, reason: str) -> None:
        assert self.entry is not None
        entry_index, entry_ms, entry_price, entry_fee, amount = self.entry
        held = self.ledger.positions[self.symbol].amount
        fill = self._fill(index, "sell" if held > 0 else "buy", abs(held), price)
        realised = self.ledger.realised
        self.trades.append(Trade(
            side="long" if self.side > 0 else "short", amount=amount, entry_index=entry_index, exit_index=index,
            entry_ms=entry_ms, exit_ms=fill.timestamp_ms, entry_price=entry_price, exit_price=price,
            entry_fee=entry_fee, exit_fee=fill.fee, pnl=realised - self._realised_before, exit_reason=reason))
        self._realised_before = realised
        self.side = 0
        self.entry = None
        self.sl_d = self.tp_d = None
        self.sl_f = self.tp_f = math.nan

    def exit_at_open(self, index: int, reason: str) -> None:
        market = dec(float(self.c.open[index]))
        self.exit(index, market * (1 - self.slip) if self.side > 0 else market * (1 + self.slip), reason)

    # -- one candle's path -----------------------------------------------------------------------------
    def scan_candle(self, j: int) -> bool:
        """Walk candle j's path against the exit levels; exit if one is reached. True if it exited. O(1)."""
        o, h, lo, c = float(self.c.open[j]), float(self.c.high[j]), float(self.c.low[j]), float(self.c.close[j])
        side = self.side
        assert self.entry is not None
        if j != self.entry[0] and self._at(j, o, o, gap=True):
            return True
        up_first = (h - o < o - lo) or (h - o == o - lo and side < 0)  # tie: against the position first
        prev = o
        for x in ((h, lo, c) if up_first else (lo, h, c)):
            if x != prev and self._at(j, prev, x, gap=False):
                return True
            prev = x
        return False

    def _stop_level(self) -> tuple[float, str]:
        """The effective stop (fixed or trailing, whichever is tighter) and its name."""
        side, stop, name = self.side, self.sl_f, "stopLoss"
        if self.trail is not None:
            level = self.peak * (1 - side * self.trail_f)
            if math.isnan(stop) or (level > stop if side > 0 else level < stop):
                stop, name = level, "trailingStop"
        return stop, name

    def _at(self, j: int, a: float, b: float, *, gap: bool) -> bool:
        """The move a → b (or the open, `gap`); exit if it reaches take-profit or the stop."""
        side = self.side
        favourable = (b > a) if side > 0 else (b < a)
        if gap or not favourable:  # towards the stop
            stop, name = self._stop_level()
            if not math.isnan(stop) and (b <= stop if side > 0 else b >= stop):
                level = dec(b) if gap else (self.sl_d if name == "stopLoss" and self.sl_d is not None else dec(stop))
                self.exit(j, level * (1 - self.slip) if side > 0 else level * (1 + self.slip), name)
                return True
        if (gap or favourable) and not math.isnan(self.tp_f) and (b >= self.tp_f if side > 0 else b <= self.tp_f):
            assert self.tp_d is not None
            self.exit(j, dec(b) if gap else self.tp_d, "takeProfit")
            return True
        if favourable or gap:
            self.peak = max(self.peak, b) if side > 0 else min(self.peak, b)
        return False

    def finish(self, n: int) -> Run:
        if self.side:
            close = dec(float(self.c.close[n - 1]))
            self.exit(n - 1, close * (1 - self.slip) if self.side > 0 else close * (1 + self.slip), "end")
        return Run(tuple(self.trades), tuple(self.fills), np.asarray(self.fill_index, dtype=np.int64),
                   np.asarray(self.cash_after), np.asarray(self.amount_after), self.cash0,
                   self.ledger.balances[self.quote])


def _time_exit_index(book: _Book, ts: IntArray) -> int:
    """First candle starting at or after entry + timeInTrade (n if none)."""
    limit = book.s.exits.time_in_trade_ms
    if limit is None or book.entry is None:
        return ts.shape[0]
    return max(int(np.searchsorted(ts, book.entry[1] + limit, side="left")), book.entry[0] + 1)


def run(strategy: Strategy, candles: Candles, signal: npt.NDArray[np.int8], *, cash: Decimal,
        symbol: str = "ASSET/USDT") -> Run:
    """Event-skipping loop (see the module docstring). `signal` is `net_signal(...)` at each close."""
    n = len(candles)
    book = _Book(strategy, candles, cash, symbol)
    ts, low, high = candles.timestamp_ms, candles.low, candles.high
    allowed = strategy.positions
    long_idx = np.flatnonzero(signal > 0)
    short_idx = np.flatnonzero(signal < 0)
    entry_idx = {"long": long_idx, "short": short_idx, "long_short": np.flatnonzero(signal != 0)}[allowed]
    use_signal_exit = strategy.exits.signal
    i = 0  # first close not yet looked at for an entry
    while True:
        if not book.side:
            k_pos = int(np.searchsorted(entry_idx, i))
            if k_pos >= entry_idx.shape[0]:
                break
            k = int(entry_idx[k_pos])
            if k + 1 >= n:
                break
            book.enter(k + 1, int(signal[k]))
            if not book.side:  # nothing to buy with
                i = k + 1
                continue
        assert book.entry is not None
        e = book.entry[0]
        # The next open where a market exit acts: an opposite signal's next candle, or the time limit.
        open_at, reason = n, ""
        if use_signal_exit:
            opposite = short_idx if book.side > 0 else long_idx
            pos = int(np.searchsorted(opposite, e))
            if pos < opposite.shape[0] and int(opposite[pos]) + 1 < n:
                open_at, reason = int(opposite[pos]) + 1, "signal"
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


def _scan_levels(book: _Book, start: int, stop: int, low: FloatArray, high: FloatArray) -> int:
    """First candle in [start, stop) where the position exits on a level (its index), else -1."""
    j, chunk = start, 64
    while j < stop:
        end = min(stop, j + chunk)
        chunk *= 2
        side = book.side
        lo, hi = low[j:end], high[j:end]
        if side > 0:
            hit = hi >= book.tp_f if not math.isnan(book.tp_f) else np.zeros(end - j, dtype=bool)
            if not math.isnan(book.sl_f):
                hit = hit | (lo <= book.sl_f)
            if book.trail is not None:
                peak = np.maximum(np.maximum.accumulate(hi), book.peak)
                hit = hit | (lo <= peak * (1 - book.trail_f))
        else:
            hit = lo <= book.tp_f if not math.isnan(book.tp_f) else np.zeros(end - j, dtype=bool)
            if not math.isnan(book.sl_f):
                hit = hit | (hi >= book.sl_f)
            if book.trail is not None:
                trough = np.minimum(np.minimum.accumulate(lo), book.peak)
                hit = hit | (hi >= trough * (1 + book.trail_f))
        base = j
        for offset in np.flatnonzero(hit):
            candidate = base + int(offset)
            # Candles skipped between candidates only move the best price (their highs/lows).
            if book.trail is not None:
                seg = slice(j, candidate)
                if candidate > j:
                    book.peak = (max(book.peak, float(high[seg].max())) if side > 0
                                 else min(book.peak, float(low[seg].min())))
                j = candidate
            if book.scan_candle(candidate):
                return candidate
            j = candidate + 1
        if book.trail is not None and j < end:
            book.peak = (max(book.peak, float(high[j:end].max())) if side > 0 else min(book.peak, float(low[j:end].min())))
        j = end
    return -1


def run_per_candle(strategy: Strategy, candles: Candles, signal: npt.NDArray[np.int8], *, cash: Decimal,
                   symbol: str = "ASSET/USDT") -> Run:
    """The plain loop, one candle at a time: the reference `run` is proved equal to."""
    n = len(candles)
    book = _Book(strategy, candles, cash, symbol)
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
