"""A repaint's changes reach the client in one message (`client.patches.PatchSender`), and the client ends up
showing what one Flet message per control showed it: the same texts, colours, icons and rows, on real Flet
sessions whose connection decodes every message and applies it as Flet's client does (`flet_client`)."""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Any

import flet as ft
from flet.controls.object_patch import ObjectPatch

from client.patches import PatchSender, _leaf_ops, as_ops, to_message
from client.state import AppState
from services.market import Tick
from tests.backend.listfeed import sample_markets
from tests.client.flet_client import connected_session, wire
from tests.client.test_alerts import until
from tests.client.test_repaint import started
from views.chart import ChartView
from views.common import Intents
from views.order_ticket import OrderTicketView
from views.watchlist import WatchlistView

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


class Desk:
    """A watchlist, a chart and an order ticket on a live page, as the dashboard holds them."""

    def __init__(self, selected: list[str]) -> None:
        self.conn, self.session = connected_session()
        self.watchlist = WatchlistView(Intents(select_symbol=selected.append))
        self.ticket = OrderTicketView(Intents())
        self.chart = ChartView()
        self.root = ft.Container(ft.Row([self.watchlist.control, self.chart.control, ft.Column([self.ticket.control])]))
        self.sender = PatchSender(self.session.page, self.root)

    def render(self, state: AppState, *, form: bool = False, chart: bool = True) -> list[ft.Control]:
        """What the shell sends: the changed rows, the chart (for a trade of the selected symbol: `chart`),
        and the ticket's estimate (the whole form when `form`)."""
        chart = (self.chart.render(state) or [self.chart.control]) if chart or form else []
        if form:
            self.ticket.render(state)
            return [*self.watchlist.render(state), *chart, self.ticket.control]
        return [*self.watchlist.render(state), *chart, *self.ticket.render_quote(state)]


@functools.cache
def defaults(kind: str | None) -> dict[str, Any]:
    """The declared defaults of the Flet control called `kind`: what a new page leaves out."""
    cls = getattr(ft, kind, None) if kind else None
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def shown(value: Any, ids: bool = True) -> Any:
    """A client's tree as it shows: a property set back to None or to its default is one never set (the
    client reads each as its default); without Flet's control ids unless `ids` (two sessions number their
    controls apart)."""
    if isinstance(value, dict):
        unset = defaults(value.get("_c"))
        return {k: shown(v, ids) for k, v in value.items()
                if v is not None and (ids or k != "_i") and not (k in unset and v == unset[k])}
    if isinstance(value, list):
        return [shown(v, ids) for v in value]
    return value


def tick(state: AppState, symbol: str, price: float) -> None:
    state.apply_tick(Tick(symbol, 1_700_000_000_000 + state.version, price, 0.1))


async def test_the_client_shows_what_one_message_per_control_showed_it() -> None:
    taps: list[str] = []
    apart, together = Desk([]), Desk(taps)  # apart: Flet's update(control) per control; together: PatchSender
    state = AppState(watchlist=SYMBOLS[:2], selected="BTC/USDT")
    state.set_markets(sample_markets())
    for symbol, price in (("BTC/USDT", 50_000.0), ("ETH/USDT", 3_000.0), ("BTC/USDT", 50_005.0)):
        tick(state, symbol, price)
    for desk in (apart, together):
        desk.render(state, form=True)
        desk.session.page.add(desk.root)
        desk.session.page.update(*desk.render(state, form=True))

    def step(change: Any, form: bool = False, chart: bool = True) -> list[int]:
        change()
        apart.session.page.update(*apart.render(state, form=form, chart=chart))
        before = together.conn.patches
        together.sender.send(together.render(state, form=form, chart=chart))
        client = together.conn.tree.controls[together.root._i]  # noqa: SLF001
        assert shown(client, ids=False) == shown(apart.conn.tree.controls[apart.root._i], ids=False)  # noqa: SLF001
        assert shown(client) == shown(wire(together.root))  # as a page loaded now shows it: nothing left unsent
        return [together.conn.patches - before]

    step(lambda: tick(state, "BTC/USDT", 50_010.0))  # the selected symbol: its row, the chart, the ticket
    assert together.conn.text(together.watchlist.rows["BTC/USDT"].price) == "50,010.00"
    assert step(lambda: tick(state, "ETH/USDT", 3_001.0), chart=False) == [1]  # another's: its row, one message
    step(lambda: tick(state, "ETH/USDT", 2_990.0), chart=False)  # below the 24 h open: its arrow turns (its icon turned in place)
    assert together.watchlist.rows["ETH/USDT"].arrow.content.icon == ft.Icons.ARROW_DROP_DOWN
    step(lambda: state.select("ETH/USDT"), form=True)  # a row's selection, and the ticket for another symbol
    step(lambda: state.set_feed_status("BTC/USDT", "reconnecting"), chart=False)  # a row's feed drops...
    assert together.conn.text(together.watchlist.rows["BTC/USDT"].freshness) == "reconnecting"
    step(lambda: tick(state, "BTC/USDT", 50_020.0), chart=False)
    step(lambda: state.set_feed_status("BTC/USDT", "live"), chart=False)  # ... and is back
    assert "reconnecting" not in together.conn.tree.controls[together.watchlist.rows["BTC/USDT"].control._i]["label"]  # noqa: SLF001
    step(lambda: state.set_watchlist(SYMBOLS))  # a row added: the panel's list, then the new row
    step(lambda: tick(state, "SOL/USDT", 150.0))
    step(lambda: state.set_watchlist(["SOL/USDT", "BTC/USDT"]))  # rows removed and moved
    assert step(lambda: tick(state, "SOL/USDT", 150.0), chart=False) == [0]  # the same price again: nothing to send
    assert together.conn.text(together.watchlist.rows["SOL/USDT"].price) == "150.00"

    # A tap on a row added along the way lands (the session knows the control the client shows).
    row = together.watchlist.rows["SOL/USDT"]
    assert row.box._i in together.conn.tree.controls  # noqa: SLF001
    await together.session.dispatch_event(row.box._i, "click", None)  # noqa: SLF001
    assert taps == ["SOL/USDT"]


