"""What the chart draws, as pure functions of candles, a window and a size: canvas shapes in three layers.

- `base`: grid, closed candles, volume, studies, markers, order and entry lines, axis labels. Rebuilt only
  when a bar closes, the window moves, the size or the studies change (`Scene.base_key` says when).
- `live`: the forming candle, its volume, the studies' last segment, the last-price line and its label:
  a handful of shapes, rebuilt on every tick.
- `cursor`: the crosshair and its price and time labels, rebuilt as the pointer moves.
Splitting them keeps a tick's patch to the browser at a few shapes instead of the whole chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import flet as ft
import flet.canvas as cv

from client.theme import DOWN, INDICATOR, UP
from services.market import Candle
from views.chart_studies import STUDY_BY_KEY, Series, StudyInputs, compute_many
from views.common import fmt

AXIS_W = 74  # the price labels' gutter on the right
TIME_H = 18  # the time labels under the plot
PANE_GAP = 6
VOLUME_SHARE = 0.18  # of the price pane, at its bottom
LOWER_PANE_SHARE = 0.2  # of the whole height, per RSI/MACD pane
REFIT_SHARE = 0.8  # the price scale is refitted when the prices shown fill less of it than this (a spike left)
BREAKOUT_PAD = 3.0  # × the usual padding on the side a breakout left the scale by: a trend's room to run
BREAKOUT_SHARE = 0.25  # ...or this share of the range shown, if more
MIN_BARS, MAX_BARS_SHOWN = 10, 400
WARM_UP = 200  # bars before the first shown that studies start from: EMA/RSI seeds have faded to ~1e-5

LABEL_GAP = 16.0  # px between two order-line labels (a tag is 16 px tall)
OFF_STUB = 24.0  # px of an off-scale line drawn at the plot's right edge, under its axis tag
OFF_MARK_W = 12.0  # px before an off-scale line's label: its up or down triangle
CHAR_W = 5.6  # px per character of a 10 px label, to size its backing without measuring text
GRID = ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE)
LABEL_BACKING = ft.Colors.with_opacity(0.85, ft.Colors.SURFACE_CONTAINER)
AXIS_TEXT = ft.Colors.with_opacity(0.7, ft.Colors.ON_SURFACE)
CROSSHAIR = ft.Colors.with_opacity(0.5, ft.Colors.ON_SURFACE)
LABEL_BG = ft.Colors.BLUE_GREY_700
STUDY_COLOURS = {"EMA 20": INDICATOR, "SMA 50": ft.Colors.LIGHT_BLUE_300, "BB mid": ft.Colors.PURPLE_200,
                 "BB upper": ft.Colors.PURPLE_200, "BB lower": ft.Colors.PURPLE_200, "VWAP": ft.Colors.PINK_200,
                 "RSI 14": ft.Colors.PURPLE_200, "MACD": ft.Colors.LIGHT_BLUE_300, "Signal": ft.Colors.ORANGE_300}


@dataclass(frozen=True, slots=True)
class Marker:
    """A point of interest at a time: the trader's own fill, a signal the engine fired, a backtest's trade."""

    timestamp_ms: int
    side: str  # "buy" | "sell"
    kind: str  # "fill" | "signal" | "backtest"
    price: float | None = None


@dataclass(frozen=True, slots=True)
class PriceLine:
    """A horizontal line the trader cares about: an open order's price, the position's entry."""

    price: float
    label: str
    kind: str  # "buy" | "sell" | "entry"


@dataclass(frozen=True, slots=True)
class Window:
    """Which bars are shown: `count` of them, ending `offset` bars before the newest (0: live edge)."""

    count: int
    offset: int = 0

    def clamp(self, total: int) -> Window:
        count = max(MIN_BARS, min(MAX_BARS_SHOWN, self.count))
        return Window(count, max(0, min(self.offset, max(0, total - MIN_BARS))))

    def pan(self, bars: int, total: int) -> Window:
        """Drag right (positive) looks further back in history."""
        return Window(self.count, self.offset + bars).clamp(total)

    def zoom(self, factor: float, total: int) -> Window:
        """factor > 1 shows more bars (zoom out), keeping the right edge where it is."""
        return Window(round(self.count * factor), self.offset).clamp(total)


@dataclass(frozen=True, slots=True)
class Pane:
    name: str
    top: float
    height: float


@dataclass(frozen=True, slots=True)
class Frame:
    """The pixel layout: the price pane (volume at its bottom), then one pane per lower study."""

    width: float
    height: float
    panes: tuple[Pane, ...]
    slot: float  # pixels per bar

    @property
    def plot_w(self) -> float:
        return max(1.0, self.width - AXIS_W)

    def pane(self, name: str) -> Pane:
        return next(p for p in self.panes if p.name == name)

    def x(self, i: int) -> float:
        """Centre of the i-th bar shown."""
        return (i + 0.5) * self.slot

    def index_at(self, x: float, count: int) -> int:
        return max(0, min(count - 1, int(x // self.slot)))


def frame(width: float, height: float, lower: Sequence[str], count: int) -> Frame:
    plot_h = max(40.0, height - TIME_H)
    lower_h = min(plot_h * LOWER_PANE_SHARE, 120.0) if lower else 0.0
    price_h = plot_h - len(lower) * (lower_h + PANE_GAP)
    panes = [Pane("price", 0.0, price_h)]
    top = price_h + PANE_GAP
    for name in lower:
        panes.append(Pane(name, top, lower_h))
        top += lower_h + PANE_GAP
    return Frame(width, height, tuple(panes), max(1.0, (width - AXIS_W)) / max(1, count))


@dataclass(frozen=True, slots=True)
class Scale:
    lo: float
    hi: float
    top: float
    height: float

    def y(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.top + (self.hi - value) / span * self.height

    def value(self, y: float) -> float:
        return self.hi - (y - self.top) / (self.height or 1.0) * (self.hi - self.lo)


def nice_step(span: float, count: int = 4) -> float:
    """A round axis step (1, 2, 2.5 or 5 × 10^k) giving about `count` intervals over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


