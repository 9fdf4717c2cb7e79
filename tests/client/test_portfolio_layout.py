"""Panels sized by what they hold: the Portfolio screen's positions panel grows with its rows up to what
the screen leaves it (its list scrolls beyond), and the Account card shows no empty curve box."""

from __future__ import annotations

from client.shell import Shell
from client.state import AppState
from services.live import Change
from tests.client.test_views import make_state
from tests.controls import walk
from views.common import Intents
from views.positions import CHROME_H, ROW_H


def hold(state: AppState, count: int) -> None:
    for i in range(count):
        state.apply_change(Change("positions", f"C{i}/USDT", "added",
                                  {"symbol": f"C{i}/USDT", "amount": 1.0, "entryPrice": 10.0, "costBasis": 10.0}, i))


def test_the_positions_panel_grows_with_its_rows_up_to_the_screen() -> None:
    state = make_state()
    state.resize(1440, 900)
    state.navigate("portfolio")
    shell = Shell(Intents())
    shell.render(state)
    state.take_dirty()  # what the first paint showed
    box = shell.positions.portfolio_box
    heights = [box.height]
    for count in (1, 3, 6, 40):
        hold(state, count)
        sent = shell.render(state, state.take_dirty())
        assert sent is not None and box in sent  # the new height goes to the screen with the rows
        heights.append(box.height)
    assert heights[0] == heights[1] == CHROME_H + ROW_H  # empty: room for the sentence saying so
    assert heights[2] == CHROME_H + 3 * ROW_H and heights[3] == CHROME_H + 6 * ROW_H
    assert heights[4] == 900 - 200 < CHROME_H + 40 * ROW_H  # capped by the screen: the list scrolls
    assert shell.positions.list.scroll is not None and len(shell.positions.list.controls) == 40
    state.navigate("dashboard")
    assert shell.render(state, state.take_dirty()) is None  # a new layout: the whole page
    assert shell.positions.control in list(walk(shell.root))
    assert box not in list(walk(shell.root))  # the dashboard gives the panel its place


def test_the_account_card_has_no_empty_curve_box() -> None:
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    assert not shell.account.curve_box.visible
    state.equity_curve.extend([(60_000, 100.0), (120_000, 101.0)])
    shell.account.render(state)
    assert shell.account.curve_box.visible and shell.account.curve.shapes
