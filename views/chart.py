"""The selected symbol's chart, drawn on `ft.canvas`: candles and volume, the studies the trader picks,
crosshair and legend, last-price, order and entry lines, fill and signal markers; drag or pinch to pan,
wheel or pinch to zoom through the candles held.

`flet-charts` has no viewport API (no pan, no zoom, no crosshair labels), hence a canvas. What is drawn is
computed by `views.chart_scene` (pure, tested without a browser) in three layers, so a tick repaints a few
shapes and a pointer move only the crosshair. Gestures redraw the chart alone, at once: waiting for the
session's 10 Hz repaint would make a drag feel sticky, and a whole-page update would cost far more.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import flet as ft
import flet.canvas as cv

from client.state import TIMEFRAMES, AppState
from client.theme import DOWN, UP
from views.chart_scene import (
    WARM_UP,
    Marker,
    PriceLine,
    Scene,
    Window,
    build,
    cursor,
    legend,
    semantics_label,
)
from views.chart_studies import STUDIES
from views.common import Intents, amount_decimals, fmt, price_decimals, same_control
from views.orders import fmt_amount, order_kind

BARS_SHOWN = {"phone": 40, "tablet": 60, "desktop": 90}  # the default range per width
RANGES = ("30", "60", "120")  # the range selector: how many bars the chart shows
DEFAULT_SIZE = {"phone": (360.0, 380.0), "tablet": (500.0, 420.0), "desktop": (760.0, 440.0)}  # until measured
WHEEL_STEP = 1.15  # zoom factor per wheel notch
RESIZE_WAIT_S = 1.5  # after a layout change, how long the chart's label waits for the canvas's new size
SCROLL_BACK_MARGIN = 1.0  # screens of held bars left of the view below which the chart asks for older ones


@ft.control(isolated=True)  # type: ignore[arg-type]  # Flet's overloads want a dataclass it made itself
class PlotLayers(ft.Stack):
    """The plot's three canvases, isolated: a patch of the chart's node (its label) stops here instead of
    walking every candle shape on the base canvas (4-5 ms a repaint at 90 bars, ~10 a second); the canvases
    whose shapes changed are sent beside it (`ChartView._draw` names them)."""

    __eq__ = same_control
    __hash__ = ft.Stack.__hash__


@ft.control(isolated=True)  # type: ignore[arg-type]
class PlotGestures(ft.GestureDetector):
    """The plot's gestures, isolated: a patch of the chart's semantics node (its label, at every draw) stops
    here instead of diffing the detector's ~60 fields and handlers, which never change."""

    __eq__ = same_control
    __hash__ = ft.GestureDetector.__hash__


def reshape(canvas: cv.Canvas, shapes: list[cv.Shape]) -> None:
    """Give `canvas` the drawing `shapes` describe. Where it holds as many shapes of the same kinds (the live
    layer from one tick to the next: the forming candle, the study tails, the last price), they take the new
    values in place, so a repaint sends the values that moved rather than new controls (which a patch must add
    and the client build, one message per layer that does). Otherwise the list is replaced. (The canvas is
    sent, not its moved shapes one by one: a shape's patch is a diff of its paint or path, and `PatchSender`
    sends what one diff gathered before the next, so shapes one by one were a message each.) A path's
    elements and a paint take their new values in place too, where they are as many of the same kinds: Flet's
    diff of a new element list removes and adds every element (each one set up anew, as a new control is), and
    of moved elements it sends the coordinates that moved."""
    held = canvas.shapes
    if not _alike(held, shapes):
        canvas.shapes = shapes
        return
    for old, new in zip(held, shapes, strict=True):
        _take_values(old, new)


def _alike(held: list[Any], new: list[Any]) -> bool:
    return len(held) == len(new) and all(type(a) is type(b) for a, b in zip(held, new, strict=True))


