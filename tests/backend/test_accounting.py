"""Paper bookkeeping conserves money: whatever the fills, cash + holdings at a price equals the start plus
realised and unrealised P&L, and fees are exactly what left the account."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from backend_stub.accounting import Fill, apply_to_balances, apply_to_position, position_doc_id
from backend_stub.money import ceil_to, dec, fee_of, floor_to, is_multiple

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("5"), places=4)


@given(st.lists(st.tuples(st.booleans(), amounts, prices), min_size=1, max_size=30), prices)
def test_money_is_conserved(trades: list[tuple[bool, Decimal, Decimal]], mark: Decimal) -> None:
    start = Decimal(1_000_000)
    totals = {"USDT": start}
    position = None
    fees = Decimal(0)
    for is_buy, amount, price in trades:
        held = dec(position["amount"]) if position else Decimal(0)
        if not is_buy:
            amount = min(amount, held)
            if amount <= 0:
                continue
        fee = fee_of(amount * price, Decimal("0.001"))
        fill = Fill("buy" if is_buy else "sell", amount, price, fee, 0)
        totals = apply_to_balances(totals, fill, base="BTC", quote="USDT")
        position = apply_to_position(position, fill, symbol="BTC/USDT", quote="USDT")
        fees += fee
    if position is None:  # only sells, nothing to sell
        assert totals == {"USDT": start}
        return
    held = dec(position["amount"])
    assert totals.get("BTC", 0) == held >= 0
    equity = totals["USDT"] + held * mark
    realised, basis = dec(position["realizedPnl"]), dec(position["costBasis"])
    unrealised = held * mark - basis
    # realised/basis are stored to 1e-8: allow that rounding per trade
    assert abs(equity - (start + realised + unrealised)) <= Decimal("1e-6") * len(trades)
    assert dec(position["fees"]["cost"]) == fees


def test_grid_helpers() -> None:
    step = Decimal("0.01")
    assert floor_to(Decimal("1.239"), step) == Decimal("1.23")
    assert ceil_to(Decimal("1.231"), step) == Decimal("1.24")
    assert is_multiple(Decimal("1.23"), step) and not is_multiple(Decimal("1.235"), step)
    assert is_multiple(Decimal("1e20"), Decimal("1e-20")) is False  # no overflow: just off-grid
    assert fee_of(Decimal("5002.5"), Decimal("0.001")) == Decimal("5.0025")
    assert position_doc_id("BTC/USDT") == "BTC-USDT"
