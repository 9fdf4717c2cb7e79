"""Average-cost bookkeeping: fills move positions and balances; realised and unrealised P&L; fees.

The one ledger of Skeet, used by the paper broker (through `backend_stub/accounting.py`, which stores
positions as ccxt documents), the backtester and analytics. Fees are in the quote currency. Rules:
- a fill that grows a position adds `amount × price + fee` to its cost basis;
- a fill that reduces it realises `proceeds - fee - basis of the amount closed` (for a short, the proceeds
  are negative: buying back costs money);
- a fill that crosses zero closes the position and opens the rest on the other side, the fee split by amount;
- unrealised P&L is `amount × mark - cost basis`: entry fees are in it, the exit fee is not (not paid yet).
Amounts are signed (negative = short). Every operation is O(1); all money is Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from services.ledger.numbers import ZERO


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order. `fee` is in the quote currency; `fee_other` is a fee in a third currency
    (e.g. BNB), kept out of P&L and reported apart."""

    side: str  # "buy" | "sell"
    amount: Decimal  # base, > 0
    price: Decimal
    fee: Decimal
    timestamp_ms: int
    symbol: str = ""
    order_id: str = ""
    fee_other: tuple[str, Decimal] | None = None

    @property
    def cost(self) -> Decimal:
        """Traded value in quote, fee excluded."""
        return self.amount * self.price

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.side == "buy" else -self.amount


@dataclass(slots=True)
class Position:
    """One symbol's holding at average cost. Mutable accumulator: `apply` is called once per fill."""

    amount: Decimal = ZERO  # signed: negative is short
    basis: Decimal = ZERO  # quote paid for the open amount, entry fees included (negative for a short)
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    mark: Decimal | None = None  # the last fill's price unless re-marked

    def apply(self, fill: Fill) -> Decimal:
        """Book `fill`; returns the P&L it realised. O(1)."""
        return self.book(fill.signed_amount, fill.price, fill.fee)

    def book(self, d: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """Book a fill of signed amount `d` (negative: sold) at `price` with `fee`; the realised P&L. O(1).
        `apply` without the `Fill` object, for the backtester's hot loop."""
        self.fees += fee
        self.mark = price
        held = self.amount
        if not held:  # opening from flat: the common case, without the closing arithmetic
            self.basis = d * price + fee
            self.amount = d
            return ZERO
        if d == -held:  # closing all of it
            realised = -d * price - fee - self.basis
            self.realised += realised
            self.basis = ZERO
            self.amount = ZERO
            return realised
        before = self.realised
        if (d > 0) != (held > 0):
            closed = min(abs(d), abs(self.amount))
            fee_part = fee if closed == abs(d) else fee * closed / abs(d)
            closed_signed = closed if d > 0 else -closed
            basis_closed = self.basis if closed == abs(self.amount) else self.basis * closed / abs(self.amount)
            self.realised += -closed_signed * price - fee_part - basis_closed
            self.basis -= basis_closed
            self.amount += closed_signed
            if not self.amount:
                self.basis = ZERO
            d -= closed_signed
            fee -= fee_part
        if d:
            self.basis += d * price + fee
            self.amount += d
        return self.realised - before

    @property
    def entry_price(self) -> Decimal | None:
        """Average entry price, fees included; None when flat."""
        return self.basis / self.amount if self.amount else None

    def unrealised(self, mark: Decimal | None = None) -> Decimal:
        mark = mark if mark is not None else self.mark
        if not self.amount or mark is None:
            return ZERO
        return self.amount * mark - self.basis


def split_symbol(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") for "BTC/USDT" (and for a ccxt contract "BTC/USDT:USDT")."""
    base, _, quote = symbol.partition("/")
    return base, quote.split(":")[0]


def apply_to_balances(totals: Mapping[str, Decimal], fill: Fill, *, base: str, quote: str) -> dict[str, Decimal]:
    """Balances after `fill` (fee in quote): a new dict, `totals` is left alone."""
    out = dict(totals)
    signed = fill.signed_amount
    out[quote] = out.get(quote, ZERO) - signed * fill.price - fill.fee
    out[base] = out.get(base, ZERO) + signed
    return out


@dataclass(slots=True)
class Ledger:
    """An account: balances per currency and a position per symbol, moved by fills. The backtester's and the
    paper session's book; `equity` marks it to market."""

    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    fees: Decimal = ZERO
    realised: Decimal = ZERO
    fills: int = 0

    def apply(self, fill: Fill) -> Decimal:
        """Book `fill` (its `symbol` names the market); returns the P&L it realised. O(1)."""
        return self.book(fill.symbol, fill.signed_amount, fill.price, fill.fee)

    def book(self, symbol: str, d: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """`apply` without the `Fill` object: signed amount `d` of `symbol` at `price`, `fee` in quote."""
        base, _, quote = symbol.partition("/")
        if ":" in quote:  # a ccxt contract symbol, "BTC/USDT:USDT"
            quote = quote.split(":")[0]
        balances = self.balances
        balances[quote] = balances.get(quote, ZERO) - d * price - fee
        balances[base] = balances.get(base, ZERO) + d
        position = self.positions.get(symbol)
        if position is None:
            position = self.positions[symbol] = Position()
        realised = position.book(d, price, fee)
        self.realised += realised
        self.fees += fee
        self.fills += 1
        return realised

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position()

    def balance(self, currency: str) -> Decimal:
        return self.balances.get(currency, ZERO)

    def unrealised(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((p.unrealised(marks.get(s)) for s, p in self.positions.items()), ZERO)

    def equity(self, quote: str, marks: Mapping[str, Decimal]) -> Decimal:
        """Cash in `quote` plus every position in a `quote` market valued at its mark (else its last fill)."""
        total = self.balance(quote)
        for symbol, position in self.positions.items():
            if position.amount and split_symbol(symbol)[1] == quote:
                mark = marks.get(symbol, position.mark)
                if mark is not None:
                    total += position.amount * mark
        return total
