"""Strategies: build a moving-average cross strategy (SMA or EMA, any periods, optional take-profit and
stop-loss), pick symbol, timeframe and range, backtest it with a progress bar, and read the figures, the
equity curve, the drawdown and the trades; save it, switch it on for paper trading (the backend runs it),
and for one running on paper read its live trades beside the backtest of the same period (drift). Native
charts (flet-charts), one column on a phone.

Pure: the view reads `state.backtest` (client.backtest_lab) and emits `run_backtest(draft)`,
`cancel_backtest()`, `save_strategy(draft, on)` and `strategy_action(action, id)`; the work is
`client.controllers.strategies`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import flet as ft
import flet_charts as fch

from client.backtest_lab import DriftSummary, StrategyDraft
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
        self._shown_draft = d
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
        self.save = ft.OutlinedButton("Save", icon=ft.Icons.SAVE, on_click=lambda _e: self._save(False))
        self.save_on = ft.OutlinedButton("Save and trade on paper", icon=ft.Icons.SMART_TOY,
                                         on_click=lambda _e: self._save(True))
        self.notice = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.saved = ft.Column([], spacing=4)
        self.drift_summary = ft.Text("", size=12)
        self.drift_rows = ft.Column([], spacing=2)
        self.drift = ft.Semantics(identifier="strategy-drift", container=True, visible=False, content=ft.Column([
            ft.Text("Live on paper vs backtest", size=13, weight=ft.FontWeight.W_600), self.drift_summary,
            self.drift_rows], spacing=4))
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
            ft.Row([self.save, self.save_on], wrap=True, col={"xs": 12}),
        ])
        saved = ft.Semantics(identifier="saved-strategies", container=True, content=ft.Column([
            ft.Text("Saved strategies", size=13, weight=ft.FontWeight.W_600), self.saved], spacing=4))
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
        body = ft.Column([form, self.notice, self.progress, self.stage, self.error, self.results, saved, self.drift],
                         spacing=8,
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

    def _save(self, on: bool) -> None:
        draft = self.draft()
        if draft is not None:
            self._intents.save_strategy(draft, on)

    def _fill_form(self, draft: StrategyDraft) -> None:
        self.symbol.value, self.timeframe.value, self.indicator.value = draft.symbol, draft.timeframe, draft.indicator
        self.fast.value, self.slow.value, self.days.value = str(draft.fast), str(draft.slow), str(draft.days)
        self.take_profit.value = "" if draft.take_profit_pct is None else f"{draft.take_profit_pct:g}"
        self.stop_loss.value = "" if draft.stop_loss_pct is None else f"{draft.stop_loss_pct:g}"

    def render(self, state: AppState) -> None:
        lab = state.backtest
        if lab.draft is not self._shown_draft:  # a saved strategy was loaded: show it in the form
            self._shown_draft = lab.draft
            if lab.draft != self.draft():
                self._fill_form(lab.draft)
        self.notice.value, self.notice.visible = lab.notice, bool(lab.notice)
        self.saved.controls = [self._saved_row(doc) for doc in
                               sorted(lab.saved.values(), key=lambda d: d.get("timestamp") or 0, reverse=True)] \
            or [ft.Text("None yet: build one above and save it.", size=12)]
        self._render_drift(lab.drift)
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


    def _saved_row(self, doc: dict[str, Any]) -> ft.Control:
        sid, run = doc["id"], doc.get("run") or {}
        on = bool(doc.get("enabled"))
        position = run.get("position")
        status = ("on paper" if on else "off") + (f" · holding {position['amount']:g} since "
                                                  f"{_time(position['entryMs'])}" if position else "")
        signal = run.get("lastSignal")
        if signal:
            status += f" · last signal {signal['side']} at {_time(signal['timestamp'])}"
        if run.get("error"):
            status += f" · {run['error']}"
        act = self._intents.strategy_action

        def button(label: str, action: str) -> ft.Control:
            return ft.TextButton(label, on_click=lambda _e: act(action, sid))

        return ft.Semantics(identifier=f"strategy-{sid}", container=True, content=ft.ResponsiveRow([
            ft.Column([ft.Text(doc.get("name", sid), size=13, weight=ft.FontWeight.W_500),
                       ft.Text(f"{doc.get('symbol')} · {status}", size=12, color=ft.Colors.ON_SURFACE_VARIANT)],
                      spacing=0, col={"xs": 12, "md": 6}),
            ft.Row([button("Load", "load"), button("Switch off" if on else "Trade on paper", "off" if on else "on"),
                    button("Drift", "drift"), button("Delete", "delete")], wrap=True, spacing=0,
                   col={"xs": 12, "md": 6}),
        ]))

    def _render_drift(self, drift: DriftSummary | None) -> None:
        self.drift.visible = drift is not None
        if drift is None:
            return
        self.drift_summary.value = (f"{drift.live_trades} live trades, {drift.backtest_trades} in the backtest of "
                                    f"the same period. {drift.summary}.")
        self.drift_rows.controls = [
            ft.Text(f"{r['liveEntryTime'][:16].replace('T', ' ')} live {r['liveEntryPrice']:,.2f} · backtest "
                    f"{r['backtestEntryPrice']:,.2f} ({r['entryDriftBps']:+.1f} bps, "
                    f"{r['entryDelayMs'] / 1000:+.0f} s), fees {r['feeDifference']:+.2f}", size=12)
            for r in drift.rows
        ]


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _chart(line: fch.LineChartData) -> fch.LineChart:
    return fch.LineChart(
        data_series=[line], animation=ft.Animation(duration=0), interactive=True, expand=True,
        horizontal_grid_lines=fch.ChartGridLines(color=ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE)),
        left_axis=fch.ChartAxis(label_size=56, show_min=False, show_max=False),
        bottom_axis=fch.ChartAxis(label_size=0, show_labels=False),
        right_axis=fch.ChartAxis(label_size=0, show_labels=False),
        top_axis=fch.ChartAxis(label_size=0, show_labels=False),
    )
