"""The order ticket's rules and view: every order type's fields and body, the estimate against the paper
broker's real fill, % of balance, and when the ticket asks before sending."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.paper import PaperBroker
from backend_stub.store.sqlite import SqliteStore
from client.shell import Shell
from client.state import AppState, Ticket
from client.ticket import (
    PAPER_TERMS,
    confirmation_reasons,
    describe_order,
    estimate,
    field_errors,
    order_body,
    percent_amount,
)
from services.market import Tick
from tests.backend.listfeed import ListFeed, sample_markets
from views.common import Intents

MARKETS = sample_markets()
BTC = MARKETS["BTC/USDT"]


def test_each_order_type_sends_the_fields_of_the_order_api() -> None:
    t = Ticket
    assert order_body(t(type="market", amount="0.1"), Decimal("0.1")) == {}
    assert order_body(t(type="limit", price="96000", tif="IOC"), Decimal(1)) == {"price": "96000",
                                                                                   "timeInForce": "IOC"}
    assert order_body(t(type="limit", price="96000", post_only=True), Decimal(1)) == {"price": "96000",
                                                                                        "postOnly": True}
    assert order_body(t(type="stop_market", stop_price="99000"), Decimal(1)) == {"stopPrice": "99000"}
    assert order_body(t(type="stop_limit", price="99100", stop_price="99000", tif="FOK"), Decimal(1)) == {
        "price": "99100", "stopPrice": "99000", "timeInForce": "FOK"}
    assert order_body(t(type="trailing_stop", trailing_percent="2.5"), Decimal(1)) == {"trailingPercent": "2.5"}
    assert order_body(t(type="oco", price="105000", stop_price="95000"), Decimal(1)) == {
        "price": "105000", "stopPrice": "95000"}
    bracket = t(type="market", bracket=True, take_profit="105000", stop_loss="95000")
    assert order_body(bracket, Decimal(1)) == {"takeProfitPrice": "105000", "stopLossPrice": "95000"}
    # A post-only flag left on from a limit order is not sent with a stop; nor a bracket with an OCO.
    assert order_body(t(type="stop_market", stop_price="1", post_only=True), Decimal(1)) == {"stopPrice": "1"}
    assert order_body(t(type="oco", price="2", stop_price="1", bracket=True, take_profit="3"), Decimal(1)) == {
        "price": "2", "stopPrice": "1"}


def test_missing_or_bad_fields_are_named_in_words() -> None:
    assert field_errors(Ticket(amount="")) == "Amount: enter a value"
    assert field_errors(Ticket(amount="abc")) == "Amount: enter a number"
    assert field_errors(Ticket(amount="0.1", type="stop_limit", price="1")) == "Stop (trigger) price: enter a value"
    assert field_errors(Ticket(amount="0.1", type="trailing_stop", trailing_percent="120")) == \
        "Trailing distance must be under 100%"
    assert field_errors(Ticket(amount="-1")) == "Amount must be above zero"
    assert field_errors(Ticket(amount="10", amount_mode="quote", type="market")) is None
    assert field_errors(Ticket(amount="1", bracket=True)) == \
        "Enter a take-profit or a stop-loss price (or switch the bracket off)"


async def test_a_market_order_fills_at_the_price_the_ticket_estimated(tmp_path: Path) -> None:
    """One price story: the estimate's price and fee are the paper broker's fill, to the cent."""
    last = 97_603.3
    feed = ListFeed({"BTC/USDT": last})
    async with SqliteStore(tmp_path / "state.db") as store, PaperBroker(store=store, feed=feed) as broker:
        for side in ("buy", "sell"):
            ticket = Ticket(side=side, type="market", amount="0.01")
            est = estimate(ticket, Decimal(str(last)), BTC, PAPER_TERMS)
            assert est is not None
            order = await broker.create_order("u1", OrderRequest(
                symbol="BTC/USDT", side=side, type="market", amount=est.amount, price=None, stop_price=None,
                client_order_id=f"k-{side}"))
            assert Decimal(str(order["average"])) == est.price
            assert Decimal(str(order["fee"]["cost"])) == est.fee.quantize(Decimal("0.00000001"))
    assert est.slippage == Decimal("0.0005") and est.price < Decimal(str(last))  # a sell gets less


def test_an_order_value_becomes_an_amount_on_the_step() -> None:
    ticket = Ticket(type="limit", price="50000", amount="1000", amount_mode="quote")
    est = estimate(ticket, Decimal("51000"), BTC, PAPER_TERMS)
    assert est is not None and est.amount == Decimal("0.02") and est.fee_rate == PAPER_TERMS.maker_fee


def test_a_limit_through_the_market_is_estimated_at_the_last_price_as_a_taker() -> None:
    ticket = Ticket(type="limit", price="1000000", amount="0.01")
    est = estimate(ticket, Decimal("97000"), BTC, PAPER_TERMS)
    assert est is not None and est.price == Decimal("97000") and est.fee_rate == PAPER_TERMS.taker_fee


def test_percent_of_the_free_balance() -> None:
    kw = {"free_quote": Decimal("10000"), "free_base": Decimal("0.5"), "price": Decimal("50000"), "market": BTC,
          "terms": PAPER_TERMS}
    # A buy of 100% leaves room for the fee: 10,000 / 1.001 / 50,000 = 0.19980..., floored to the step.
    assert percent_amount(100, Ticket(side="buy"), **kw) == "0.1998"
    assert percent_amount(25, Ticket(side="sell"), **kw) == "0.125"
    assert percent_amount(50, Ticket(side="buy", amount_mode="quote"), **kw) == "4995"


def test_far_prices_and_large_orders_ask_first() -> None:
    last = Decimal("100000")
    far = Ticket(type="limit", price="1000000", amount="0.01")
    reasons = confirmation_reasons(far, estimate(far, last, BTC, PAPER_TERMS), last, confirm_above=None,
                                   quote="USDT", places=2)
    assert reasons == ["Limit price 1,000,000.00 is 900.0% above the market (100,000.00)"]
    near = Ticket(type="limit", price="99000", amount="0.5")
    assert confirmation_reasons(near, estimate(near, last, BTC, PAPER_TERMS), last, confirm_above=None,
                                quote="USDT", places=2) == []
    big = confirmation_reasons(near, estimate(near, last, BTC, PAPER_TERMS), last, confirm_above=Decimal("10000"),
                               quote="USDT", places=2)
    assert big == ["The order is worth about 49,500.00 USDT, above your 10,000.00 USDT limit for orders "
                   "without a second look"]
    assert describe_order(far, "BTC/USDT", quote="USDT", places=2) == \
        "Buy 0.01 BTC/USDT at 1,000,000.00 (limit, GTC)"
    oco = Ticket(side="sell", type="oco", amount="0.5", price="105000", stop_price="95000")
    assert describe_order(oco, "BTC/USDT", quote="USDT", places=2) == (
        "Sell 0.5 BTC/USDT at 105,000.00, or at the market price once it trades at 95,000.00 "
        "(OCO: one cancels the other)")


def make_state() -> AppState:
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT", width=1440)
    state.set_markets({"BTC/USDT": BTC})
    state.apply_tick(Tick("BTC/USDT", 60_000, 50_000.0, 0.1))
    state.set_balance({"free": {"USDT": 12_345.678, "BTC": 0.5}, "used": {"USDT": 1000.0},
                       "total": {"USDT": 13_345.678, "BTC": 0.5}})
    return state


@pytest.mark.parametrize(("order_type", "shown"), [
    ("market", set()), ("limit", {"price", "tif_row", "post_only", "bracket"}),
    ("stop_market", {"stop", "bracket"}), ("stop_limit", {"price", "stop", "tif_row", "bracket"}),
    ("trailing_stop", {"trailing"}), ("oco", {"price", "stop"}),
])
def test_the_ticket_shows_the_fields_of_each_type(order_type: str, shown: set[str]) -> None:
    state = make_state()
    state.edit_ticket(type=order_type)
    shell = Shell(Intents())
    shell.render(state)
    view = shell.ticket
    optional = {"price", "stop", "trailing", "tif_row", "post_only"}
    assert {name for name in optional if getattr(view, name).visible} == shown - {"bracket"}
    assert view.bracket.visible == ("bracket" in shown or order_type == "market")
    assert view.types[order_type].selected and sum(c.selected for c in view.types.values()) == 1


def test_balance_beside_the_amount_and_percent_buttons_fill_it() -> None:
    state = make_state()
    shell = Shell(Intents(edit_ticket=state.edit_ticket))
    shell.render(state)
    view = shell.ticket
    assert view.free.value == "12,345.68" and view.free_currency.value == "USDT"
    assert view.locked.value == "In orders 1,000.00"
    view._percent(SimpleNamespace(control=SimpleNamespace(data=50)))
    # 50% of 12,345.678 USDT at the market fill (50,025.00 with slippage), fee kept aside, on the 0.0001 step.
    assert state.ticket.amount == "0.1232"  # 6,172.84 / 1.001 / 50,025.00 = 0.12327...
    state.edit_ticket(side="sell")
    shell.render(state, state.take_dirty())
    assert view.free.value == "0.5000" and view.free_currency.value == "BTC"
    view._percent(SimpleNamespace(control=SimpleNamespace(data=100)))
    assert state.ticket.amount == "0.5"
