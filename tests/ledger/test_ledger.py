"""The one ledger: average cost by hand, shorts and zero-crossings, money conserved in an account, and one
`dec()` that refuses what is not a finite number."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger import Fill, Ledger, NotANumber, Position, dec, dec_or_zero, opt_dec

D = Decimal


def test_average_cost_by_hand() -> None:
    p = Position()
    p.apply(Fill("buy", D(1), D(100), D("0.1"), 1))
    p.apply(Fill("buy", D(1), D(200), D("0.2"), 2))
    assert p.amount == 2 and p.basis == D("300.3") and p.entry_price == D("150.15")
    realised = p.apply(Fill("sell", D(1), D(180), D("0.18"), 3))
    assert realised == D(180) - D("0.18") - D("150.15")
    assert p.unrealised(D(160)) == D(160) - D("150.15")
    assert p.fees == D("0.48")


def test_a_fill_crossing_zero_closes_then_opens_the_rest_short() -> None:
    p = Position()
    p.apply(Fill("buy", D(1), D(100), D(0), 1))
    realised = p.apply(Fill("sell", D(3), D(110), D(3), 2))  # fee 1 for the closing part, 2 for the short
    assert realised == D(10) - D(1)
    assert p.amount == -2 and p.basis == D(-220) + D(2)
    assert p.unrealised(D(100)) == D(-200) - (D(-220) + D(2))  # short gains as the price falls


def test_dec_has_one_behaviour_on_bad_input() -> None:
    assert dec("0.1") == D("0.1") and dec(0.1) == D("0.1") and dec(3) == D(3) and dec(" 2.5 ") == D("2.5")
    for bad in (None, "banana", "nan", float("inf"), D("NaN"), True, ""):
        with pytest.raises(NotANumber):
            dec(bad)
    with pytest.raises(InvalidOperation):  # callers catching the decimal error keep working
        dec("x")
    with pytest.raises(ValueError):
        dec("x")
    assert opt_dec(None) is None and dec_or_zero("nan") == 0 and dec_or_zero(None) == 0


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
amounts = st.decimals(min_value=D("0.0001"), max_value=D("5"), places=4)


@given(st.lists(st.tuples(st.booleans(), amounts, prices), min_size=1, max_size=30), prices)
def test_an_account_conserves_money_long_and_short(trades: list[tuple[bool, Decimal, Decimal]], mark: Decimal) -> None:
    start = D(1_000_000)
    book = Ledger(balances={"USDT": start})
    for is_buy, amount, price in trades:
        book.apply(Fill("buy" if is_buy else "sell", amount, price, (amount * price * D("0.001")), 0,
                        symbol="BTC/USDT"))
    position = book.position("BTC/USDT")
    assert book.balance("BTC") == position.amount
    # Equal up to Decimal's 28-digit rounding of average-cost divisions.
    assert abs(book.equity("USDT", {"BTC/USDT": mark}) - (start + book.realised + position.unrealised(mark))) < D("1e-12")
    assert book.fees == sum((a * p * D("0.001") for _, a, p in trades), D(0))
