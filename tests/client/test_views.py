"""Views built from state, inspected without a browser: what a trader sees at each width."""

from __future__ import annotations

import flet as ft
import pytest

from client.shell import Shell
from client.state import AppState
from services.live import Change
from services.market import Candle, Tick
from tests.controls import by_identifier, texts, walk
from views.common import Intents, decimals
from views.orders import status_label

MARKET = {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
          "precision": {"price": 0.01, "amount": 0.0001}, "limits": {"amount": {"min": 0.0001}}}


def make_state(width: float = 1440) -> AppState:
    state = AppState(watchlist=["BTC/USDT", "ETH/USDT"], selected="BTC/USDT", width=width,
                     modes={"market": "Replay · simulated", "orders": "Paper trading", "live": "Local state",
                            "identity": "Local user"})
    state.set_markets({"BTC/USDT": MARKET})
    bars = [Candle(60_000 * i, 100 + i, 102 + i, 99 + i, 101 + i, 1.0) for i in range(30)]
    state.set_history("BTC/USDT", bars, open_24h=100.0)
    return state


def test_watchlist_shows_price_at_market_precision_with_arrow_and_sign() -> None:
    state = make_state()
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 5, 131.5, 0.2))
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 9, 131.25, 0.1))
    shell = Shell(Intents())
    shell.render(state)
    row = texts(by_identifier(shell.root, "quote-BTC/USDT"))
    assert "131.25" in row  # two decimals: the market's 0.01 tick size
    assert "+31.25%" in row  # colour is never the only cue: the sign, and an arrow icon
    assert shell.watchlist.rows["BTC/USDT"].arrow.content.icon == ft.Icons.ARROW_DROP_UP
    assert shell.watchlist.rows["BTC/USDT"].price.color == ft.Colors.RED_400  # last move was down


def test_watchlist_row_tap_selects_symbol() -> None:
    chosen: list[str] = []
    intents = Intents(select_symbol=chosen.append)
    shell = Shell(intents)
    shell.render(make_state())
    shell.watchlist.rows["ETH/USDT"].box.on_click(None)
    assert chosen == ["ETH/USDT"]


def test_ticket_labels_follow_selected_market_and_side() -> None:
    state = make_state()
    state.edit_ticket(side="sell", type="limit", amount="0.5", price="120")
    shell = Shell(Intents())
    shell.render(state)
    ticket = shell.ticket
    assert ticket.submit.content == "Sell BTC/USDT"
    assert ticket.amount.label == "Amount (BTC)" and ticket.price.visible
    # A sell limit under the market (130) trades at once at the last price: 65.00 USDT less the taker fee.
    assert ticket.estimate.value.splitlines() == [
        "≈ 64.94 USDT to receive, fee included",
        "0.5000 BTC at 130.00 (the limit is through the market: it trades at once)", "Fee ≈ 0.07 USDT (0.10%)"]


def test_orders_empty_state_then_rows_from_live_changes() -> None:
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    assert shell.orders.empty.visible
    order = {"id": "o1", "clientOrderId": "c1", "symbol": "BTC/USDT", "side": "buy", "type": "market",
             "amount": 0.5, "filled": 0, "status": "open", "timestamp": 1}
    state.apply_change(Change("orders", "o1", "added", order, 1))
    shell.render(state)
    assert not shell.orders.empty.visible
    assert "Open" in texts(by_identifier(shell.root, "order-c1"))
    state.apply_change(Change("orders", "o1", "modified", {**order, "filled": 0.5, "status": "closed",
                                                            "average": 130.0}, 2))
    shell.render(state)
    row = texts(by_identifier(shell.root, "order-c1"))
    assert "Filled" in row and "@ 130.00" in row  # the fill price, as the position's entry shows it


@pytest.mark.parametrize("width", [390, 820])
def test_order_rows_fit_narrow_screens_on_two_lines(width: float) -> None:
    """The tablet table overflowed (price and status off-screen) and phone rows wrapped raggedly."""
    from views.orders import order_kind

    state = make_state(width)
    order = {"id": "o2", "clientOrderId": "c2", "symbol": "BTC/USDT", "side": "sell", "type": "stop_limit",
             "amount": 1250.5, "filled": 0, "price": 99_000.0, "stopPrice": 99_500.0, "timeInForce": "IOC",
             "status": "open", "timestamp": 1}
    state.apply_change(Change("orders", "o2", "added", order, 1))
    shell = Shell(Intents())
    shell.render(state)
    row = by_identifier(shell.root, "order-c2")
    body = row.content.controls[0]
    assert isinstance(body, ft.Column) and len(body.controls) == 2  # two lines, no wrapping
    assert not any(getattr(c, "wrap", False) for c in walk(row))
    assert "0/1,250.5" in texts(row) and "99,000.00 · trigger 99,500.00" in texts(row)
    assert row.label == "sell 1250.5 BTC/USDT stop limit order, Open"
    assert order_kind({"type": "limit", "postOnly": True}) == "Limit · post-only"


def test_status_labels() -> None:
    assert status_label({"status": "open", "filled": 0.1}) == "Partially filled"
    assert status_label({"status": "closed"}) == "Filled"
    assert status_label({"status": "canceled"}) == "Canceled"


def test_mode_badge_names_every_mode() -> None:
    state = make_state()
    state.set_live_status("connected")
    shell = Shell(Intents())
    shell.render(state)
    badge = by_identifier(shell.root, "mode-badge")
    for label in ("Replay · simulated", "Paper trading", "Local state", "Local user"):
        assert label in texts(badge)
    assert "Local state: connected" in badge.label


