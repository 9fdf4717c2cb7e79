"""The canvas chart, built from state without a browser: what it draws, says and does under gestures."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import flet as ft
import flet.canvas as cv
import numpy as np
import pytest
import talib

from client.shell import Shell
from client.state import AppState
from client.theme import DOWN, UP
from services.market import Candle, Tick
from services.signals import Signal
from views.chart_scene import Window, build, legend
from views.chart_studies import compute
from views.common import Intents, fmt

MARKET = {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
          "precision": {"price": 0.01, "amount": 0.0001}, "limits": {"amount": {"min": 0.0001}}}


def bars_from(start: float, n: int = 200, step_ms: int = 60_000) -> list[Candle]:
    out, price = [], start
    for i in range(n):
        move = ((i * 7919) % 23 - 11) * start / 2000  # deterministic zig-zag
        out.append(Candle(step_ms * i, price, price + abs(move) + 1, price - abs(move) - 1, price + move, 1.0 + i % 5))
        price += move
    return out


def make_state(width: float = 1440) -> AppState:
    state = AppState(watchlist=["BTC/USDT", "ETH/USDT"], selected="BTC/USDT", width=width)
    state.set_markets({"BTC/USDT": MARKET, "ETH/USDT": {**MARKET, "symbol": "ETH/USDT", "base": "ETH"}})
    state.set_history("BTC/USDT", bars_from(97_000.0), open_24h=97_000.0)
    state.set_history("ETH/USDT", bars_from(3_000.0), open_24h=3_000.0)
    return state


def bodies(shapes: list[cv.Shape]) -> int:
    """Candle bodies drawn: rectangles in the solid up/down fills (volume bars are translucent)."""
    return sum(sum(isinstance(e, cv.Path.Rect) for e in s.elements) for s in shapes
               if isinstance(s, cv.Path) and s.paint.color in (UP, DOWN) and s.paint.style == ft.PaintingStyle.FILL)


def test_picking_another_symbol_redraws_every_candle_and_says_so() -> None:
    """The bug trader saw: after a symbol switch the old candles stayed (the bars share their times)."""
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    chart = shell.chart
    btc_base = chart.base.shapes
    assert chart.semantics.label.startswith("BTC/USDT 1m candlestick chart, 90 candles")
    state.select("ETH/USDT")
    shell.render(state, state.take_dirty())
    eth = state.candles["ETH/USDT"][-1]
    assert chart.base.shapes is not btc_base
    assert chart.semantics.label == (
        f"ETH/USDT 1m candlestick chart, 90 candles, last open {eth.open:,.2f} high {eth.high:,.2f} "
        f"low {eth.low:,.2f} close {eth.close:,.2f}, opened 1970-01-01 03:19 UTC")  # bar 199, a minute each
    assert bodies(chart.base.shapes) == 89 and bodies(chart.live.shapes) == 1  # closed bars + the forming one
    # Every body sits inside the plot: none is left from BTC's price range, 30x higher.
    scene = chart._scene
    assert scene is not None and scene.price.lo < eth.low and scene.price.hi < 10_000


def test_a_tick_repaints_only_the_forming_candle() -> None:
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    chart = shell.chart
    base = chart.base.shapes
    last = state.candles["BTC/USDT"][-1]
    state.apply_tick(Tick("BTC/USDT", last.timestamp_ms + 5, (last.high + last.low) / 2, 0.1))
    shell.render(state, state.take_dirty())
    assert chart.base.shapes is base  # no closed bar moved: the big layer is not resent
    state.apply_tick(Tick("BTC/USDT", last.timestamp_ms + 60_001, last.close, 0.1))  # the next bar opens
    shell.render(state, state.take_dirty())
    assert chart.base.shapes is not base and "90 candles" in chart.semantics.label


def test_a_forming_candle_making_new_highs_keeps_the_scale_until_it_leaves_the_padding() -> None:
    """A trend: every trade a new high of the bars shown. Within the scale's padding the closed candles stay
    where they are (not rebuilt and resent at every repaint); past it, the scale is fitted again."""
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    chart = shell.chart
    base, scene = chart.base.shapes, chart._scene
    assert scene is not None
    last = state.candles["BTC/USDT"][-1]
    top = max(b.high for b in scene.bars)
    state.apply_tick(Tick("BTC/USDT", last.timestamp_ms + 5, top + (scene.price.hi - top) / 2, 0.1))
    shell.render(state, state.take_dirty())
    assert chart.base.shapes is base and chart._scene is not None and chart._scene.price == scene.price
    assert max(b.high for b in chart._scene.bars) < chart._scene.price.hi  # the new high is still inside
    state.apply_tick(Tick("BTC/USDT", last.timestamp_ms + 6, scene.price.hi + 1, 0.1))  # out of the padding
    shell.render(state, state.take_dirty())
    assert chart.base.shapes is not base and chart._scene.price.hi > scene.price.hi + 1


def test_drag_pans_into_history_and_the_wheel_zooms() -> None:
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    chart = shell.chart
    slot = chart._scene.frame.slot
    newest = state.candles["BTC/USDT"][-1]
    chart._on_scale_start(None)
    chart._on_scale_update(SimpleNamespace(pointer_count=1, horizontal_scale=1.0,
                                           focal_point_delta=SimpleNamespace(x=slot * 30, y=0)))
    assert chart._scene.bars[-1] == state.candles["BTC/USDT"][-31]  # 30 bars back
    assert f"close {state.candles['BTC/USDT'][-31].close:,.2f}" in chart.semantics.label
    chart._on_scroll(SimpleNamespace(scroll_delta=SimpleNamespace(x=0, y=120)))  # wheel down: zoom out
    assert len(chart._scene.bars) > 90
    for _ in range(40):  # zoom in hard: never fewer than 10 bars
        chart._on_scroll(SimpleNamespace(scroll_delta=SimpleNamespace(x=0, y=-120)))
    assert len(chart._scene.bars) == 10
    chart._on_scale_start(None)  # pinch out: fewer bars... and pinch in: more
    chart._on_scale_update(SimpleNamespace(pointer_count=2, horizontal_scale=0.5, focal_point_delta=None))
    assert len(chart._scene.bars) == 20
    chart._on_scale_start(None)  # drag far past the newest bar: back at the live edge, not beyond
    chart._on_scale_update(SimpleNamespace(pointer_count=1, horizontal_scale=1.0,
                                           focal_point_delta=SimpleNamespace(x=-slot * 10_000, y=0)))
    assert chart._scene.bars[-1] == newest


def test_crosshair_legend_names_the_hovered_candle_at_market_precision() -> None:
    state = make_state()
    shell = Shell(Intents())
    shell.render(state)
    chart = shell.chart
    scene = chart._scene
    chart._on_hover(SimpleNamespace(local_position=SimpleNamespace(x=scene.frame.x(3), y=40.0)))
    bar, before = scene.bars[3], scene.bars[2]
    nb = "\u00a0"
    assert chart.legend.value.startswith(f"O{nb}{bar.open:,.2f}  H{nb}{bar.high:,.2f}  L{nb}{bar.low:,.2f}  "
                                         f"C{nb}{bar.close:,.2f}  V{nb}{bar.volume:,.4f}")
    assert chart.legend.value.endswith(f"{(bar.close / before.close - 1) * 100:+.2f}%")
    texts = [s.value for s in chart.cursor.shapes if isinstance(s, cv.Text)]
    assert len(texts) == 2 and texts[0] == f"{scene.price.value(40.0):,.2f}"  # price on the axis, then time
    chart._on_exit(None)
    assert chart.cursor.shapes == [] and chart.legend.value.startswith(f"O{nb}{scene.bars[-1].open:,.2f}")


def test_open_orders_the_entry_fills_and_signals_are_drawn() -> None:
    from services.live import Change

    state = make_state()
    last = state.candles["BTC/USDT"][-1]
    orders = {
        "o1": {"id": "o1", "symbol": "BTC/USDT", "side": "buy", "type": "limit", "price": last.low - 50,
               "amount": 0.5, "remaining": 0.5, "filled": 0, "status": "open", "timestamp": last.timestamp_ms},
        "o2": {"id": "o2", "symbol": "BTC/USDT", "side": "sell", "type": "market", "price": None, "average": last.close,
               "amount": 0.1, "filled": 0.1, "status": "closed", "timestamp": last.timestamp_ms - 120_000},
    }
    for doc_id, doc in orders.items():
        state.apply_change(Change("orders", doc_id, "added", doc, 1))
    state.apply_change(Change("positions", "BTC-USDT", "added",
                              {"symbol": "BTC/USDT", "amount": 0.4, "entryPrice": last.close - 20}, 2))
    state.add_signals([Signal("BTC/USDT", "r1", "Breakout", "buy", 1.0, last.timestamp_ms - 300_000),
                       Signal("ETH/USDT", "r1", "Breakout", "buy", 1.0, last.timestamp_ms)])
    shell = Shell(Intents())
    shell.render(state)
    labels = [s.value for s in shell.chart.base.shapes if isinstance(s, cv.Text)]
    assert f"Buy limit 0.5 {last.low - 50:,.2f}" in labels and f"Entry {last.close - 20:,.2f}" in labels
    paths = [s for s in shell.chart.base.shapes if isinstance(s, cv.Path)]
    ovals = [e for p in paths for e in p.elements if isinstance(e, cv.Path.Oval)]
    closes = [e for p in paths for e in p.elements if isinstance(e, cv.Path.Close)]
    assert len(ovals) == 1 and len(closes) == 1  # one BTC signal (not ETH's), one own fill


def test_studies_and_panes_follow_the_traders_pick() -> None:
    state = make_state()
    shell = Shell(Intents(toggle_study=state.toggle_study))
    shell.render(state)
    chart = shell.chart
    assert [p.name for p in chart._scene.frame.panes] == ["price"] and "EMA 20" in chart.study_legend.value
    for key in ("rsi14", "macd", "bb20"):
        next(i for i in chart.studies.items if i.data == key).on_click(SimpleNamespace(control=SimpleNamespace(data=key)))
    shell.render(state, state.take_dirty())
    assert [p.name for p in chart._scene.frame.panes] == ["price", "rsi", "macd"]
    assert {"RSI 14", "MACD", "BB upper"} <= set(chart._scene.studies)
    assert [i.checked for i in chart.studies.items] == [True, False, True, False, True, True]


def test_full_screen_chart_on_a_phone() -> None:
    state = make_state(390)
    shell = Shell(Intents())
    shell.render(state)
    assert shell.chart.full.visible and shell.chart.full_node.label == "Full-screen chart"  # named for a reader
    state.toggle_chart_full()
    shell.render(state, state.take_dirty())
    assert shell.root.content.controls[0].content.controls[1].content is shell.chart.control
    assert shell.chart.full_node.label == "Leave full screen"
    # Until the canvas reports its full-screen size, nobody is told the candles drawn for the old one.
    assert shell.chart.semantics.label == "BTC/USDT 1m chart, loading"
    shell.chart._on_resize(SimpleNamespace(width=380.0, height=640.0))
    assert "candlestick chart, 40 candles" in shell.chart.semantics.label
    assert shell.chart._scene.frame.height == 640.0


def test_window_clamps_to_the_candles_held() -> None:
    assert Window(90, 0).pan(500, 200) == Window(90, 190)
    assert Window(90, 5).zoom(100, 200) == Window(400, 5) and Window(90).zoom(0.01, 200) == Window(10)
    scene = build(bars_from(100.0, 50), Window(90), 600, 300, studies=(), places=2)
    assert len(scene.bars) == 50  # fewer candles than the window: all of them


def test_legend_never_splits_a_figure_from_its_label() -> None:
    text = legend([Candle(0, 97_458.0, 97_530.4, 97_400.0, 97_500.0, 12.5)], None, 2, 4)
    assert text.split("  ")[:2] == ["O\u00a097,458.00", "H\u00a097,530.40"]


@pytest.mark.parametrize("n", [5, 30, 200])
def test_studies_equal_ta_lib(n: int) -> None:
    bars = bars_from(100.0, n)
    closes = np.array([b.close for b in bars])

    def same(ours: list[float | None], theirs: np.ndarray) -> None:
        mine = np.array([np.nan if v is None else v for v in ours])
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9, equal_nan=True)

    same(compute("sma50", bars)["SMA 50"], talib.SMA(closes, 50))
    same(compute("ema20", bars)["EMA 20"], talib.EMA(closes, 20))
    same(compute("rsi14", bars)["RSI 14"], talib.RSI(closes, 14))
    upper, middle, lower = talib.BBANDS(closes, 20, 2.0, 2.0)
    bands = compute("bb20", bars)
    for name, theirs in (("BB mid", middle), ("BB upper", upper), ("BB lower", lower)):
        same(bands[name], theirs)
    # The engine seeds the fast EMA as TA-Lib does, so MACD is equal wherever TA-Lib gives one (it holds
    # the line back until the signal is ready; the engine draws the line as soon as it exists).
    line, sig, hist = talib.MACD(closes, 12, 26, 9)
    macd = compute("macd", bars)
    ready = ~np.isnan(sig)
    for name, theirs in (("MACD", line), ("Signal", sig), ("Histogram", hist)):
        mine = np.array([np.nan if v is None else v for v in macd[name]])
        np.testing.assert_allclose(mine[ready], theirs[ready], rtol=1e-9, atol=1e-9)
    assert (n >= 34) == bool(ready.any())
    # VWAP is the engine's rolling one: typical price weighted by volume over the last 20 bars.
    typical = np.array([(b.high + b.low + b.close) / 3 for b in bars])
    volumes = np.array([b.volume for b in bars])
    vwap = compute("vwap", bars)["VWAP"]
    assert vwap[:19] == [None] * min(19, n)
    if n >= 20:
        assert vwap[-1] == pytest.approx(float((typical[-20:] * volumes[-20:]).sum() / volumes[-20:].sum()))


def test_the_charts_studies_are_the_values_rules_compare() -> None:
    """One formula per indicator: the chart's line is the engine's batch value at each closed bar."""
    from services.signals.batch import Candles
    from services.signals.batch import compute as engine
    from services.signals.operands import parse_operand

    bars = bars_from(100.0, 120)
    k = Candles.from_rows(bars)
    for key, operand, name in (("ema20", "ema(20)", "EMA 20"), ("rsi14", "rsi(14)", "RSI 14"),
                               ("vwap", "vwap(20)", "VWAP"), ("macd", "macd(12, 26, 9).signal", "Signal")):
        theirs = engine(parse_operand(operand), k)
        ours = np.array([np.nan if v is None else v for v in compute(key, bars)[name]])
        np.testing.assert_array_equal(ours, theirs)


def test_studies_drawn_after_any_change_of_the_bars_are_those_of_a_fresh_chart() -> None:
    """The chart keeps its closed bars' arrays from one repaint to the next (`StudyInputs`): after ticks of
    the forming bar, a bar closing, older bars scrolled in, a bar in the middle corrected and the history
    replaced, each study's lines are those a chart drawn from nothing gives the same bars."""
    import random

    rng = random.Random(7)
    bars = bars_from(100.0, 160)
    studies = ("ema20", "sma50", "bb20", "vwap", "rsi14", "macd")
    previous = None
    changes: set[str] = set()
    for _ in range(120):
        change = rng.choice(["tick", "tick", "tick", "close", "older", "correct", "replace", "zoom"])
        last = bars[-1]
        if change == "tick":
            price = last.close * (1 + rng.uniform(-0.01, 0.01))
            bars[-1] = Candle(last.timestamp_ms, last.open, max(last.high, price), min(last.low, price), price,
                              last.volume + 0.5)
        elif change == "close":
            bars.append(Candle(last.timestamp_ms + 60_000, last.close, last.close, last.close, last.close, 0.1))
        elif change == "older":
            first = bars[0]
            bars[:0] = [Candle(first.timestamp_ms - 60_000 * k, first.open * (1 + k / 500), first.open * 1.01,
                               first.open * 0.99, first.open, 2.0) for k in range(5, 0, -1)]
        elif change == "correct":  # a closed bar with another close: the same bars at both ends
            i = rng.randrange(len(bars) - 60, len(bars) - 2)
            bar = bars[i]
            bars[i] = Candle(bar.timestamp_ms, bar.open, bar.high * 1.02, bar.low, bar.high * 1.02, bar.volume)
        elif change == "replace":
            bars = bars_from(rng.uniform(50, 150), rng.randint(30, 160))
        window = Window(rng.choice([30, 60, 90]), rng.choice([0, 0, 3])) if change == "zoom" else Window(60)
        changes.add(change)
        scene = build(bars, window, 760, 440, studies=studies, places=2, previous=previous)
        fresh = build(list(bars), window, 760, 440, studies=studies, places=2)
        assert scene.studies == fresh.studies, change
        previous = scene
    assert changes == {"tick", "close", "older", "correct", "replace", "zoom"}