def test_a_trade_of_the_selected_symbol_inside_its_candle_is_one_message() -> None:
    """Its row, the chart's live layer (the forming candle's paths and paints, moved in place), the legends,
    the chart's semantics node and the ticket's estimate: one message, which leaves the client showing what
    a page loaded now would."""
    desk = Desk([])
    state = AppState(watchlist=SYMBOLS[:2], selected="BTC/USDT")
    state.set_markets(sample_markets())
    minute = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    for i, price in enumerate((50_000.0, 50_100.0, 49_900.0, 50_050.0)):  # three closed candles, one forming
        state.apply_tick(Tick("BTC/USDT", minute + i * 60_000, price, 0.1))
        state.apply_tick(Tick("BTC/USDT", minute + i * 60_000 + 30_000, price - 40.0, 0.1))
    tick(state, "ETH/USDT", 3_000.0)
    desk.render(state, form=True)
    desk.session.page.add(desk.root)
    desk.session.page.update(*desk.render(state, form=True))
    before = desk.conn.patches
    state.apply_tick(Tick("BTC/USDT", minute + 3 * 60_000 + 40_000, 50_020.0, 0.1))
    desk.sender.send(desk.render(state))
    assert desk.conn.patches - before == 1
    assert desk.conn.text(desk.watchlist.rows["BTC/USDT"].price) == "50,020.00"
    assert shown(desk.conn.tree.controls[desk.root._i]) == shown(wire(desk.root))  # noqa: SLF001


def test_the_forming_candle_moved_in_place_shows_on_the_client_as_on_a_fresh_page() -> None:
    """Trades that move the forming candle up and down through its open (its colour flips), the study lines'
    tails with it, and a bar closing: each repaint is one message, and the client then shows what a page
    loaded now would (the candle's path elements and paints took their new values in place)."""
    desk = Desk([])
    state = AppState(watchlist=SYMBOLS[:1], selected="BTC/USDT", chart_studies=("ema20", "bb20", "rsi14"))
    state.set_markets(sample_markets())
    minute = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    for i in range(40):  # closed candles for the studies to warm up on
        state.apply_tick(Tick("BTC/USDT", minute + i * 60_000, 50_000.0 + 40 * ((i * 7) % 9 - 4), 0.1))
    desk.render(state, form=True)
    desk.session.page.add(desk.root)
    desk.session.page.update(*desk.render(state, form=True))
    live = desk.chart.live
    forming = minute + 40 * 60_000
    state.apply_tick(Tick("BTC/USDT", forming, 50_000.0, 0.1))  # the bar opens: its candle is new
    desk.sender.send(desk.render(state))

    def elements() -> list[list[int]]:
        return [[id(e) for e in getattr(shape, "elements", ())] for shape in live.shapes]

    for k, price in enumerate((50_010.0, 49_950.0, 50_080.0, 49_900.0, 49_990.0, 50_200.0)):
        state.apply_tick(Tick("BTC/USDT", forming + 1_000 * (k + 1), price, 0.1))
        held = elements()
        before = desk.conn.patches
        desk.sender.send(desk.render(state))
        assert desk.conn.patches - before == 1
        assert shown(desk.conn.tree.controls[desk.root._i]) == shown(wire(desk.root))  # noqa: SLF001
        assert elements() == held  # the same elements, moved
    state.apply_tick(Tick("BTC/USDT", forming + 60_000, 50_300.0, 0.1))  # the next bar opens
    desk.sender.send(desk.render(state))
    assert shown(desk.conn.tree.controls[desk.root._i]) == shown(wire(desk.root))  # noqa: SLF001


