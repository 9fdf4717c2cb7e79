"""Strategies: build a moving-average cross strategy (SMA or EMA, any periods, optional take-profit and
stop-loss), pick symbol, timeframe and range, backtest it with a progress bar, and read the figures, the
equity curve, the drawdown and the trades. Native charts (flet-charts), one column on a phone.

Pure: the view reads `state.backtest` (client.backtest_lab) and emits `run_backtest(draft)` /
`cancel_backtest()`; the work is `client.controllers.strategies`.
"""

from __future__ import annotations

import flet as ft
import flet_charts as fch

from client.backtest_lab import StrategyDraft
from client.state import AppState
from client.theme import direction_colour
from views.common import Intents, panel, text_field

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
_FIGURES = (("totalReturn", "Total return", "%"), ("maxDrawdown", "Max drawdown", "%"), ("sharpe", "Sharpe", ""),
            ("winRate", "Win rate", "%"), ("trades", "Trades", ""), ("profitFactor", "Profit factor", ""))


class StrategiesView:
    TOPICS = frozenset({"strategies", "watchlist"})

    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        d = StrategyDraft()
        self.symbol = ft.Dropdown(label="Symbol", dense=True, width=150, options=[], value=d.symbol)
        self.timeframe = ft.Dropdown(label="Timeframe", dense=True, width=110, value=d.timeframe,
                                     options=[ft.DropdownOption(key=t, text=t) for t in TIMEFRAMES])
        self.indicator = ft.Dropdown(label="Average", dense=True, width=110, value=d.indicator,
                                     options=[ft.DropdownOption(key="sma", text="SMA"),
                                              ft.DropdownOption(key="ema", text="EMA")])
        self.fast = text_field(label="Fast", dense=True, width=80, value=str(d.fast))
        self.slow = text_field(label="Slow", dense=True, width=80, value=str(d.slow))
        self.take_profit = text_field(label="Take profit %", dense=True, width=120, value="")
        self.stop_loss = text_field(label="Stop loss %", dense=True, width=110, value="")
        self.days = text_field(label="Days of history", dense=True, width=130, value=str(d.days))
        self.run = ft.FilledButton("Backtest", icon=ft.Icons.PLAY_ARROW, on_click=lambda _e: self._submit())
        self.cancel = ft.OutlinedButton("Cancel", on_click=lambda _e: self._intents.cancel_backtest(), visible=False)
        self.progress = ft.ProgressBar(value=0, visible=False)
        self.stage = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.error = ft.Text("", color=ft.Colors.ERROR, visible=False)
        self.figures = {key: ft.Text("—", size=17, weight=ft.FontWeight.BOLD) for key, _, _ in _FIGURES}
        tiles: list[ft.Control] = [
            ft.Container(ft.Column([ft.Text(label, size=12, color=ft.Colors.ON_SURFACE_VARIANT), self.figures[key]],
                                   spacing=2), padding=ft.Padding.all(6), col={"xs": 6, "sm": 4, "md": 2})
            for key, label, _ in _FIGURES
        ]
        self.equity_line = fch.LineChartData(points=[], stroke_width=2, point=False, color=ft.Colors.TEAL_300)
        self.drawdown_line = fch.LineChartData(points=[], stroke_width=1.5, point=False, color=ft.Colors.RED_300,
                                               below_line_bgcolor=ft.Colors.with_opacity(0.2, ft.Colors.RED_300))
        self.equity = _chart(self.equity_line)
        self.drawdown = _chart(self.drawdown_line)
        self.trades = ft.Column([], spacing=2, scroll=ft.ScrollMode.AUTO)
        form = ft.ResponsiveRow([
            ft.Row([self.symbol, self.timeframe, self.days], wrap=True, col={"xs": 12, "md": 6}),
            ft.Row([self.indicator, self.fast, self.slow], wrap=True, col={"xs": 12, "md": 6}),
            ft.Row([self.take_profit, self.stop_loss, self.run, self.cancel], wrap=True, col={"xs": 12}),
        ])
        self.results = ft.Column([
            ft.ResponsiveRow(tiles),
            ft.ResponsiveRow([
                ft.Semantics(identifier="backtest-equity", container=True, col={"xs": 12, "md": 7},
                             content=ft.Column([ft.Text("Equity", size=13, weight=ft.FontWeight.W_600),
                                                ft.Container(self.equity, height=180)], spacing=4)),
                ft.Semantics(identifier="backtest-drawdown", container=True, col={"xs": 12, "md": 5},
                             content=ft.Column([ft.Text("Drawdown %", size=13, weight=ft.FontWeight.W_600),
                                                ft.Container(self.drawdown, height=180)], spacing=4)),
            ]),
            ft.Text("Trades (newest first)", size=13, weight=ft.FontWeight.W_600),
            ft.Semantics(identifier="backtest-trades", container=True,
                         content=ft.Container(self.trades, height=220)),
        ], spacing=8, visible=False)
        body = ft.Column([form, self.progress, self.stage, self.error, self.results], spacing=8,
                         scroll=ft.ScrollMode.AUTO, expand=True)
        self.control = panel("Strategies", body, identifier="strategies", expand=True)

    def draft(self) -> StrategyDraft | None:
        """The form as a draft, or None (with the mistake shown) when a field is not a number."""
        try:
            def pct(field: ft.TextField) -> float | None:
                text = (field.value or "").strip()
                return float(text) if text else None

            return StrategyDraft(symbol=self.symbol.value or "BTC/USDT", timeframe=self.timeframe.value or "1h",
                                 indicator=self.indicator.value or "sma", fast=int(self.fast.value or 0),
                                 slow=int(self.slow.value or 0), take_profit_pct=pct(self.take_profit),
                                 stop_loss_pct=pct(self.stop_loss), days=int(self.days.value or 0))
        except ValueError:
            self.error.value, self.error.visible = "Periods and days are whole numbers; percents are numbers.", True
            return None

    def _submit(self) -> None:
        draft = self.draft()
        if draft is not None:
            self._intents.run_backtest(draft)

    def render(self, state: AppState) -> None:
        lab = state.backtest
        self.symbol.options = [ft.DropdownOption(key=s, text=s) for s in state.watchlist]
        if self.symbol.value not in state.watchlist and state.watchlist:
            self.symbol.value = state.selected if state.selected in state.watchlist else state.watchlist[0]
        self.run.disabled = lab.running
        self.cancel.visible = lab.running
        self.progress.visible = lab.running or lab.progress > 0
        self.progress.value = lab.progress
        self.stage.value = lab.stage
        self.error.value, self.error.visible = lab.error or "", bool(lab.error)
        result = lab.result
        self.results.visible = result is not None
        if result is None:
            return
        for key, _, unit in _FIGURES:
            value = result.stats.get(key)
            text = self.figures[key]
            text.value = "—" if value is None else (f"{value:,.2f}{unit}" if isinstance(value, float) else f"{value}")
            text.color = direction_colour((value > 0) - (value < 0)) if key == "totalReturn" and value else None
        self.equity_line.points = [fch.LineChartDataPoint(i, v) for i, (_, v) in enumerate(result.equity)]
        self.drawdown_line.points = [fch.LineChartDataPoint(i, v) for i, (_, v) in enumerate(result.drawdown)]
        self.trades.controls = [
            ft.Text(f"{t['entryTime'][:16].replace('T', ' ')} → {t['exitTime'][:16].replace('T', ' ')}  "
                    f"{t['entryPrice']:,.2f} → {t['exitPrice']:,.2f}  {t['returnPct']:+.2f}%  {t['exitReason']}",
                    size=12, color=direction_colour((t["pnl"] > 0) - (t["pnl"] < 0)))
            for t in result.trades
        ] or [ft.Text("No trades: the strategy never entered.", size=12)]


def _chart(line: fch.LineChartData) -> fch.LineChart:
    return fch.LineChart(
        data_series=[line], animation=ft.Animation(duration=0), interactive=True, expand=True,
        horizontal_grid_lines=fch.ChartGridLines(color=ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE)),
        left_axis=fch.ChartAxis(label_size=56, show_min=False, show_max=False),
        bottom_axis=fch.ChartAxis(label_size=0, show_labels=False),
        right_axis=fch.ChartAxis(label_size=0, show_labels=False),
        top_axis=fch.ChartAxis(label_size=0, show_labels=False),
    )