def _take_values(old: Any, new: Any) -> None:
    """`old` takes `new`'s drawing values (same kind): values that moved are set (Flet marks what is set as
    changed), a path's element list and a paint of the same kinds are updated in place rather than replaced."""
    for name in _shape_fields(type(new)):
        value = getattr(new, name)
        current = getattr(old, name)
        if current == value:
            continue
        if isinstance(value, list) and isinstance(current, list) and _alike(current, value) and all(
                dataclasses.is_dataclass(v) and not isinstance(v, ft.BaseControl) for v in value):
            for held, moved in zip(current, value, strict=True):
                _take_values(held, moved)
        elif (type(current) is type(value) and dataclasses.is_dataclass(value)
              and not isinstance(value, ft.BaseControl)):
            _take_values(current, value)
        else:
            setattr(old, name, value)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _shape_fields(kind: type) -> tuple[str, ...]:
    """A shape kind's drawing fields (not Flet's own: id, type, data, key)."""
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind)
                                      if not f.name.startswith("_") and f.name not in ("data", "key"))
    return names


class ChartView:
    TOPICS = frozenset({"candles", "selected", "markets", "signals", "chart", "orders", "positions"})  # repaints only for these

    def __init__(self, intents: Intents | None = None) -> None:
        intents = intents or Intents()
        self._intents = intents
        self.title = ft.Text("", weight=ft.FontWeight.BOLD, size=14, no_wrap=True)
        self.timeframe = ft.SegmentedButton(
            segments=[ft.Segment(value=tf, label=tf) for tf in TIMEFRAMES], selected=["1m"],
            show_selected_icon=False, on_change=lambda e: intents.set_timeframe(picked(e)[0]),
            style=ft.ButtonStyle(padding=ft.Padding.symmetric(horizontal=6), visual_density=ft.VisualDensity.COMPACT),
        )
        self.range = ft.SegmentedButton(
            segments=[ft.Segment(value=r, label=r) for r in RANGES], selected=[], allow_empty_selection=True,
            show_selected_icon=False, on_change=lambda e: intents.set_range(int(picked(e)[0]) if picked(e) else 0),
            style=ft.ButtonStyle(padding=ft.Padding.symmetric(horizontal=6), visual_density=ft.VisualDensity.COMPACT),
        )
        self.studies = ft.PopupMenuButton(
            icon=ft.Icons.SHOW_CHART, tooltip="Studies",
            items=[ft.PopupMenuItem(content=s.label, checked=False, data=s.key,
                                    on_click=lambda e: intents.toggle_study(e.control.data)) for s in STUDIES],
        )
        self.full = ft.IconButton(ft.Icons.FULLSCREEN, tooltip="Full-screen chart", visible=False,
                                  on_click=lambda _e: intents.toggle_full_chart())
        # Icon buttons have no accessible name in Flutter's web semantics (the tooltip is not one): named here.
        self.studies_node = ft.Semantics(container=True, button=True, label="Studies", content=self.studies)
        self.full_node = ft.Semantics(container=True, button=True, label="Full-screen chart", content=self.full,
                                      visible=False)
        self.legend = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.study_legend = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.base = cv.Canvas(shapes=[], expand=True, on_resize=self._on_resize, resize_interval=50)
        self.live = cv.Canvas(shapes=[], expand=True)
        self.cursor = cv.Canvas(shapes=[], expand=True)
        self.plot = PlotGestures(
            content=PlotLayers([self.base, self.live, self.cursor], expand=True),
            expand=True, drag_interval=30, hover_interval=30, mouse_cursor=ft.MouseCursor.PRECISE,
            on_hover=self._on_hover, on_exit=self._on_exit, on_scroll=self._on_scroll,
            on_scale_start=self._on_scale_start, on_scale_update=self._on_scale_update,
        )
        header = ft.Row(
            # The icons beside the title: on a phone they share its line, and the timeframes get the next.
            [self.title, self.studies_node, self.full_node, self.timeframe, self.range],
            wrap=True, run_spacing=4, spacing=6, vertical_alignment=ft.CrossAxisAlignment.CENTER,
        )
        self.header = header
        self.semantics = ft.Semantics(identifier="chart", container=True, content=self.plot, expand=True)
        self.control = ft.Container(
            content=ft.Column([header, ft.Column([self.legend, self.study_legend], spacing=0), self.semantics],
                              expand=True, spacing=4),
            padding=ft.Padding.all(10), border_radius=ft.BorderRadius.all(12),
            bgcolor=ft.Colors.SURFACE_CONTAINER, expand=True,
        )
        self._state: AppState | None = None
        self._size: tuple[float, float] | None = None
        self._layout: tuple[object, ...] | None = None  # (breakpoint, full screen) the size was measured in
        self._resized_after: float | None = None  # a layout change at this monotonic time awaits its resize
        self._window: Window | None = None
        self._window_for: tuple[object, ...] | None = None  # (symbol, timeframe, range) the window belongs to
        self._scene: Scene | None = None
        self._base_key: tuple[object, ...] | None = None
        self._hover: tuple[float, float] | None = None
        self._gesture: tuple[Window, float] | None = None  # the window when a drag began, and the drag so far
        self.changed: list[ft.Control] = []  # what the last draw replaced (bench/chart.py weighs it)
        self._written: dict[str, object] = {}  # the selections last written from state
        self._chrome: tuple[object, ...] | None = None  # what the toolbar and layout were last rendered from

    # -- from state --------------------------------------------------------------------------
    def render(self, state: AppState) -> list[ft.Control] | None:
        """Returns what to send: the whole panel when its toolbar or layout changed, else (a trade, an
        order line) only the plot and its legends: the toolbar's buttons, segments and menu are not diffed
        again at every repaint (they were about a third of the chart's patch under bench load)."""
        self._state = state
        symbol = state.selected
        chrome = (symbol, state.timeframe, state.chart_bars, state.history_span_ms, state.chart_studies,
                  state.breakpoint, state.chart_full)
        if chrome == self._chrome:
            return self._draw()  # the plot's canvases that changed, its legends and its node
        self._chrome = chrome
        self.title.value = f"{symbol} · {state.timeframe}"
        # Written only when the state moved: a tap's new selection and its change event reach Python as two
        # messages, and a repaint between them must not put the old selection back (the event would then
        # read it, and the tap would be lost: seen in the browser as 5m highlighted over a 1m chart).
        self._write(self.timeframe, [state.timeframe])
        self._write(self.range, [str(state.chart_bars)] if state.chart_bars else [])
        for segment in self.timeframe.segments:
            available = state.timeframe_available(segment.value)
            if segment.disabled == available:  # changed: patch it
                segment.disabled = not available
                segment.tooltip = None if available else (
                    f"The recording is {state.history_span_ms // 60_000} min long: too short for {segment.value} bars")
        for item in self.studies.items:
            item.checked = item.data in state.chart_studies
        phone = state.breakpoint == "phone"
        self.full.visible = self.full_node.visible = phone
        self.range.visible = not phone  # a phone pinches and drags instead: the plot gets the room
        self.legend.size = 10 if phone else 11  # the OHLCV legend on one line at 390 px
        self.timeframe.style = ft.ButtonStyle(padding=ft.Padding.symmetric(horizontal=2 if phone else 6),
                                              visual_density=ft.VisualDensity.COMPACT)
        self.full.icon = ft.Icons.FULLSCREEN_EXIT if state.chart_full else ft.Icons.FULLSCREEN
        self.full.tooltip = self.full_node.label = "Leave full screen" if state.chart_full else "Full-screen chart"
        layout = (state.breakpoint, state.chart_full)
        if layout != self._layout:
            # The canvas is about to get another size; until it says which (or RESIZE_WAIT_S), the label
            # says "loading", so nobody reads (or photographs) candles drawn for the old size as the chart.
            self._resized_after = time.monotonic() if self._layout is not None else None
            self._layout = layout
        owner = (symbol, state.timeframe, state.chart_bars)
        if owner != self._window_for:  # another symbol, timeframe or range: back to the live edge
            self._window_for = owner
            self._window = Window(state.chart_bars or BARS_SHOWN[state.breakpoint])
        return [self.control, *self._draw()]  # the panel; the canvases, isolated, beside it

    def _write(self, button: ft.SegmentedButton, selected: list[str]) -> None:
        key = str(id(button))
        if self._written.get(key) != selected:
            self._written[key] = selected
            button.selected = selected

    # -- drawing -----------------------------------------------------------------------------
    def _draw(self) -> list[ft.Control]:
        """Rebuild the scene; returns the canvases whose shapes were replaced."""
        state = self._state
        if state is None or self._window is None:
            return []
        symbol = state.selected
        candles = state.candles.get(symbol, [])
        market = state.markets.get(symbol)
        places = price_decimals(market, candles[-1].close if candles else None)
        width, height = self._size or DEFAULT_SIZE[state.breakpoint]
        lines = chart_lines(state, places)
        scene = build(candles, self._window, width, height, studies=state.chart_studies, places=places,
                      markers=chart_markers(state), lines=lines,
                      identity=(symbol, state.timeframe), previous=self._scene)
        self._scene = scene
        self._window = self._window.clamp(len(candles))
        if candles and self._window.offset + self._window.count * (1 + SCROLL_BACK_MARGIN) + WARM_UP >= len(candles):
            # Near the oldest held bar (studies want WARM_UP bars before the first shown): the page before
            # it comes from the history store, and the view stays put (its window counts from the newest).
            self._intents.load_older()
        changed: list[ft.Control] = [self.live]
        if scene.base_key != self._base_key:
            self._base_key = scene.base_key
            self.base.shapes = scene.base
            changed.append(self.base)
        reshape(self.live, scene.live)
        self._draw_cursor()
        waiting = self._resized_after is not None and time.monotonic() - self._resized_after < RESIZE_WAIT_S
        self.semantics.label = semantics_label(symbol, state.timeframe, () if waiting else scene.bars, places, lines)
        self.study_legend.value = "  ".join(
            f"{name}\u00a0{fmt(values[-1], 2 if name in ('RSI 14',) else places)}"
            for name, values in scene.studies.items() if values and values[-1] is not None and name != "Histogram")
        self.study_legend.visible = bool(self.study_legend.value)
        self.changed = [*changed, self.cursor, self.legend, self.study_legend, self.semantics]
        return self.changed

    def _draw_cursor(self) -> None:
        scene, state = self._scene, self._state
        if scene is None or state is None:
            return
        market = state.markets.get(state.selected)
        places = price_decimals(market, scene.bars[-1].close if scene.bars else None)
        shapes, index = cursor(scene, *self._hover, places) if self._hover else ([], None)
        reshape(self.cursor, shapes)
        self.legend.value = legend(scene.bars, index, places, amount_decimals(market))
        if scene.bars:
            bar = scene.bars[-1 if index is None else index]
            self.legend.color = UP if bar.close >= bar.open else DOWN

    def _send(self, *controls: ft.Control) -> None:
        """Push the chart's own controls to the browser now (a gesture), when the chart is on a page."""
        try:
            if self.control.page is None:
                return
        except RuntimeError:
            return
        for c in controls:
            c.update()

    # -- gestures ----------------------------------------------------------------------------
    def _on_resize(self, e: Any) -> None:  # a cv.CanvasResizeEvent
        if e.width > 0 and e.height > 0 and (e.width, e.height) != self._size:
            self._size = (e.width, e.height)
            self._resized_after = None
            self._send(*self._draw())

    def _on_hover(self, e: Any) -> None:
        self._hover = (e.local_position.x, e.local_position.y)
        self._draw_cursor()
        self._send(self.cursor, self.legend)

    def _on_exit(self, _e: Any) -> None:
        self._hover = None
        self._draw_cursor()
        self._send(self.cursor, self.legend)

    def _on_scroll(self, e: Any) -> None:
        if self._window is None or self._state is None:
            return
        dy = e.scroll_delta.y if e.scroll_delta is not None else 0
        if not dy:
            return
        total = len(self._state.candles.get(self._state.selected, []))
        self._window = self._window.zoom(WHEEL_STEP if dy > 0 else 1 / WHEEL_STEP, total)
        self._send(*self._draw())

    def _on_scale_start(self, _e: Any) -> None:
        if self._window is not None:
            self._gesture = (self._window, 0.0)

    def _on_scale_update(self, e: Any) -> None:
        """One finger (or a mouse drag) pans; two fingers pinch to zoom."""
        if self._gesture is None or self._state is None or self._scene is None:
            return
        start, dragged = self._gesture
        total = len(self._state.candles.get(self._state.selected, []))
        if e.pointer_count >= 2 and e.horizontal_scale and abs(e.horizontal_scale - 1) > 0.01:
            self._window = start.zoom(1 / e.horizontal_scale, total)
        else:
            dragged += e.focal_point_delta.x if e.focal_point_delta is not None else 0.0
            self._gesture = (start, dragged)
            self._window = start.pan(round(dragged / self._scene.frame.slot), total)
        self._hover = None
        self._send(*self._draw())


