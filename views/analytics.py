"""Analytics: P&L, realised/unrealised, fees and drawdown as numbers, P&L over time and by symbol as
native charts (flet-charts draw on every platform, phones included), and an "Export report" button.

The figures come from `services.analytics` over `state.orders`, marked at `state.quotes`; the view
recomputes them only when the fills or the marks of held symbols moved.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import flet as ft
import flet_charts as fch

from client.state import AppState
from client.theme import direction_colour
from services.analytics import Analytics, analyse
from views.common import panel

MAX_CURVE_POINTS = 300  # a phone-sized chart shows no more; the HTML report has every point


class AnalyticsView:
    TOPICS = frozenset({"orders", "quotes"})  # the AppState topics this view reads
    def __init__(self, on_export: Callable[[], object] = lambda: None) -> None:
        self._on_export = on_export
        self._key: tuple[object, ...] | None = None
        self.analytics: Analytics | None = None
        self.figures: dict[str, ft.Text] = {
            name: ft.Text("—", size=18, weight=ft.FontWeight.BOLD)
            for name in ("pnl", "realised", "unrealised", "fees", "drawdown")
        }
        labels = {"pnl": "P&L", "realised": "Realised", "unrealised": "Unrealised", "fees": "Fees",
                  "drawdown": "Max drawdown"}
        tiles: list[ft.Control] = [
            ft.Semantics(
                identifier=f"analytics-{name}",
                content=ft.Container(
                    ft.Column([ft.Text(labels[name], size=12, color=ft.Colors.ON_SURFACE_VARIANT), text], spacing=2),
                    padding=ft.Padding.all(8),
                ),
                col={"xs": 6, "sm": 4, "md": 2.4},
            )
            for name, text in self.figures.items()
        ]
        self.empty = ft.Text("No filled orders yet: P&L, fees and drawdown appear after your first fill.",
                             size=13, color=ft.Colors.ON_SURFACE_VARIANT)
        grid = fch.ChartGridLines(color=ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE))
        self.curve_line = fch.LineChartData(points=[], stroke_width=2, curved=False, point=False,
                                            color=ft.Colors.TEAL_300)
        self.curve = fch.LineChart(
            data_series=[self.curve_line], animation=ft.Animation(duration=0), interactive=True, expand=True,
            horizontal_grid_lines=grid,
            left_axis=fch.ChartAxis(label_size=56, show_min=False, show_max=False),
            bottom_axis=fch.ChartAxis(label_size=0, show_labels=False),
            right_axis=fch.ChartAxis(label_size=0, show_labels=False),
            top_axis=fch.ChartAxis(label_size=0, show_labels=False),
        )
        self.bars = fch.BarChart(
            groups=[], animation=ft.Animation(duration=0), interactive=True, expand=True,
            horizontal_grid_lines=grid, left_axis=fch.ChartAxis(label_size=56, show_min=False, show_max=False),
            bottom_axis=fch.ChartAxis(label_size=28),
            right_axis=fch.ChartAxis(label_size=0, show_labels=False),
            top_axis=fch.ChartAxis(label_size=0, show_labels=False),
        )
        self.export = ft.OutlinedButton("Export report", icon=ft.Icons.DOWNLOAD,
                                        on_click=lambda _e: self._on_export(),
                                        tooltip="An interactive HTML report that opens offline")
        charts: list[ft.Control] = [
            ft.Semantics(identifier="analytics-equity", container=True, col={"xs": 12, "md": 7},
                         content=ft.Column([ft.Text("P&L after each fill, then now", size=13, weight=ft.FontWeight.W_600),
                                            ft.Container(self.curve, height=200)], spacing=4)),
            ft.Semantics(identifier="analytics-by-symbol", container=True, col={"xs": 12, "md": 5},
                         content=ft.Column([ft.Text("P&L by symbol", size=13, weight=ft.FontWeight.W_600),
                                            ft.Container(self.bars, height=200)], spacing=4)),
        ]
        self.charts = ft.ResponsiveRow(charts)
        body = ft.Column([self.empty, ft.ResponsiveRow(tiles), self.charts], spacing=10,
                         scroll=ft.ScrollMode.AUTO, expand=True)
        self.control = panel("Analytics", body, identifier="analytics", expand=True, actions=[self.export])

    def render(self, state: AppState) -> None:
        marks = {s: q.last for s, q in state.quotes.items()}
        key = (tuple((o.get("id"), o.get("filled"), len(o.get("trades") or ())) for o in state.orders.values()),
               tuple(sorted(marks.items())))
        if key == self._key:
            return
        self._key = key
        self.analytics = analytics = analyse(state.orders.values(), marks)
        has_fills = bool(analytics.fills)
        self.empty.visible = not has_fills
        self.charts.visible = has_fills
        values = {"pnl": analytics.pnl, "realised": analytics.realised, "unrealised": analytics.unrealised,
                  "fees": analytics.fees, "drawdown": analytics.max_drawdown}
        for name, value in values.items():
            text = self.figures[name]
            signed = name in ("pnl", "realised", "unrealised")
            text.value = _money(value, signed=signed) if has_fills else "—"
            text.color = direction_colour((value > 0) - (value < 0)) if signed and has_fills else None
        self._draw_curve(analytics)
        self._draw_bars(analytics)

    def _draw_curve(self, analytics: Analytics) -> None:
        # One step per fill, not a time axis: a week between two trades would squash every other step.
        points = analytics.equity[-MAX_CURVE_POINTS:]
        self.curve_line.points = [fch.LineChartDataPoint(i, float(p.pnl)) for i, p in enumerate(points)]

    def _draw_bars(self, analytics: Analytics) -> None:
        self.bars.groups = [
            fch.BarChartGroup(x=i, rods=[fch.BarChartRod(from_y=0, to_y=float(s.total), width=14,
                                                         border_radius=ft.BorderRadius.all(2),
                                                         color=direction_colour((s.total > 0) - (s.total < 0)),
                                                         tooltip=f"{s.symbol} {_money(s.total, signed=True)}")])
            for i, s in enumerate(analytics.by_symbol)
        ]
        self.bars.bottom_axis.labels = [
            fch.ChartAxisLabel(value=i, label=ft.Text(s.symbol.split("/")[0], size=11))
            for i, s in enumerate(analytics.by_symbol)
        ]


def _money(value: Decimal, *, signed: bool = False) -> str:
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:+,}" if signed and cents else f"{cents:,}"
