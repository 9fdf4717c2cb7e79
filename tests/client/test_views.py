"""Views built from state, inspected without a browser: what a trader sees at each width."""

from __future__ import annotations

from typing import Any

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
    # The orders panel, and the chart's plot (it draws open orders' lines, its toolbar did not change): its
    # live canvas (the lines), its cursor, legends and node; not its candles, drawn already.
    chart = shell.chart
    plot = [chart.live, chart.cursor, chart.legend, chart.study_legend, chart.semantics]
    assert shell.render(state, state.take_dirty()) == [*plot, shell.orders.control]
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 7, 131.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.chart.semantics in sent and shell.chart.control not in sent
    rows = {symbol: row.control for symbol, row in shell.watchlist.rows.items()}
    # The watchlist: the one row that ticked, on its own (its panel did not change).
    assert rows["BTC/USDT"] in sent and rows["ETH/USDT"] not in sent and shell.watchlist.control not in sent
    assert shell.orders.control not in sent and shell.signals.control not in sent
    # A trade of a symbol neither selected nor held changes its row only: not the chart, ticket, account
    # or positions (each was diffed and patched on every trade of any symbol).
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 8, 7.0, 0.1))
    eth = shell.watchlist.rows["ETH/USDT"]
    # Its first price: the row's node (its label) and its texts, each patched on its own (the node and its
    # box are isolated: a patch of the node stops at the box).
    assert shell.render(state, state.take_dirty()) == [eth.control, eth.price, eth.change, eth.arrow_icon]  # its icon shown
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 8, 7.01, 0.1))  # up from its open: the arrow turns
    assert shell.render(state, state.take_dirty()) == [eth.control, eth.price, eth.change, eth.arrow_icon]
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 8, 7.02, 0.1))  # up again: the same arrow
    assert shell.render(state, state.take_dirty()) == [eth.control, eth.price, eth.change]
    assert eth.price.value == "7.0200" and eth.control.label.startswith("ETH/USDT 7.0200,")
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 8, 7.0, 0.1))
    shell.render(state, state.take_dirty())
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 8, 7.0, 0.3))  # the same price: the row shows nothing new
    assert shell.render(state, state.take_dirty()) == []
    # Once ETH is held, its trades move the equity and the positions' P&L (and only those panels).
    state.balance = {"total": {"USDT": 100.0, "ETH": 2.0}}
    state.apply_tick(Tick("ETH/USDT", 60_000 * 29 + 9, 7.5, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.account.control in sent and shell.positions.control in sent
    assert shell.account.equity.value == "115.00"
    assert shell.chart.semantics not in sent and shell.ticket.control not in sent
    # With an amount typed, a trade of the selected symbol moves the ticket's estimate: only that is sent.
    state.edit_ticket(amount="1")
    assert shell.ticket.control in (shell.render(state, state.take_dirty()) or [])
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 10, 140.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.ticket.estimate in sent and shell.ticket.control not in sent
    assert "140.00" in shell.ticket.estimate.value
    state.set_timeframe("5m")  # the toolbar changed: the whole chart panel goes out
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.chart.control in sent and shell.chart.title.value == "BTC/USDT · 5m"
    state.resize(390)
    assert shell.render(state, state.take_dirty()) is None  # a new layout goes out whole


def test_a_panel_off_the_page_is_not_sent() -> None:
    """A phone's ticket lives in a sheet that is usually shut: repainting must skip it, not crash."""
    from client.patches import _mounted

    state = make_state(390)
    shell = Shell(Intents())
    shell.render(state, state.take_dirty())
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 7, 131.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and shell.ticket.estimate in sent  # a trade: only its estimate
    assert not _mounted(shell.ticket.estimate)  # Flet raises for .page here; this answers False




def test_watchlist_rows_below_the_screen_wait_until_a_scroll_shows_them() -> None:
    """Issue 13: what is off screen does not repaint. 40 rows of 46 px on a 900 px screen: a trade on the
    last row is not painted (nor sent) until the column is scrolled to it; the rows in view are."""
    symbols = [f"S{i:02d}/USDT" for i in range(40)]
    state = AppState(watchlist=symbols, selected=symbols[0], height=900)
    shown: list[list[str]] = []
    shell = Shell(Intents(show_rows=shown.append))
    shell.render(state, state.take_dirty())
    view = shell.watchlist
    root: Any = shell.root
    column = root.content.controls[2].content.controls[1].content.controls[0]  # rail | body → left column
    assert view.rows[symbols[0]].control is column.controls[0].content.content.controls[1].controls[0]
    view._sized(ft.LayoutSizeChangeEvent(name="size_change", control=view.list, width=246, height=46.0 * 40))  # noqa: SLF001
    assert shown[-1] == symbols[:22]  # 900 px / 46 px, and two rows of margin
    first, last = view.rows[symbols[0]], view.rows[symbols[-1]]
    state.apply_tick(Tick(symbols[0], 1_000, 101.0, 0.1))
    state.apply_tick(Tick(symbols[-1], 1_000, 202.0, 0.1))
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and first.control in sent and last.control not in sent
    assert first.price.value == "101.00" and last.price.value == "—"
    column.on_scroll(ft.OnScrollEvent(name="scroll", control=column, event_type=ft.ScrollType.UPDATE, pixels=1200,
                                      min_scroll_extent=0, max_scroll_extent=1500, viewport_dimension=800))
    assert symbols[-1] in shown[-1] and symbols[0] not in shown[-1]
    state.changed("rows")  # what the scroll's intent does in the app (MarketController.show_rows)
    sent = shell.render(state, state.take_dirty())
    assert sent is not None and last.control in sent and last.price.value == "202.00"
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