def test_order_line_labels_close_together_are_spread_apart() -> None:
    from views.chart_scene import LABEL_GAP, spread

    ys = spread([100.0, 104.0, 105.0, 300.0, 398.0], LABEL_GAP, 0.0, 400.0)
    assert all(b - a >= LABEL_GAP for a, b in zip(ys, ys[1:], strict=False))
    assert ys[0] == 100.0 and ys[3] == 300.0 and ys[-1] <= 400.0  # only the crowded ones move
    assert spread([395.0, 399.0], LABEL_GAP, 0.0, 400.0) == [384.0, 400.0]  # pushed back inside


def test_a_crowd_of_order_lines_keeps_each_label_near_its_line() -> None:
    """Twenty orders within a few ticks: every line is drawn, no label or axis tag sits far from its line,
    and the chart's label still names every one."""
    from views.chart_scene import LABEL_GAP, PriceLine, Scale, _lines, _placed, frame, semantics_label

    fr = frame(800.0, 400.0, [], 90)
    scale = Scale(90.0, 110.0, 0.0, 300.0)
    lines = [PriceLine(100.0 + i * 0.01, f"Buy limit {i}", "buy") for i in range(20)]
    shapes = _lines(fr, _placed(scale, lines), 2)
    assert sum(isinstance(s, cv.Line) for s in shapes) == 20
    texts = [s for s in shapes if isinstance(s, cv.Text)]
    assert 0 < len(texts) < 2 * 20  # some labels and tags left out: they would sit far from their line
    line_ys = [scale.y(line.price) for line in lines]
    for t in texts:
        assert min(abs(t.y - y) for y in line_ys) <= 2 * LABEL_GAP + 8
    said = semantics_label("BTC/USDT", "1m", bars_from(100.0, 5), 2, lines)
    assert all(f"Buy limit {i} at {100 + i * 0.01:,.2f}" in said for i in range(20))


