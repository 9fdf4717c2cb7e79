"""A live spot position rebuilt from the user's own trades on the exchange, which keeps balances but no entry
price: the trades are replayed in time order through the paper broker's bookkeeping (`accounting`).

What the trades do not explain is said, not guessed. Each position carries `basis`:

- `"trades"`: the trades explain the whole holding; `entryPrice`, `costBasis`, `realizedPnl`,
  `unrealizedPnl` and `fees` are computed from them (average cost, fees in quote).
- `"partial"`: they explain only part of it (coins deposited, bought in another market, or traded before the
  oldest trade the exchange returns; a fee paid in a currency with no price): those five fields are null.
- `"unknown"`: there is no trade at all; those five fields are null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from backend_stub.accounting import ZERO, Fill, apply_to_position, position_doc
from backend_stub.money import dec, opt_dec

BASIS_TRADES = "trades"
BASIS_PARTIAL = "partial"
BASIS_UNKNOWN = "unknown"
# Null unless the basis is "trades".
UNEXPLAINED_FIELDS = ("entryPrice", "costBasis", "realizedPnl", "unrealizedPnl", "fees")


def position_from_trades(
    *,
    symbol: str,
    base: str,
    quote: str,
    held: Decimal,
    trades: Iterable[Mapping[str, Any]],
    mark: Decimal | None,
    fee_prices: Mapping[str, Decimal],
    timestamp_ms: int,
) -> dict[str, Any]:
    """The position in `symbol` of someone holding `held` coins whose trades in it are `trades` (ccxt
    trades, any order), marked at `mark`. `fee_prices` values fees paid in a third currency (BNB) in quote."""
    ordered = in_time_order(trades)
    if not ordered:
        return _unexplained(symbol, quote, held, mark, BASIS_UNKNOWN, timestamp_ms)
    doc: dict[str, Any] | None = None
    for trade in ordered:
        fill = fill_of(trade, base=base, quote=quote, fee_prices=fee_prices)
        replayed = dec(doc["amount"]) if doc else ZERO
        if fill is None or (fill.side == "sell" and fill.amount > replayed):
            # A fee nobody can value, or a sale of coins these trades never bought.
            return _unexplained(symbol, quote, held, mark, BASIS_PARTIAL, timestamp_ms)
        doc = apply_to_position(doc, fill, symbol=symbol, quote=quote)
    assert doc is not None
    if dec(doc["amount"]) != held:
        return _unexplained(symbol, quote, held, mark, BASIS_PARTIAL, timestamp_ms)
    marked = position_doc(
        symbol=symbol,
        quote=quote,
        amount=held,
        cost_basis=dec(doc["costBasis"]),
        realised=dec(doc["realizedPnl"]),
        fees=dec(doc["fees"]["cost"]),
        mark=mark,
        timestamp_ms=timestamp_ms,
    )
    if mark is None and held > 0:
        marked["unrealizedPnl"] = None  # no price to mark at: unknown, not zero
    return {**marked, "basis": BASIS_TRADES}


def fill_of(
    trade: Mapping[str, Any], *, base: str, quote: str, fee_prices: Mapping[str, Decimal]
) -> Fill | None:
    """A ccxt trade as an accounting `Fill` with its fees in quote; None when it cannot be one (no side, or a
    fee in a currency `fee_prices` does not price).

    A fee in the coin itself (Binance takes a buy's fee from the coins bought) changes how many coins the
    trade moved; the fill says so, priced at the trade's price, so cost basis and proceeds stay exact."""
    side = trade.get("side")
    amount, price = opt_dec(trade.get("amount")), opt_dec(trade.get("price"))
    if side not in ("buy", "sell") or amount is None or price is None:
        return None
    moved, fee_in_quote = amount, ZERO
    for fee in trade_fees(trade):
        cost, currency = opt_dec(fee.get("cost")) or ZERO, fee.get("currency")
        if cost == 0 or currency == quote:
            fee_in_quote += cost
        elif currency == base:
            moved += -cost if side == "buy" else cost
            fee_in_quote += cost * price
        elif isinstance(currency, str) and currency in fee_prices:
            fee_in_quote += cost * fee_prices[currency]
        else:
            return None
    return Fill(side, moved, price, fee_in_quote, int(trade.get("timestamp") or 0))


def fee_currencies(trades: Iterable[Mapping[str, Any]], *, base: str, quote: str) -> set[str]:
    """Currencies other than `base` and `quote` that `trades` paid fees in (they need a price)."""
    return {
        fee["currency"]
        for trade in trades
        for fee in trade_fees(trade)
        if fee.get("cost") and fee.get("currency") not in (None, base, quote)
    }


def trade_fees(trade: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """ccxt's `fees` (one per currency) when given, else its single `fee`."""
    fees = trade.get("fees")
    if fees:
        return list(fees)
    fee = trade.get("fee")
    return [fee] if fee else []


def in_time_order(trades: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Oldest first (ties by the exchange's trade id), each trade once."""
    unique = {str(t["id"]) if t.get("id") is not None else f"#{n}": t for n, t in enumerate(trades)}
    return sorted(unique.values(), key=_time_key)


def _time_key(trade: Mapping[str, Any]) -> tuple[int, int, str]:
    trade_id = str(trade.get("id") or "")
    return int(trade.get("timestamp") or 0), int(trade_id) if trade_id.isdigit() else 0, trade_id


def _unexplained(
    symbol: str, quote: str, held: Decimal, mark: Decimal | None, basis: str, timestamp_ms: int
) -> dict[str, Any]:
    """A position whose cost the trades do not give: its amount and mark, and null where P&L would be."""
    doc = position_doc(
        symbol=symbol,
        quote=quote,
        amount=held,
        cost_basis=ZERO,
        realised=ZERO,
        fees=ZERO,
        mark=mark,
        timestamp_ms=timestamp_ms,
    )
    return {**doc, **dict.fromkeys(UNEXPLAINED_FIELDS), "basis": basis}