@dataclass
class Scene:
    """Everything drawn for one state of the chart, plus what the legend and screen readers say."""

    bars: list[Candle]
    frame: Frame
    price: Scale
    base_key: tuple[object, ...]
    base: list[cv.Shape] = field(default_factory=list)
    live: list[cv.Shape] = field(default_factory=list)
    studies: dict[str, Series] = field(default_factory=dict)  # name → one value per bar shown
    fitted: tuple[object, ...] = ()  # what the price scale was fitted for: a next tick with the same keeps it
    order_tags: tuple[float, ...] = ()  # the y of each order tag the base layer drew on the price axis
    inputs: StudyInputs = field(default_factory=StudyInputs)  # the studies' arrays, handed to the next scene


def visible(candles: Sequence[Candle], window: Window) -> list[Candle]:
    end = len(candles) - window.offset
    return list(candles[max(0, end - window.count):max(0, end)])


def build(candles: Sequence[Candle], window: Window, width: float, height: float, *, studies: Sequence[str],
          places: int, markers: Sequence[Marker] = (), lines: Sequence[PriceLine] = (),
          identity: tuple[object, ...] = (), previous: Scene | None = None) -> Scene:
    """The scene for `window` over `candles`. Studies are computed from `WARM_UP` bars before the first
    one shown, so those already have a settled value. `identity` (symbol, timeframe) is part of the base
    key: another symbol's bars often have the very same times. The base layer of `previous` is reused when
    its key is unchanged (a tick). O(w + WARM_UP) for w bars shown."""
    window = window.clamp(len(candles))
    end = len(candles) - window.offset
    start = max(0, end - window.count)
    bars = list(candles[start:end])
    warm = max(0, start - WARM_UP)
    lower = [STUDY_BY_KEY[k].pane for k in studies if STUDY_BY_KEY[k].pane != "price"]
    fr = frame(width, height, lower, window.count)
    series: dict[str, Series] = {}
    panes_of: dict[str, str] = {}
    inputs = previous.inputs if previous is not None else StudyInputs()
    if studies:
        for key, outputs in compute_many(studies, inputs.arrays(candles[warm:end]), start - warm).items():
            for name, values in outputs.items():
                series[name] = values
                panes_of[name] = STUDY_BY_KEY[key].pane
    price_pane = fr.pane("price")
    over = [v for n, vs in series.items() if panes_of[n] == "price" for v in vs if v is not None]
    lows = [b.low for b in bars] + over + [ln.price for ln in lines if _near(ln.price, bars)]
    highs = [b.high for b in bars] + over + [ln.price for ln in lines if _near(ln.price, bars)]
    lo, hi = (min(lows), max(highs)) if bars else (0.0, 1.0)
    pad = (hi - lo) * 0.06 or abs(hi) * 0.001 or 1.0
    vol_h = price_pane.height * VOLUME_SHARE
    scale = Scale(lo - pad, hi + pad, price_pane.top + 4, price_pane.height - vol_h - 8)
    kept = previous.price if previous is not None and previous.fitted == (identity, tuple(studies), width, height,
                                                                            window) else None
    if kept is not None and kept.lo <= lo and hi <= kept.hi and (hi - lo + 2 * pad) >= REFIT_SHARE * (kept.hi - kept.lo):
        # A tick inside the padding keeps the price scale, and so the base layer (else a forming bar making a
        # new high in a trend would rebuild, and resend, every closed candle on every repaint).
        scale = kept
    elif kept is not None and (lo < kept.lo or hi > kept.hi):
        # The market broke out of the scale: room to go on that side, so a trend refits now and then rather
        # than every few ticks (each refit resends the whole chart, ~40 kB).
        room = max(pad * BREAKOUT_PAD, (hi - lo) * BREAKOUT_SHARE)
        scale = Scale(lo - (room if lo < kept.lo else pad), hi + (room if hi > kept.hi else pad), scale.top, scale.height)
    scene = Scene(bars, fr, scale, base_key=(), studies=series, fitted=(identity, tuple(studies), width, height, window),
                  inputs=inputs)
    if not bars:
        return scene
    closed = bars[:-1]
    scene.base_key = (identity, tuple(studies), width, height, window, scale.lo, scale.hi, tuple(closed[-1:]),
                      closed[0] if closed else None, len(bars), tuple(markers), tuple(lines), places)
    # The volume scale follows the closed bars: the forming bar's volume grows with every trade, and
    # letting it move the scale would rebuild the base layer on every tick (it is capped at the pane top).
    top_vol = max((b.volume for b in closed), default=bars[-1].volume) or 1.0
    vol = Scale(0.0, top_vol, price_pane.top + price_pane.height - vol_h, vol_h)
    scene.base_key += (top_vol,)
    if previous is not None and previous.base_key == scene.base_key:
        scene.base, scene.order_tags = previous.base, previous.order_tags
    else:
        placed = _placed(scale, lines)
        scene.base = [*_grid(fr, scale, places), *_time_axis(fr, bars),
                      *_candles(fr, scale, vol, closed, 0),
                      *_studies(fr, series, panes_of, scale, len(bars) - 1),
                      *_markers(fr, scale, bars, markers), *_lines(fr, placed, places)]
        scene.order_tags = tuple(tag_y for _y, _line, _off, _label_y, tag_y, tagged in placed if tagged)
    scene.live = [*_candles(fr, scale, vol, bars[-1:], len(bars) - 1),
                  *_study_tails(fr, series, panes_of, scale),
                  *_last_price(fr, scale, bars, places, scene.order_tags)]
    return scene


