"""The one ledger: average-cost positions, balances, realised/unrealised P&L and fees, in Decimal.

Public surface (import from here):
- `dec(value)` → finite Decimal or `NotANumber`; `opt_dec` (None stays None); `dec_or_zero` (lenient reads);
  `fee_of(cost, rate)` → the fee to 1e-8.
- `Fill(side, amount, price, fee, timestamp_ms, symbol="", order_id="", fee_other=None)`: one execution.
- `Position`: one symbol's holding, `apply(fill)` → realised P&L, `unrealised(mark)`, `entry_price`.
- `Ledger`: balances + positions for an account (`apply`, `equity(quote, marks)`), used by the backtester.
- `apply_to_balances(totals, fill, base=, quote=)`: the paper broker's stored balances after a fill.
- `split_symbol("BTC/USDT")` → ("BTC", "USDT").
The order book and matching engine live beside it in `services/ledger/book.py` (owned by the orders work).
"""

from services.ledger.accounts import Fill, Ledger, Position, apply_to_balances, split_symbol
from services.ledger.numbers import FEE_QUANTUM, ZERO, NotANumber, dec, dec_or_zero, fee_of, opt_dec

__all__ = [
    "FEE_QUANTUM",
    "ZERO",
    "Fill",
    "Ledger",
    "NotANumber",
    "Position",
    "apply_to_balances",
    "dec",
    "dec_or_zero",
    "fee_of",
    "opt_dec",
    "split_symbol",
]