def test_order_labels_sit_at_their_price_and_those_off_the_scale_stack_at_its_edge() -> None:
    """A bracket far from the bars shown (four orders above the scale, two below) and two orders inside it:
    each inside label sits just above its own line, each off-scale one is marked (a triangle up or down) and
    stacked at its edge with no line struck across the plot, every line has a label and an axis tag, and no
    two labels' (or tags') boxes overlap, the last price's tag among them."""
    from views.chart_scene import OFF_STUB, PriceLine, Scale, _lines, _placed, frame

    fr = frame(800.0, 400.0, [], 90)
    scale = Scale(95.0, 105.0, 0.0, 300.0)
    above = [PriceLine(110.0 + i, f"Sell oco {i}", "sell") for i in range(4)]
    below = [PriceLine(80.0 - i, f"Sell stop {i}", "sell") for i in range(2)]
    inside = [PriceLine(101.0, "Buy limit 1", "buy"), PriceLine(97.0, "Entry", "entry")]
    shapes = _lines(fr, _placed(scale, [*above, *below, *inside]), 2)
    backings = sorted((s for s in shapes if isinstance(s, cv.Rect) and s.x == 2), key=lambda r: r.y)
    tags = sorted((s for s in shapes if isinstance(s, cv.Rect) and s.x > fr.plot_w), key=lambda r: r.y)
    assert len(backings) == len(tags) == 8
    for boxes in (backings, tags):
        assert all(b.y >= a.y + a.height for a, b in zip(boxes, boxes[1:], strict=False)), [r.y for r in boxes]
    labels = {t.value: t.y for t in shapes if isinstance(t, cv.Text) and t.x < fr.plot_w}
    assert labels["Buy limit 1 101.00"] == scale.y(101.0) - 8 and labels["Entry 97.00"] == scale.y(97.0) - 8
    assert all(labels[f"Sell oco {i} {110 + i:.2f}"] < scale.y(101.0) - 8 for i in range(4))
    assert all(labels[f"Sell stop {i} {80 - i:.2f}"] > scale.y(97.0) for i in range(2))
    marks = [s for s in shapes if isinstance(s, cv.Path)]  # a triangle before each off-scale label
    ups = [m for m in marks if m.elements[2].y < m.elements[0].y]
    assert len(marks) == 6 and len(ups) == 4
    drawn = [s for s in shapes if isinstance(s, cv.Line)]
    assert sorted(round(s.x2 - s.x1) for s in drawn) == [OFF_STUB] * 6 + [round(fr.plot_w)] * 2

    # On a chart with its bars, the last price's tag is on the axis too, clear of every order's tag: an
    # order at the last price and one a tick above it (both tags spread below it), then a trade moving the
    # price down onto the lower of those tags.
    bars = bars_from(100.0, 60)
    last = bars[-1]
    orders = [PriceLine(last.close, "Buy limit", "buy"), PriceLine(last.close + 0.01, "Sell limit", "sell"),
              *above, *below]
    scene = build(bars, Window(60), 800.0, 400.0, studies=[], places=2, lines=orders)
    assert_axis_tags_clear(scene, len(orders), last.close)
    lower_tag = max(t for t in scene.order_tags if t < scene.price.top + scene.price.height)
    price = round(scene.price.value(lower_tag), 2)
    moved = Candle(last.timestamp_ms, last.open, last.high, min(last.low, price), price, last.volume)
    ticked = build([*bars[:-1], moved], Window(60), 800.0, 400.0, studies=[], places=2, lines=orders,
                   previous=scene)
    assert ticked.base is scene.base  # the orders' tags stay put: only the live layer moves
    assert_axis_tags_clear(ticked, len(orders), moved.close)