def picked(e: Any) -> list[str]:
    """A SegmentedButton change's new selection: the event's own data (the control's property may lag)."""
    return list(e.data) if isinstance(e.data, list) else list(e.control.selected)


def chart_markers(state: AppState) -> tuple[Marker, ...]:
    """The trader's own fills on the selected symbol, the signals the engine fired on it, and the trades of
    the last backtest run on it (its newest 50: entry and exit, outlined)."""
    fills = [Marker(int(o.get("lastTradeTimestamp") or o.get("timestamp") or 0), str(o.get("side")), "fill",
                    o.get("average") or o.get("price"))
             for o in state.orders.values()
             if o.get("symbol") == state.selected and (o.get("filled") or 0) > 0]
    signals = [Marker(s.timestamp_ms, s.direction, "signal") for s in state.signals if s.symbol == state.selected]
    tested: list[Marker] = []
    result = state.backtest.result
    if result is not None and result.symbol == state.selected:
        for t in result.trades:
            opening, closing = ("buy", "sell") if t["side"] == "long" else ("sell", "buy")
            tested += [Marker(int(t["entryTimestamp"]), opening, "backtest", t["entryPrice"]),
                       Marker(int(t["exitTimestamp"]), closing, "backtest", t["exitPrice"])]
    return tuple(sorted(fills + signals + tested, key=lambda m: (m.timestamp_ms, m.kind, m.side)))


def chart_lines(state: AppState, places: int) -> tuple[PriceLine, ...]:
    """Open orders' prices (a stop's trigger too) and the open position's entry, on the selected symbol."""
    lines: list[PriceLine] = []
    for o in state.open_orders():
        if o.get("symbol") != state.selected:
            continue
        side, kind = str(o.get("side")), order_kind(o).split(" · ")[0].lower()
        size = fmt_amount(o.get("remaining") or o.get("amount"))
        if o.get("price"):
            lines.append(PriceLine(float(o["price"]), f"{side.title()} {kind} {size}", side))
        if o.get("stopPrice") and o.get("stopPrice") != o.get("price"):
            lines.append(PriceLine(float(o["stopPrice"]), f"{side.title()} {kind} {size} trigger", side))
    for p in state.open_positions():
        if p.get("symbol") == state.selected and p.get("entryPrice"):
            lines.append(PriceLine(float(p["entryPrice"]), "Entry", "entry"))
    return tuple(lines)