def test_a_control_outside_the_root_is_sent_on_its_own() -> None:
    desk = Desk([])
    page = desk.session.page
    page.add(desk.root)
    note = ft.Text("before")
    page.overlay.append(note)  # not under the root (as a phone's ticket sheet is not)
    page.update()
    note.value = "after"
    desk.sender.send([note])
    assert desk.conn.text(note) == "after"
    desk.sender.send([note])  # nothing changed since
    assert desk.conn.notified[-1] == {note._i}  # noqa: SLF001  (the last message is still the one above)


async def test_a_repaint_of_the_app_sends_one_message_and_the_new_price_reaches_the_client() -> None:
    conn, feed, app, starts = await started(0.05)
    row = app.shell.watchlist.rows["ETH/USDT"]
    per_repaint: list[tuple[int, set[int]]] = []  # (messages, controls reached) of each repaint
    seen = [conn.patches, len(conn.notified)]

    def painted(start: float, _end: float) -> None:
        starts.append(start)
        reached = set().union(*conn.notified[seen[1]:])
        per_repaint.append((conn.patches - seen[0], reached))
        seen[:] = [conn.patches, len(conn.notified)]

    app.repainter.on_painted = painted
    await until(lambda: bool(starts) and not app.state.dirty)
    await feed.trade("ETH/USDT", 3_001.0)
    await until(lambda: conn.text(row.price) == "3,001.00")
    painting = [messages for messages, reached in per_repaint if row.price._i in reached]  # noqa: SLF001
    assert painting == [1]  # the repaint that brought the price sent one message
    assert "3,001.00" in conn.tree.controls[row.control._i]["label"]  # noqa: SLF001  (what a screen reader says)
    await app.close()


def test_a_row_node_patched_without_the_walk_gets_the_operations_flets_diff_gives() -> None:
    """A watchlist row's node and its box (isolated) patched by `_leaf_ops` get what `ObjectPatch.from_diff`
    gives a twin row for the same changes: its label, its selection, its box's background; a replaced child
    (the box's content) leaves it to Flet's diff."""
    desks = Desk([]), Desk([])
    state = AppState(watchlist=SYMBOLS[:2], selected="BTC/USDT")
    state.set_markets(sample_markets())
    tick(state, "ETH/USDT", 3_000.0)
    for desk in desks:
        desk.render(state, form=True)
        desk.session.page.add(desk.root)
        desk.session.page.update(*desk.render(state, form=True))

    def operations(change: Any) -> tuple[Any, Any]:
        change()
        flet_row, quick_row = (desk.watchlist.rows["ETH/USDT"] for desk in desks)
        for desk in desks:
            desk.watchlist.render(state)
        expected = ObjectPatch.from_diff(flet_row.control, flet_row.control, control_cls=ft.BaseControl, path=["x"])
        quick = _leaf_ops(quick_row.control, ["x"])
        return expected[0].patch, None if quick is None else as_ops(quick)

    sent: set[str] = set()
    for change in (lambda: tick(state, "ETH/USDT", 3_001.0), lambda: state.select("ETH/USDT"),
                   lambda: tick(state, "ETH/USDT", 3_002.0), lambda: state.select("BTC/USDT")):
        expected, quick = operations(change)
        assert expected and quick == expected
        sent |= {op["path"][-1] for op in expected}
    assert sent >= {"label", "selected", "bgcolor"}  # the box's background too

    expected, quick = operations(lambda: setattr(desks[1].watchlist.rows["ETH/USDT"].box, "content", ft.Text("x")))
    assert quick is None  # a child replaced: Flet's diff sends it


def test_the_message_is_the_one_flet_encodes_path_table_and_all() -> None:
    """`to_message` walks each control's path once; the message (its path table numbered alike, every
    operation) is what `ObjectPatch.to_message` makes of the same operations, for any mix of them."""
    rng = random.Random(13)
    parts: list[str | int] = ["controls", "content", "label", "value", 0, 1, 2, 7]

    def path() -> list[str | int]:
        return [rng.choice(parts) for _ in range(rng.randint(0, 6))]

    for _ in range(300):
        ops: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.choice(["replace", "replace", "add", "remove", "move"])
            op: dict[str, Any] = {"op": kind, "path": path()}
            if kind in ("replace", "add"):
                op["value"] = rng.choice([1.5, "x", None, True])
            if kind == "move":
                op["from"] = path()
            ops.append(op)
        assert to_message(ops) == ObjectPatch(ops).to_message()
