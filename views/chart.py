"""Candlestick chart of the selected symbol with the engine's indicator drawn over it.

`flet-charts` has no line overlay inside `CandlestickChart`, so a transparent `LineChart` with the
same axes and ranges is stacked on top. Animations are off: they delay live candles by ~150 ms.
"""

from __future__ import annotations

import bisect
import math

import flet as ft
import flet_charts as fch

from client.state import TIMEFRAMES, AppState
from client.theme import DOWN, INDICATOR, UP
from services.market import TIMEFRAME_MS, Candle
from views.common import Intents, fmt, fmt_time, price_decimals

BARS_SHOWN = {"phone": 40, "tablet": 60, "desktop": 90}  # the default range per width
RANGES = ("30", "60", "120")  # the range selector: how many bars the chart shows
AXIS_LABEL_SIZE = 64


BOTTOM_LABEL_SIZE = 22


def nice_step(span: float, count: int = 4) -> float:
    """A round axis step (1, 2, 2.5 or 5 × 10^k) giving about `count` intervals over `span`."""
    if span <= 0:
        return 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


class ChartView:
    TOPICS = frozenset({"candles", "selected", "markets", "signals", "chart"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents | None = None) -> None:
        intents = intents or Intents()
        self.title = ft.Text("", weight=ft.FontWeight.BOLD, size=14)
        self.timeframe = ft.SegmentedButton(
            segments=[ft.Segment(value=tf, label=tf) for tf in TIMEFRAMES], selected=["1m"],
            show_selected_icon=False, on_change=lambda e: intents.set_timeframe(e.control.selected[0]),
        )
        self.legend = ft.Text("", size=12, color=INDICATOR)
        self.candles = fch.CandlestickChart(
            spots=[], animation=ft.Animation(duration=0), interactive=True, expand=True,
            horizontal_grid_lines=fch.ChartGridLines(color=ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE)),
            left_axis=fch.ChartAxis(label_size=0, show_labels=False),
            top_axis=fch.ChartAxis(label_size=0, show_labels=False),
            right_axis=fch.ChartAxis(label_size=AXIS_LABEL_SIZE, show_min=False, show_max=False),
            bottom_axis=fch.ChartAxis(label_size=BOTTOM_LABEL_SIZE, show_min=False, show_max=False),
        )
        self.line = fch.LineChartData(points=[], color=INDICATOR, stroke_width=2, curved=False, point=False)
        # Signal markers: points only (no line), under the low of a buy bar and over the high of a sell bar.
        self.buys = fch.LineChartData(points=[], color=UP, stroke_width=0, point=True, curved=False)
        self.sells = fch.LineChartData(points=[], color=DOWN, stroke_width=0, point=True, curved=False)
        self.range = ft.SegmentedButton(
            segments=[ft.Segment(value=r, label=f"{r} bars") for r in RANGES], selected=[], allow_empty_selection=True,
            show_selected_icon=False, on_change=lambda e: intents.set_range(int(e.control.selected[0])
                                                                             if e.control.selected else 0),
        )
        hidden = fch.ChartAxis(label_size=0, show_labels=False)
        self.overlay = fch.LineChart(
            data_series=[self.line, self.buys, self.sells], animation=ft.Animation(duration=0), interactive=False, expand=True,
            left_axis=hidden, right_axis=hidden, top_axis=hidden, bottom_axis=hidden,
        )
        # The overlay has no axes; padding by the candles' label room lines the two plots up.
        overlay = ft.Container(self.overlay, padding=ft.Padding.only(right=AXIS_LABEL_SIZE, bottom=BOTTOM_LABEL_SIZE),
                               expand=True)
        plot = ft.Stack([self.candles, ft.TransparentPointer(content=overlay, expand=True)], expand=True)
        header = ft.Row([ft.Row([self.title, self.legend], spacing=12, wrap=True), self.timeframe, self.range],
                        alignment=ft.MainAxisAlignment.SPACE_BETWEEN, wrap=True, run_spacing=6)
        self.semantics = ft.Semantics(identifier="chart", container=True, content=plot, expand=True)
        self.control = ft.Container(
            content=ft.Column([header, self.semantics], expand=True, spacing=6),
            padding=ft.Padding.all(12), border_radius=ft.BorderRadius.all(12),
            bgcolor=ft.Colors.SURFACE_CONTAINER, expand=True,
        )
        self._shown: list[Candle] = []
        self._axes_key: tuple[object, ...] | None = None
        self._line_shown: list[tuple[int, float]] = []
        self._markers_key: tuple[object, ...] | None = None

    def render(self, state: AppState) -> None:
        symbol = state.selected
        bars = state.candles.get(symbol, [])[-(state.chart_bars or BARS_SHOWN[state.breakpoint]):]
        self.range.selected = [str(state.chart_bars)] if state.chart_bars else []
        market = state.markets.get(symbol)
        places = price_decimals(market, bars[-1].close if bars else None)
        self.title.value = f"{symbol} · {state.timeframe}"
        self.timeframe.selected = [state.timeframe]
        for segment in self.timeframe.segments:
            available = state.timeframe_available(segment.value)
            if segment.disabled == available:  # changed: patch it
                segment.disabled = not available
                segment.tooltip = None if available else (
                    f"The recording is {state.history_span_ms // 60_000} min long: too short for {segment.value} bars")
        values = sample(state.indicator.get(symbol, {}), bars, TIMEFRAME_MS[state.timeframe])
        last_value = values.get(bars[-1].timestamp_ms) if bars else None
        self.legend.value = f"EMA 20 {fmt(last_value, places)}" if last_value else "EMA 20 warming up"
        self._render_candles(bars)
        points = [(i, values[b.timestamp_ms]) for i, b in enumerate(bars) if b.timestamp_ms in values]
        self._render_line(points)
        self._render_markers(state, bars)
        lows = [b.low for b in bars] + [v for _, v in points]
        highs = [b.high for b in bars] + [v for _, v in points]
        if bars:
            pad = (max(highs) - min(lows)) * 0.06 or max(highs) * 0.001
            lo, hi = min(lows) - pad, max(highs) + pad
            for chart in (self.candles, self.overlay):
                chart.min_x, chart.max_x, chart.min_y, chart.max_y = -0.5, len(bars) - 0.5, lo, hi
            # fl_chart draws a label only at multiples of the axis spacing: labels sit exactly there.
            # Labels are rebuilt only when they change, so a tick does not resend them.
            y_step = nice_step(hi - lo)
            first, last_k = math.ceil(lo / y_step), math.floor(hi / y_step)
            step = max(1, len(bars) // 4)
            axes_key = (y_step, first, last_k, places, bars[0].timestamp_ms, len(bars))
            if axes_key != self._axes_key:
                self._axes_key = axes_key
                self.candles.right_axis.label_spacing = y_step
                self.candles.right_axis.labels = [
                    fch.ChartAxisLabel(value=k * y_step, label=ft.Text(fmt(k * y_step, places), size=10))
                    for k in range(first, last_k + 1)
                ]
                self.candles.bottom_axis.label_spacing = step
                self.candles.bottom_axis.labels = [
                    fch.ChartAxisLabel(value=i, label=ft.Text(fmt_time(bars[i].timestamp_ms, False), size=10))
                    for i in range(0, len(bars), step)
                ]
        last = bars[-1] if bars else None
        self.semantics.label = (
            f"{symbol} candlestick chart, {len(bars)} bars, last close {fmt(last.close, places)}"
            if last else f"{symbol} chart, loading"
        )
        self.semantics.value = str(len(bars))

    def _render_markers(self, state: AppState, bars: list[Candle]) -> None:
        """One marker per bar and side where the engine fired for the selected symbol. O(s log b)."""
        if not bars:
            self.buys.points, self.sells.points = [], []
            return
        starts = [b.timestamp_ms for b in bars]
        buys: dict[int, float] = {}
        sells: dict[int, float] = {}
        pad = (max(b.high for b in bars) - min(b.low for b in bars)) * 0.03
        for signal in state.signals:
            if signal.symbol != state.selected or signal.timestamp_ms < starts[0]:
                continue
            i = bisect.bisect_right(starts, signal.timestamp_ms) - 1
            if signal.direction == "buy":
                buys[i] = bars[i].low - pad
            else:
                sells[i] = bars[i].high + pad
        key = (tuple(sorted(buys.items())), tuple(sorted(sells.items())))
        if key != self._markers_key:
            self._markers_key = key
            self.buys.points = [fch.LineChartDataPoint(x=i, y=y, tooltip="buy signal") for i, y in key[0]]
            self.sells.points = [fch.LineChartDataPoint(x=i, y=y, tooltip="sell signal") for i, y in key[1]]

    def _render_line(self, points: list[tuple[int, float]]) -> None:
        """Like the candles: between bars only the last point moves, so only it is patched."""
        shown = self._line_shown
        if len(points) == len(shown) and points[:-1] == shown[:-1] and points:
            if points[-1] != shown[-1]:
                self.line.points[-1].y = points[-1][1]
        else:
            self.line.points = [fch.LineChartDataPoint(x=i, y=v) for i, v in points]
        self._line_shown = points

    def _render_candles(self, bars: list[Candle]) -> None:
        # Only the current bar changes between most renders: mutate spots in place so the patch
        # sent to the browser is one spot, not the whole series.
        # Another symbol or timeframe often has bars at the very same times: comparing the first bar's
        # time kept the old symbol's candles on screen. Every bar but the forming one must be equal.
        spots = self.candles.spots
        same_window = bool(bars) and len(self._shown) == len(bars) and self._shown[:-1] == bars[:-1]
        if not same_window:
            spots.clear()
            spots.extend(_spot(i, b) for i, b in enumerate(bars))
        elif bars:
            i = len(bars) - 1
            spot, bar = spots[i], bars[i]
            spot.open, spot.high, spot.low, spot.close = bar.open, bar.high, bar.low, bar.close
            spot.tooltip = _tooltip(bar)
        self._shown = list(bars)


def sample(per_minute: dict[int, float], bars: list[Candle], bar_ms: int) -> dict[int, float]:
    """The indicator's last value inside each bar. O(b log m) for b bars over m minute points."""
    minutes = sorted(per_minute)
    out: dict[int, float] = {}
    for bar in bars:
        i = bisect.bisect_left(minutes, bar.timestamp_ms + bar_ms) - 1
        if i >= 0 and minutes[i] >= bar.timestamp_ms:
            out[bar.timestamp_ms] = per_minute[minutes[i]]
    return out


def _tooltip(bar: Candle) -> str:
    return f"{fmt_time(bar.timestamp_ms, False)}  O {bar.open:g} H {bar.high:g} L {bar.low:g} C {bar.close:g}"


def _spot(i: int, bar: Candle) -> fch.CandlestickChartSpot:
    return fch.CandlestickChartSpot(x=i, open=bar.open, high=bar.high, low=bar.low, close=bar.close,
                                    tooltip=_tooltip(bar))