def _near(price: float, bars: Sequence[Candle]) -> bool:
    """An order line widens the range only when it is near the market: one far off would flatten the bars."""
    if not bars:
        return False
    lo, hi = min(b.low for b in bars), max(b.high for b in bars)
    span = hi - lo or hi * 0.01
    return lo - span <= price <= hi + span


def _paint(colour: str, width: float = 1.0, *, fill: bool = False, dash: list[float] | None = None) -> ft.Paint:
    return ft.Paint(color=colour, stroke_width=width, anti_alias=True, stroke_dash_pattern=dash,
                    style=ft.PaintingStyle.FILL if fill else ft.PaintingStyle.STROKE)


def _text(x: float, y: float, value: str, colour: str = AXIS_TEXT, size: float = 10,
          alignment: ft.Alignment = ft.Alignment.CENTER_LEFT) -> cv.Text:
    return cv.Text(x, y, value, style=ft.TextStyle(size=size, color=colour), alignment=alignment)


def _tag(x: float, y: float, value: str, bg: str, width: float = AXIS_W - 4) -> list[cv.Shape]:
    """A label in a box on the price axis (last price, crosshair price, order lines)."""
    return [cv.Rect(x, y - 8, width, 16, border_radius=3, paint=_paint(bg, fill=True)),
            _text(x + 4, y, value, ft.Colors.WHITE)]