def test_a_phone_badge_fits_one_row_in_short_words_and_its_label_keeps_the_full_ones() -> None:
    state = make_state(390)
    state.modes.update(market="Simulated market", orders="Paper trading · http://127.0.0.1:8000")
    shell = Shell(Intents())
    shell.render(state)
    badge = by_identifier(shell.root, "mode-badge")
    assert {"Simulated", "Paper", "Local state", "Local user"} <= set(texts(badge))
    assert "Simulated market" in badge.label and "Paper trading · http://127.0.0.1:8000" in badge.label


@pytest.mark.parametrize(
    ("width", "nav_type", "absent"),
    [(390, ft.NavigationBar, ft.NavigationRail), (820, ft.NavigationRail, ft.NavigationBar),
     (1440, ft.NavigationRail, ft.NavigationBar)],
)
def test_layout_per_breakpoint(width: float, nav_type: type, absent: type) -> None:
    state = make_state(width)
    shell = Shell(Intents())
    shell.render(state)
    controls = list(walk(shell.root))
    assert any(isinstance(c, nav_type) for c in controls)
    assert not any(isinstance(c, absent) for c in controls)
    panels = ("watchlist", "orders", "mode-badge", "chart")
    for identifier in panels if width < 600 else (*panels, "order-ticket"):
        by_identifier(shell.root, identifier)


def test_phone_opens_the_ticket_from_a_trade_button() -> None:
    opened: list[bool] = []
    shell = Shell(Intents(open_ticket=lambda: opened.append(True)))
    shell.render(make_state(390))
    buttons = [c for c in walk(shell.root) if isinstance(c, ft.FilledButton) and c.content == "Trade BTC/USDT"]
    assert len(buttons) == 1
    buttons[0].on_click(None)
    assert opened == [True]


def test_resize_keeps_what_the_trader_typed() -> None:
    state = make_state(390)
    state.edit_ticket(amount="0.25")
    shell = Shell(Intents())
    shell.render(state)
    ticket_field = shell.ticket.amount
    state.resize(1440)  # the phone turned into a desktop window: the ticket joins the layout as typed
    shell.render(state)
    assert shell.ticket.amount is ticket_field and ticket_field.value == "0.25"
    assert any(c is ticket_field for c in walk(shell.root))


def test_precision_decimals() -> None:
    assert decimals(0.01) == 2 and decimals(1e-8) == 8 and decimals(1) == 0 and decimals(3) == 3


def test_a_repaint_sends_only_the_panels_whose_data_changed() -> None:
    state = make_state()
    shell = Shell(Intents())
    assert shell.render(state, state.take_dirty()) is None  # first paint: the whole page
    state.apply_change(Change("orders", "o1", "added", {"id": "o1", "symbol": "BTC/USDT", "side": "buy",
                                                          "type": "market", "amount": 1, "status": "open"}, 1))
    # The orders panel, and the chart (it draws open orders' lines); nothing else.
    assert shell.render(state, state.take_dirty()) == [shell.chart.control, shell.orders.control]
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 7, 131.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.chart.control in sent and shell.watchlist.control in sent
    assert shell.orders.control not in sent and shell.signals.control not in sent
    state.resize(390)
    assert shell.render(state, state.take_dirty()) is None  # a new layout goes out whole


def test_a_panel_off_the_page_is_not_sent() -> None:
    """A phone's ticket lives in a sheet that is usually shut: repainting must skip it, not crash."""
    from client.app import _mounted

    state = make_state(390)
    shell = Shell(Intents())
    shell.render(state, state.take_dirty())
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 7, 131.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.ticket.control in sent
    assert not _mounted(shell.ticket.control)  # Flet raises for .page here; this answers False




def test_a_new_signal_adds_one_row_and_keeps_the_others() -> None:
    """Under a rule that fires on every trade the log changes on every repaint: each listed signal keeps its
    row, so a repaint sends the new row (and drops the oldest), not the whole log again."""
    from services.signals.rules import Signal
    from views.signals import SignalsView

    def signal(i: int) -> Signal:
        return Signal("BTC/USDT", "r1", f"Rule {i}", "buy", 0.5, 1_700_000_000_000 + i * 1_000)

    state = make_state()
    log = SignalsView(limit=3, identifier="signal-log")
    state.add_signals([signal(i) for i in range(3)])
    log.render(state)
    before = list(log.list.controls)
    assert [t for r in before for t in texts(r) if t.startswith("Rule")] == ["Rule 2", "Rule 1", "Rule 0"]
    state.add_signals([signal(3)])
    log.render(state)
    after = log.list.controls
    assert [t for r in after for t in texts(r) if t.startswith("Rule")] == ["Rule 3", "Rule 2", "Rule 1"]
    assert after[1] is before[0] and after[2] is before[1]  # the same controls: only the new row is sent


def test_the_ticket_keeps_the_last_order_it_sent() -> None:
    """The "order sent" notice is a snack bar that any later notice replaces: the ticket says it too."""
    state = make_state()
    shell = Shell(Intents())
    shell.render(state, state.take_dirty())
    assert not shell.ticket.last_sent.visible  # nothing sent yet
    state.edit_ticket(last_sent="18:20:05 · Buy 0.004 BTC/USDT market order sent: filled at 131.00")
    shell.render(state, state.take_dirty())
    sent = by_identifier(shell.ticket.control, "ticket-sent")
    assert sent.visible and texts(sent) == ["Sent 18:20:05 · Buy 0.004 BTC/USDT market order sent: filled at 131.00"]
