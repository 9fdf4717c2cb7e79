"""The order book and the trades tape refresh in place: each refresh's levels and trades reach the client as
new values of the rows it holds (no control added or removed), a book with fewer levels hides the rows it
no longer fills, and the client ends up showing what a page loaded now would show."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.patches import PatchSender
from client.state import AppState
from tests.backend.listfeed import sample_markets
from tests.client.flet_client import connected_session, wire
from tests.client.test_patches import shown
from views.market_depth import LEVELS, TRADES_SHOWN, OrderBookView, TradesView

SYMBOL = "BTC/USDT"


class DepthPage:
    def __init__(self) -> None:
        self.conn, self.session = connected_session()
        self.book, self.trades = OrderBookView(), TradesView()
        self.root = ft.Container(ft.Row([self.book.control, self.trades.control]))
        self.sender = PatchSender(self.session.page, self.root)

    def client_ids(self) -> set[int]:
        assert self.conn.tree is not None
        return set(self.conn.tree.controls)

    def rows(self, controls: list[ft.Control]) -> list[Any]:
        """What the client shows of each row: None where it is hidden, else its texts' values."""
        assert self.conn.tree is not None
        shown_rows = []
        for control in controls:
            node = self.conn.tree.controls[control._i]  # noqa: SLF001
            if node.get("visible") is False:
                shown_rows.append(None)
                continue
            shown_rows.append(texts(node))
        return shown_rows

    def matches_a_fresh_page(self) -> bool:
        assert self.conn.tree is not None
        return shown(self.conn.tree.controls[self.root._i]) == shown(wire(self.root))  # noqa: SLF001


def texts(node: Any) -> list[str]:
    """The values of every Text under a client node, in order."""
    if isinstance(node, list):
        return [t for item in node for t in texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["value"]] if node.get("_c") == "Text" and node.get("value") else []
    return own + [t for key, value in node.items() if key not in ("_c", "_i") for t in texts(value)]


def depth(state: AppState, asks: list[list[float]], bids: list[list[float]], tape: list[tuple[float, float, str]]) -> None:
    state.set_market_depth(SYMBOL, book={"asks": asks, "bids": bids},
                           trades=[{"price": p, "amount": a, "side": side, "timestamp": 1_700_000_000_000 + i}
                                   for i, (p, a, side) in enumerate(tape)],
                           ticker={"last": bids[0][0] if bids else 50_000.0, "high": 51_000.0, "low": 49_000.0,
                                   "baseVolume": 1234.5})


def refresh(page: DepthPage, state: AppState) -> int:
    """Render both panels and send them as the shell does; returns the messages it took."""
    before = page.conn.patches
    page.book.render(state)
    page.trades.render(state)
    page.sender.send([page.book.control, page.trades.control])
    return page.conn.patches - before


def test_a_refresh_gives_the_rows_new_values_and_adds_no_control() -> None:
    page = DepthPage()
    state = AppState(watchlist=[SYMBOL], selected=SYMBOL)
    state.set_markets(sample_markets())
    depth(state, asks=[[50_001.0 + i, 1.0 + i] for i in range(LEVELS)], bids=[[50_000.0 - i, 2.0] for i in range(LEVELS)],
          tape=[(50_000.5, 0.25, "buy")] * TRADES_SHOWN)
    page.book.render(state)
    page.trades.render(state)
    page.session.page.add(page.root)
    ids = page.client_ids()

    # Fewer levels and trades, other prices: the same controls, the rows left over hidden.
    depth(state, asks=[[50_010.0, 3.0], [50_011.0, 0.5]], bids=[[50_009.0, 1.5]],
          tape=[(50_009.5, 0.125, "sell"), (50_010.0, 0.5, "buy")])
    assert refresh(page, state) == 1
    assert page.client_ids() == ids  # nothing added or removed: values changed in place
    asks = page.rows([level.control for level in page.book.ask_levels])
    assert asks[:-2] == [None] * (LEVELS - 2)  # the best ask sits last, next to the spread
    assert asks[-2:] == [["50,011.00", "0.5000"], ["50,010.00", "3.0000"]]
    bids = page.rows([level.control for level in page.book.bid_levels])
    assert bids == [["50,009.00", "1.5000"]] + [None] * (LEVELS - 1)
    tape = page.rows([row.control for row in page.trades.rows])
    assert [row[0] for row in tape[:2]] == ["50,009.50", "50,010.00"] and tape[2:] == [None] * (TRADES_SHOWN - 2)
    largest = page.book.ask_levels[-1]  # 3.0 of 3.0: a full bar, no room left of it
    assert (largest.bar.expand, largest.rest.visible) == (100, False)
    assert page.matches_a_fresh_page()

    # Back to a full book: the hidden rows come back with the new levels.
    depth(state, asks=[[50_020.0 + i, 1.0] for i in range(LEVELS)], bids=[[50_019.0 - i, 4.0] for i in range(LEVELS)],
          tape=[(50_019.5, 1.0, "buy")] * TRADES_SHOWN)
    assert refresh(page, state) == 1
    assert page.client_ids() == ids
    assert page.rows([level.control for level in page.book.bid_levels])[0] == ["50,019.00", "4.0000"]
    assert None not in page.rows([row.control for row in page.trades.rows])
    assert page.matches_a_fresh_page()


def test_an_empty_book_says_so_and_hides_every_level() -> None:
    page = DepthPage()
    state = AppState(watchlist=[SYMBOL], selected=SYMBOL)
    state.set_markets(sample_markets())
    depth(state, asks=[[50_001.0, 1.0]], bids=[[50_000.0, 1.0]], tape=[])
    page.book.render(state)
    page.trades.render(state)
    page.session.page.add(page.root)
    depth(state, asks=[], bids=[], tape=[])
    refresh(page, state)
    assert page.rows([level.control for level in page.book.ask_levels + page.book.bid_levels]) == [None] * (2 * LEVELS)
    assert page.conn.tree is not None
    assert page.conn.tree.controls[page.book.empty._i].get("visible") is not False  # noqa: SLF001
    assert page.book.control.label == f"{SYMBOL} order book, empty"
    assert page.matches_a_fresh_page()