def _grid(fr: Frame, scale: Scale, places: int) -> list[cv.Shape]:
    step = nice_step(scale.hi - scale.lo, max(2, int(scale.height // 60)))
    shapes: list[cv.Shape] = []
    grid = cv.Path([], paint=_paint(GRID))
    for k in range(math.ceil(scale.lo / step), math.floor(scale.hi / step) + 1):
        y = scale.y(k * step)
        grid.elements += [cv.Path.MoveTo(0, y), cv.Path.LineTo(fr.plot_w, y)]
        shapes.append(_text(fr.plot_w + 6, y, fmt(k * step, places)))
    return [grid, *shapes]


def time_label(timestamp_ms: int, bar_ms: int | None = None) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).astimezone()
    if bar_ms is not None and bar_ms >= 86_400_000:
        return moment.strftime("%b %d")
    return moment.strftime("%H:%M") if moment.hour or moment.minute else moment.strftime("%b %d")


def _time_axis(fr: Frame, bars: Sequence[Candle]) -> list[cv.Shape]:
    bar_ms = bars[1].timestamp_ms - bars[0].timestamp_ms if len(bars) > 1 else None
    every = max(1, math.ceil(80 / fr.slot))  # a label each ~80 px
    return [_text(fr.x(i), fr.height - TIME_H / 2, time_label(bars[i].timestamp_ms, bar_ms),
                  alignment=ft.Alignment.CENTER)
            for i in range(0, len(bars), every) if 20 <= fr.x(i) <= fr.plot_w - 20]  # none cut at an edge


def _candles(fr: Frame, scale: Scale, vol: Scale, bars: Sequence[Candle], first: int) -> list[cv.Shape]:
    """Four paths for any number of bars (up/down bodies and wicks), two for their volume."""
    body_w = max(1.0, fr.slot * 0.7)
    paths = {c: (cv.Path([], paint=_paint(c, fill=True)), cv.Path([], paint=_paint(c, 1.0)),
                 cv.Path([], paint=_paint(ft.Colors.with_opacity(0.35, c), fill=True))) for c in (UP, DOWN)}
    for i, bar in enumerate(bars, start=first):
        body, wick, volume = paths[UP if bar.close >= bar.open else DOWN]
        x = fr.x(i)
        top, bottom = scale.y(max(bar.open, bar.close)), scale.y(min(bar.open, bar.close))
        body.elements.append(cv.Path.Rect(x - body_w / 2, top, body_w, max(1.0, bottom - top)))
        wick.elements += [cv.Path.MoveTo(x, scale.y(bar.high)), cv.Path.LineTo(x, scale.y(bar.low))]
        v_top = max(vol.top, vol.y(bar.volume))
        volume.elements.append(cv.Path.Rect(x - body_w / 2, v_top, body_w, max(0.0, vol.top + vol.height - v_top)))
    return [p for trio in paths.values() for p in trio if p.elements]


def pane_scale(fr: Frame, pane: str, series: dict[str, Series], panes_of: dict[str, str]) -> Scale:
    p = fr.pane(pane)
    if pane == "rsi":
        return Scale(0.0, 100.0, p.top, p.height)
    values = [v for n, vs in series.items() if panes_of[n] == pane for v in vs if v is not None]
    bound = max((abs(v) for v in values), default=1.0) or 1.0
    return Scale(-bound * 1.1, bound * 1.1, p.top, p.height)


def _polyline(fr: Frame, scale: Scale, values: Series, colour: str, upto: int) -> cv.Path | None:
    path = cv.Path([], paint=_paint(colour, 1.5))
    drawing = False
    for i, v in enumerate(values[:upto + 1]):
        if v is None:
            drawing = False
            continue
        path.elements.append((cv.Path.LineTo if drawing else cv.Path.MoveTo)(fr.x(i), scale.y(v)))
        drawing = True
    return path if path.elements else None


def _studies(fr: Frame, series: dict[str, Series], panes_of: dict[str, str], price: Scale,
             upto: int) -> list[cv.Shape]:
    """Lines up to the last closed bar; RSI's 30/70 guides; MACD's histogram as bars."""
    shapes: list[cv.Shape] = []
    for pane in dict.fromkeys(panes_of.values()):
        if pane == "price":
            continue
        p, scale = fr.pane(pane), pane_scale(fr, pane, series, panes_of)
        shapes.append(cv.Rect(0, p.top, fr.plot_w, p.height, paint=_paint(GRID)))
        guides = (30.0, 70.0) if pane == "rsi" else (0.0,)
        for g in guides:
            shapes += [cv.Line(0, scale.y(g), fr.plot_w, scale.y(g), paint=_paint(GRID, dash=[4, 4])),
                       _text(fr.plot_w + 6, scale.y(g), f"{g:g}")]
        name = "RSI 14" if pane == "rsi" else "MACD"
        shapes.append(_text(4, p.top + 8, name, AXIS_TEXT))
    for name, values in series.items():
        scale = price if panes_of[name] == "price" else pane_scale(fr, panes_of[name], series, panes_of)
        if name == "Histogram":
            for colour, sign in ((UP, 1), (DOWN, -1)):
                bars = cv.Path([], paint=_paint(ft.Colors.with_opacity(0.5, colour), fill=True))
                w = max(1.0, fr.slot * 0.6)
                for i, v in enumerate(values[:upto + 1]):
                    if v is not None and (v >= 0) == (sign > 0):
                        y0, y1 = scale.y(0.0), scale.y(v)
                        bars.elements.append(cv.Path.Rect(fr.x(i) - w / 2, min(y0, y1), w, abs(y1 - y0)))
                if bars.elements:
                    shapes.append(bars)
            continue
        line = _polyline(fr, scale, values, STUDY_COLOURS.get(name, INDICATOR), upto)
        if line is not None:
            shapes.append(line)
    return shapes


def _study_tails(fr: Frame, series: dict[str, Series], panes_of: dict[str, str], price: Scale) -> list[cv.Shape]:
    """Each line's last segment, into the forming bar (it moves with every tick)."""
    shapes: list[cv.Shape] = []
    for name, values in series.items():
        if name == "Histogram" or len(values) < 2 or values[-1] is None or values[-2] is None:
            continue
        scale = price if panes_of[name] == "price" else pane_scale(fr, panes_of[name], series, panes_of)
        n = len(values) - 1
        shapes.append(cv.Line(fr.x(n - 1), scale.y(values[-2]), fr.x(n), scale.y(values[-1]),
                              paint=_paint(STUDY_COLOURS.get(name, INDICATOR), 1.5)))
    return shapes


def _last_price(fr: Frame, scale: Scale, bars: Sequence[Candle], places: int,
                order_tags: Sequence[float] = ()) -> list[cv.Shape]:
    """The last price's line, and its tag at the price or, where an order's tag is there, the nearest place
    clear of them (it is redrawn on every tick: moving it, not the orders' tags, keeps the base layer)."""
    last = bars[-1]
    colour = UP if last.close >= last.open else DOWN
    y = scale.y(last.close)
    tag_y = free_slot(y, order_tags, LABEL_GAP, scale.top + 8, scale.top + scale.height)
    return [cv.Line(0, y, fr.plot_w, y, paint=_paint(colour, 1.0, dash=[3, 3])),
            *_tag(fr.plot_w + 2, tag_y, fmt(last.close, places), colour)]


def free_slot(y: float, taken: Sequence[float], gap: float, lo: float, hi: float) -> float:
    """The place nearest `y` at least `gap` from every one `taken`, within [lo, hi] if moved; `y` itself
    when none is free. O(n²) for n taken (a few order tags)."""
    def clear(c: float) -> bool:
        return all(abs(c - t) >= gap - 1e-6 for t in taken)

    if clear(y):
        return y
    moved = [c for t in taken for c in (t - gap, t + gap) if lo <= c <= hi and clear(c)]
    return min(moved, key=lambda c: abs(c - y), default=y)


def _markers(fr: Frame, scale: Scale, bars: Sequence[Candle], markers: Sequence[Marker]) -> list[cv.Shape]:
    """Fills as triangles (▲ under the bar for a buy, ▼ over it for a sell), a backtest's trades as the same
    triangles outlined, signals as dots."""
    if not bars:
        return []
    starts = [b.timestamp_ms for b in bars]
    bar_ms = starts[1] - starts[0] if len(starts) > 1 else 60_000
    shapes: dict[tuple[str, str], cv.Path] = {}
    for m in markers:
        if not starts[0] <= m.timestamp_ms < starts[-1] + bar_ms:
            continue
        i = min(len(bars) - 1, max(0, int((m.timestamp_ms - starts[0]) // bar_ms)))
        while i > 0 and starts[i] > m.timestamp_ms:
            i -= 1
        bar, x = bars[i], fr.x(i)
        colour = UP if m.side == "buy" else DOWN
        path = shapes.setdefault((m.kind, colour), cv.Path([], paint=_paint(colour, 1.5, fill=m.kind != "backtest")))
        s = max(4.0, min(7.0, fr.slot * 0.45))
        if m.kind in ("fill", "backtest"):
            if m.side == "buy":
                y = scale.y(bar.low) + 4
                path.elements += [cv.Path.MoveTo(x, y), cv.Path.LineTo(x - s, y + s * 1.6),
                                  cv.Path.LineTo(x + s, y + s * 1.6), cv.Path.Close()]
            else:
                y = scale.y(bar.high) - 4
                path.elements += [cv.Path.MoveTo(x, y), cv.Path.LineTo(x - s, y - s * 1.6),
                                  cv.Path.LineTo(x + s, y - s * 1.6), cv.Path.Close()]
        else:
            y = scale.y(bar.low) + 16 if m.side == "buy" else scale.y(bar.high) - 16
            path.elements.append(cv.Path.Oval(x - 3, y - 3, 6, 6))
    return list(shapes.values())


def _lines(fr: Frame, placed: Sequence[_Placed], places: int) -> list[cv.Shape]:
    """Open orders dashed in their side's colour, the entry solid, each label at its price. A line off the
    scale (an order far from the bars shown) is no line across the plot but a stub at the edge, its label
    marked by a triangle pointing up or down and stacked there with the others off that side: drawn across at the edge, they struck
    through each other's labels, and all but two were left out. Labels close together are spread apart
    (never drawn over each other), each on a backing that keeps another line from striking it through."""
    shapes: list[cv.Shape] = []
    for y, line, off, label_y, tag_y, tagged in placed:
        colour = {"buy": UP, "sell": DOWN}.get(line.kind, INDICATOR)
        dash: list[float] | None = None if line.kind == "entry" else [6.0, 4.0]
        text = f"{line.label} {fmt(line.price, places)}"
        start = fr.plot_w - OFF_STUB if off else 0.0
        shapes.append(cv.Line(start, y, fr.plot_w, y, paint=_paint(colour, 1.0, dash=dash)))
        # A label pushed far from its line would name another (a crowded chart: the semantics label still
        # lists every line); off the scale, the edge is where they all belong, so all are kept there.
        if off or abs(label_y - (y - 8)) <= 2 * LABEL_GAP:
            indent = OFF_MARK_W if off else 0.0
            shapes += [cv.Rect(2, label_y - 7, len(text) * CHAR_W + 6 + indent, 14, border_radius=2,
                               paint=_paint(LABEL_BACKING, fill=True)),
                       _text(5 + indent, label_y, text, colour)]
            if off:  # a triangle pointing where the price is (drawn: the canvas font has no ▲ or ▼)
                tip, base = label_y + 4 * off, label_y - 3 * off
                shapes.append(cv.Path([cv.Path.MoveTo(5, base), cv.Path.LineTo(13, base), cv.Path.LineTo(9, tip),
                                       cv.Path.Close()], paint=_paint(colour, fill=True)))
        if tagged:
            shapes += _tag(fr.plot_w + 2, tag_y, fmt(line.price, places), ft.Colors.with_opacity(0.8, colour))
    return shapes


_Placed = tuple[float, PriceLine, int, float, float, bool]  # what `_placed` gives per line


def _placed(scale: Scale, lines: Sequence[PriceLine]) -> list[_Placed]:
    """Each line, top to bottom: its y on the scale (clamped to it), off (-1 above the scale, 1 below, 0 on
    it), its label's y and its axis tag's y (spread apart), and whether the tag is drawn."""
    top, bottom = scale.top, scale.top + scale.height
    placed = sorted(((min(max(scale.y(line.price), top), bottom), line) for line in lines),
                    key=lambda p: (p[0], -p[1].price))
    label_ys = spread([y - 8 for y, _ in placed], LABEL_GAP, top + 9, bottom)
    tag_ys = spread([y for y, _ in placed], LABEL_GAP, top + 8, bottom)
    out: list[_Placed] = []
    for (y, line), label_y, tag_y in zip(placed, label_ys, tag_ys, strict=True):
        true_y = scale.y(line.price)
        off = -1 if true_y < top else 1 if true_y > bottom else 0  # above the scale, below it, on it
        # A tag pushed far from its line is left out, as its label is (see _lines).
        out.append((y, line, off, label_y, tag_y, bool(off) or abs(tag_y - y) <= 2 * LABEL_GAP))
    return out


def spread(ys: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """`ys` (sorted) moved as little as needed to be `gap` apart, kept within [lo, hi] where they fit. O(n)."""
    out: list[float] = []
    for y in ys:  # down: each at least `gap` below the one above
        out.append(max(y, lo, out[-1] + gap) if out else max(y, lo))
    for i in range(len(out) - 1, -1, -1):  # up: none past the bottom, the gaps kept
        out[i] = min(out[i], hi if i == len(out) - 1 else out[i + 1] - gap)
    return out


def cursor(scene: Scene, x: float, y: float, places: int) -> tuple[list[cv.Shape], int | None]:
    """The crosshair at (x, y), snapped to the bar under it: its lines and axis labels, and that bar's index."""
    fr, bars = scene.frame, scene.bars
    if not bars or x < 0 or x > fr.plot_w or y < 0 or y > fr.height - TIME_H:
        return [], None
    i = fr.index_at(x, len(bars))
    cx = fr.x(i)
    paint = _paint(CROSSHAIR, 1.0, dash=[4, 3])
    shapes: list[cv.Shape] = [cv.Line(cx, 0, cx, fr.height - TIME_H, paint=paint),
                              cv.Line(0, y, fr.plot_w, y, paint=paint)]
    price = fr.pane("price")
    if price.top <= y <= scale_bottom(scene):
        shapes += _tag(fr.plot_w + 2, y, fmt(scene.price.value(y), places), LABEL_BG)
    bar_ms = bars[1].timestamp_ms - bars[0].timestamp_ms if len(bars) > 1 else None
    stamp = datetime.fromtimestamp(bars[i].timestamp_ms / 1000, tz=UTC).astimezone()
    label = stamp.strftime("%b %d" if bar_ms and bar_ms >= 86_400_000 else "%b %d %H:%M")
    w = 84.0
    left = min(max(0.0, cx - w / 2), fr.plot_w - w)
    shapes += [cv.Rect(left, fr.height - TIME_H, w, TIME_H, border_radius=3, paint=_paint(LABEL_BG, fill=True)),
               _text(left + w / 2, fr.height - TIME_H / 2, label, ft.Colors.WHITE, alignment=ft.Alignment.CENTER)]
    return shapes, i


def scale_bottom(scene: Scene) -> float:
    return scene.price.top + scene.price.height


def legend(bars: Sequence[Candle], i: int | None, places: int, amount_places: int) -> str:
    """The hovered (else the last) bar's OHLCV and its change from the previous close, at market precision.
    Each figure is its label and number with no break inside, so a narrow legend wraps between figures."""
    if not bars:
        return ""
    i = len(bars) - 1 if i is None else i
    bar = bars[i]
    before = bars[i - 1].close if i > 0 else bar.open
    change = (bar.close / before - 1) * 100 if before else 0.0
    nb = "\u00a0"  # no-break space: "O 97,458.00" never splits
    parts = [f"O{nb}{fmt(bar.open, places)}", f"H{nb}{fmt(bar.high, places)}", f"L{nb}{fmt(bar.low, places)}",
             f"C{nb}{fmt(bar.close, places)}", f"V{nb}{fmt(bar.volume, amount_places)}",
             f"{change:+.2f}%"]
    return "  ".join(parts)


def semantics_label(symbol: str, timeframe: str, bars: Sequence[Candle], places: int,
                    lines: Sequence[PriceLine] = ()) -> str:
    """What a screen reader (and a test) hears: symbol, timeframe, how many candles, the last one's OHLC and
    when it opened (UTC: the same for every reader), and the order and entry lines drawn."""
    if not bars:
        return f"{symbol} {timeframe} chart, loading"
    last = bars[-1]
    text = (f"{symbol} {timeframe} candlestick chart, {len(bars)} candles, last open {fmt(last.open, places)} "
            f"high {fmt(last.high, places)} low {fmt(last.low, places)} close {fmt(last.close, places)}, "
            f"opened {datetime.fromtimestamp(last.timestamp_ms / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC")
    if lines:
        text += "; lines: " + "; ".join(f"{line.label} at {fmt(line.price, places)}" for line in lines)
    return text