def assert_axis_tags_clear(scene: Any, orders: int, last: float) -> None:
    """Every order's tag and the last price's are drawn on the price axis, no two boxes overlapping, and
    the last price's tag is near its line."""
    from views.chart_scene import LABEL_GAP

    edge = scene.frame.plot_w
    tags = sorted((s for s in [*scene.base, *scene.live] if isinstance(s, cv.Rect) and s.x > edge),
                  key=lambda r: r.y)
    assert len(tags) == orders + 1
    assert all(b.y >= a.y + a.height for a, b in zip(tags, tags[1:], strict=False)), [r.y for r in tags]
    (tag,) = [t for t in scene.live if isinstance(t, cv.Text) and t.x > edge]
    assert tag.value == fmt(last, 2) and abs(tag.y - scene.price.y(last)) <= 2 * LABEL_GAP


def test_a_backtests_trades_are_marked_on_its_symbols_chart_outlined() -> None:
    from client.backtest_lab import BacktestSummary

    state = make_state()
    bars = state.candles["BTC/USDT"]
    entry, exit_ = bars[-40], bars[-10]  # inside the 90 bars shown
    trade = {"side": "long", "entryTimestamp": entry.timestamp_ms, "exitTimestamp": exit_.timestamp_ms,
             "entryPrice": entry.open, "exitPrice": exit_.open}
    state.backtest.result = BacktestSummary(stats={}, equity=[], drawdown=[], trades=[trade], candles=len(bars),
                                            symbol="BTC/USDT")
    shell = Shell(Intents())
    shell.render(state)

    def outlined() -> list[cv.Path]:
        return [s for s in shell.chart.base.shapes if isinstance(s, cv.Path) and s.paint.style == ft.PaintingStyle.STROKE
                and s.paint.color in (UP, DOWN) and sum(isinstance(e, cv.Path.Close) for e in s.elements)]

    marks = outlined()
    assert {s.paint.color for s in marks} == {UP, DOWN}  # the entry (a buy) and the exit (a sell)
    assert sum(sum(isinstance(e, cv.Path.Close) for e in s.elements) for s in marks) == 2
    state.select("ETH/USDT")  # another symbol's chart: not its trades
    shell.render(state, state.take_dirty())
    assert outlined() == []
