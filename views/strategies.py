"""Strategies: build a strategy without code (buy and sell rules as rows of conditions over the signal
engine's indicators, joined by all / any; exits: opposite signal, take-profit, stop-loss, trailing stop,
time in trade; sizing, fee, slippage, long or long/short; presets for an SMA cross and an EMA cross with an
RSI filter), pick symbol, timeframe and range, backtest it with a progress bar, and read the figures, the
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

from client.backtest_lab import OPERATORS, Condition, DriftSummary, Join, StrategyDraft, check_row_operand
from client.state import AppState
from client.theme import direction_colour
from services.backtest import StrategyError
from services.signals.operands import REGISTRY, parse_operand
from views.common import Intents, panel, text_field

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
_FIGURES = (("totalReturn", "Total return", "%"), ("maxDrawdown", "Max drawdown", "%"), ("sharpe", "Sharpe", ""),
            ("winRate", "Win rate", "%"), ("trades", "Trades", ""), ("profitFactor", "Profit factor", ""))
_SIZING = (("equityPct", "% of equity"), ("quote", "Quote value"), ("amount", "Fixed amount"))
_SIZE_LABEL = {"equityPct": "Percent", "quote": "Quote value", "amount": "Base amount"}
_POSITIONS = (("long", "Long only"), ("long_short", "Long / short"), ("short", "Short only"))
PAPER_LONG_ONLY = ("Paper trading runs long-only strategies: this one can be backtested and saved, "
                   "not switched on for paper")


class StrategiesView:
    TOPICS = frozenset({"strategies", "watchlist"})

    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        d = StrategyDraft()
        # The lab's draft last put into the form; None until the first render, which adopts it without
        # filling the form (a trader may have typed already: the screen is built before it is first shown).
        self._shown_draft: StrategyDraft | None = None
        self.symbol = ft.Dropdown(label="Symbol", dense=True, width=150, options=[], value=d.symbol,
                                  on_select=self._changed)
        self.timeframe = ft.Dropdown(label="Timeframe", dense=True, width=110, value=d.timeframe, on_select=self._changed,
                                     options=[ft.DropdownOption(key=t, text=t) for t in TIMEFRAMES])
        self.presets = ft.Row([ft.Text("Presets", size=13, weight=ft.FontWeight.W_600),
                               ft.TextButton("SMA cross", on_click=lambda _e: self._preset(StrategyDraft.cross())),
                               ft.TextButton("EMA cross + RSI filter",
                                             on_click=lambda _e: self._preset(StrategyDraft.ema_rsi()))], wrap=True)
        self.buy = RulesEditor("Buy when", d.buy, d.buy_join, self._changed)
        self.sell = RulesEditor("Sell when", d.sell, d.sell_join, self._changed)
        self.exit_signal = ft.Switch(label="Opposite signal closes", value=d.exit_signal, on_change=self._changed)
        self.take_profit = text_field(label="Take profit %", on_change=self._changed, dense=True, width=135, value="")
        self.stop_loss = text_field(label="Stop loss %", on_change=self._changed, dense=True, width=125, value="")
        self.trailing = text_field(label="Trailing stop %", on_change=self._changed, dense=True, width=145, value="")
        self.time_in_trade = text_field(label="Time in trade", on_change=self._changed, dense=True, width=135, value="")
        self.time_unit = ft.Dropdown(dense=True, width=100, value=d.time_unit, on_select=self._changed, options=[
            ft.DropdownOption(key="bars", text="bars"), ft.DropdownOption(key="hours", text="hours")])
        self.sizing = ft.Dropdown(label="Size", dense=True, width=150, value=d.sizing,
                                  options=[ft.DropdownOption(key=k, text=t) for k, t in _SIZING],
                                  on_select=lambda _e: self._sizing_changed())
        self.size = text_field(label=_SIZE_LABEL[d.sizing], on_change=self._changed, dense=True, width=110, value=f"{d.size:g}")
        self.fee = text_field(label="Fee %", on_change=self._changed, dense=True, width=80, value="0")
        self.slippage = text_field(label="Slippage %", on_change=self._changed, dense=True, width=100, value="0")
        self.positions = ft.Dropdown(label="Positions", dense=True, width=150, value=d.positions,
                                     options=[ft.DropdownOption(key=k, text=t) for k, t in _POSITIONS],
                                     on_select=lambda _e: self._positions_changed())
        self.positions_note = ft.Text(PAPER_LONG_ONLY, size=12, color=ft.Colors.TERTIARY, visible=False)
        self.days = text_field(label="Days of history", on_change=self._changed, dense=True, width=130, value=str(d.days))
        self.run = ft.FilledButton("Backtest", icon=ft.Icons.PLAY_ARROW, on_click=lambda _e: self._submit())
        self.cancel = ft.OutlinedButton("Cancel", on_click=lambda _e: self._intents.cancel_backtest(), visible=False)
        self.save = ft.OutlinedButton("Save", icon=ft.Icons.SAVE, on_click=lambda _e: self._save(False))
        self.save_on = ft.OutlinedButton("Save and trade on paper", icon=ft.Icons.SMART_TOY,
                                         on_click=lambda _e: self._save(True))
        self.notice = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.saved = ft.Column([], spacing=4)
        self._rows: dict[str, SavedStrategyRow] = {}
        self._none_saved = ft.Text("None yet: build one above and save it.", size=12)
        self.drift_summary = ft.Text("", size=12)
        self.drift_rows = ft.Column([], spacing=2)
        self.drift = ft.Semantics(identifier="strategy-drift", container=True, visible=False, content=ft.Column([
            ft.Text("Live on paper vs backtest", size=13, weight=ft.FontWeight.W_600), self.drift_summary,
            self.drift_rows], spacing=4))
        self.progress = ft.ProgressBar(value=0, visible=False)
        self.stage = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.error = ft.Text("", color=ft.Colors.ERROR, visible=False)
        # What the form says, as the saved list will name it: kept in step with every keystroke.
        self.summary_text = ft.Text(d.name, size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.summary = ft.Semantics(identifier="strategy-summary", container=True, content=self.summary_text)
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
            ft.Container(self.presets, col={"xs": 12}),
            ft.Container(self.buy.control, col={"xs": 12, "md": 6}),
            ft.Container(self.sell.control, col={"xs": 12, "md": 6}),
            ft.Semantics(identifier="strategy-exits", container=True, col={"xs": 12}, content=ft.Column([
                ft.Row([self.exit_signal, self.take_profit, self.stop_loss, self.trailing, self.time_in_trade,
                        self.time_unit], wrap=True),
                ft.Row([self.sizing, self.size, self.fee, self.slippage, self.positions], wrap=True),
                self.positions_note], spacing=8)),
            ft.Container(self.summary, col={"xs": 12}),
            ft.Row([self.run, self.cancel], wrap=True, col={"xs": 12}),
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
        """The form as a draft, or None with the mistake shown (the parser's sentence for a wrong operand)."""
        def number(field: ft.TextField, what: str) -> float | None:
            text = (field.value or "").strip()
            try:
                return float(text) if text else None
            except ValueError:
                raise StrategyError(f"{what} must be a number, not '{text}'") from None

        try:
            buy, buy_join = self.buy.value()
            sell, sell_join = self.sell.value()
            wait = number(self.time_in_trade, "Time in trade")
            if wait is not None and (not wait.is_integer() or wait <= 0):
                raise StrategyError("Time in trade must be a whole number of bars or hours")
            days = number(self.days, "Days of history")
            if days is None or not days.is_integer() or days <= 0:
                raise StrategyError("Days of history must be a whole number above 0")
            draft = StrategyDraft(
                symbol=self.symbol.value or "BTC/USDT", timeframe=self.timeframe.value or "1h", buy=buy, sell=sell,
                buy_join=buy_join, sell_join=sell_join, exit_signal=bool(self.exit_signal.value),
                take_profit_pct=number(self.take_profit, "Take profit %"),
                stop_loss_pct=number(self.stop_loss, "Stop loss %"),
                trailing_stop_pct=number(self.trailing, "Trailing stop %"),
                time_in_trade=None if wait is None else int(wait),
                time_unit="hours" if self.time_unit.value == "hours" else "bars",
                sizing=_choice(self.sizing.value, ("equityPct", "quote", "amount")),
                size=number(self.size, "The size") or 0.0,
                fee=(number(self.fee, "Fee %") or 0.0) / 100, slippage=(number(self.slippage, "Slippage %") or 0.0) / 100,
                positions=_choice(self.positions.value, ("long", "long_short", "short")), days=int(days))
            draft.check()
        except StrategyError as exc:
            self.error.value, self.error.visible = str(exc), True
            _update(self.error)
            return None
        if self.error.visible:
            self.error.visible = False
            _update(self.error)
        return draft

    def _changed(self, _e: Any = None) -> None:
        """Any field changed: the summary names the strategy, or the mistake shows."""
        draft = self.draft()
        if draft is not None:
            self.summary_text.value = draft.name
            _update(self.summary_text)

    def _preset(self, preset: StrategyDraft) -> None:
        days = (self.days.value or "").strip()
        market = StrategyDraft(symbol=self.symbol.value or "BTC/USDT", timeframe=self.timeframe.value or "1h",
                               days=int(days) if days.isdigit() else StrategyDraft().days)
        self._fill_form(preset.with_market(market))  # the rules and exits change; the market and range stay
        _update(self.control)

    def _sizing_changed(self) -> None:
        self.size.label = _SIZE_LABEL[_choice(self.sizing.value, tuple(_SIZE_LABEL))]
        _update(self.size)
        self._changed()

    def _positions_changed(self) -> None:
        self.positions_note.visible = self.positions.value != "long"
        _update(self.positions_note)
        self._changed()

    def _submit(self) -> None:
        draft = self.draft()
        if draft is not None:
            self._intents.run_backtest(draft)

    def _save(self, on: bool) -> None:
        draft = self.draft()
        if draft is None:
            return
        if on and draft.positions != "long":
            self.error.value, self.error.visible = PAPER_LONG_ONLY, True
            _update(self.error)
            return
        self._intents.save_strategy(draft, on)

    def _fill_form(self, draft: StrategyDraft) -> None:
        def pct(value: float | None) -> str:
            return "" if value is None else f"{value:g}"

        self.symbol.value, self.timeframe.value, self.days.value = draft.symbol, draft.timeframe, str(draft.days)
        self.buy.show(draft.buy, draft.buy_join)
        self.sell.show(draft.sell, draft.sell_join)
        self.exit_signal.value = draft.exit_signal
        self.take_profit.value, self.stop_loss.value = pct(draft.take_profit_pct), pct(draft.stop_loss_pct)
        self.trailing.value = pct(draft.trailing_stop_pct)
        self.time_in_trade.value = "" if draft.time_in_trade is None else str(draft.time_in_trade)
        self.time_unit.value, self.sizing.value, self.size.value = draft.time_unit, draft.sizing, f"{draft.size:g}"
        self.size.label = _SIZE_LABEL[draft.sizing]
        self.fee.value, self.slippage.value = f"{draft.fee * 100:g}", f"{draft.slippage * 100:g}"
        self.positions.value = draft.positions
        self.positions_note.visible = draft.positions != "long"
        self.summary_text.value = draft.name

    def render(self, state: AppState) -> None:
        lab = state.backtest
        if self._shown_draft is None:
            self._shown_draft = lab.draft
        elif lab.draft is not self._shown_draft:  # a saved strategy was loaded: show it in the form
            self._shown_draft = lab.draft
            if lab.draft != self.draft():
                self._fill_form(lab.draft)
        self.notice.value, self.notice.visible = lab.notice, bool(lab.notice)
        self._render_saved(lab.saved)
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


    def _render_saved(self, saved: dict[str, dict[str, Any]]) -> None:
        """One row per saved strategy, kept from render to render and changed in place. A row rebuilt on each
        change (the runner writes its state into the document right after a strategy is switched on) has new
        buttons: a tap on the one on screen then reached a control already gone, and was dropped."""
        docs = sorted(saved.values(), key=lambda d: d.get("timestamp") or 0, reverse=True)
        self._rows = {d["id"]: self._rows.get(d["id"]) or SavedStrategyRow(d["id"], self._intents) for d in docs}
        for doc in docs:
            self._rows[doc["id"]].show(doc)
        self.saved.controls = [row.control for row in self._rows.values()] or [self._none_saved]

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


class SavedStrategyRow:
    """A saved strategy's row: its name, status and buttons. The on/off button does what its label says when
    it is tapped (the latest document shown), so the row can live across renders."""

    def __init__(self, strategy_id: str, intents: Intents) -> None:
        self._on = False
        act = intents.strategy_action

        def button(label: str, action: str) -> ft.TextButton:
            return ft.TextButton(label, on_click=lambda _e: act(action, strategy_id))

        self.name = ft.Text("", size=13, weight=ft.FontWeight.W_500)
        self.status = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.switch = ft.TextButton("Trade on paper", on_click=lambda _e: act("off" if self._on else "on", strategy_id))
        self.control = ft.Semantics(identifier=f"strategy-{strategy_id}", container=True, content=ft.ResponsiveRow([
            ft.Column([self.name, self.status], spacing=0, col={"xs": 12, "md": 6}),
            ft.Row([button("Load", "load"), self.switch, button("Drift", "drift"), button("Delete", "delete")],
                   wrap=True, spacing=0, col={"xs": 12, "md": 6}),
        ]))

    def show(self, doc: dict[str, Any]) -> None:
        run = doc.get("run") or {}
        self._on = bool(doc.get("enabled"))
        position = run.get("position")
        status = ("on paper" if self._on else "off") + (f" · holding {position['amount']:g} since "
                                                        f"{_time(position['entryMs'])}" if position else "")
        signal = run.get("lastSignal")
        if signal:
            status += f" · last signal {signal['side']} at {_time(signal['timestamp'])}"
        if run.get("error"):
            status += f" · {run['error']}"
        self.name.value = doc.get("name", doc["id"])
        self.status.value = f"{doc.get('symbol')} · {status}"
        self.switch.content = "Switch off" if self._on else "Trade on paper"


class OperandPicker:
    """One operand: an indicator of the engine's registry with its parameters and timeframe, a price field,
    or a number. `text` is the operand as the strategy JSON writes it (`sma(50, 1h)`, `close`, `30`)."""

    def __init__(self, label: str, on_change: Any) -> None:
        def picked(e: Any) -> None:
            self._relabel()
            _update(self.args)
            _update(self.timeframe)
            on_change(e)

        self.name = ft.Dropdown(label=label, dense=True, width=150, value="sma", options=_operand_options(),
                                on_select=picked)
        self.args = text_field(label="Period(s)", dense=True, width=110, value="", on_change=on_change)
        self.timeframe = ft.Dropdown(label="On", dense=True, width=110, value=_OWN,
                                     options=[ft.DropdownOption(key=_OWN, text="chart")]
                                     + [ft.DropdownOption(key=t, text=t) for t in TIMEFRAMES], on_select=on_change)
        self.controls: list[ft.Control] = [self.name, self.args, self.timeframe]

    def _relabel(self) -> None:
        """A number has a value and no timeframe; an indicator its periods (blank: the registry's defaults)."""
        number = self.name.value == _NUMBER
        definition = REGISTRY.get((self.name.value or "").partition(".")[0])
        self.args.label = "Value" if number else ", ".join(p.name.replace("_", " ").capitalize()
                                                         for p in definition.params) if definition and \
            definition.params else "Timeframe only"
        self.args.disabled = not number and not (definition and definition.params)
        self.timeframe.visible = not number and (definition is None or definition.timeframed)

    @property
    def text(self) -> str:
        name, args = self.name.value or "", (self.args.value or "").strip()
        if name == _NUMBER:
            return args
        base, _, output = name.partition(".")
        parts = [a for a in (args, "" if self.timeframe.value in (None, _OWN) else self.timeframe.value) if a]
        return (f"{base}({', '.join(parts)})" if parts else base) + (f".{output}" if output else "")

    def show(self, text: str) -> None:
        try:
            float(text)
            self.name.value, self.args.value, self.timeframe.value = _NUMBER, text, _OWN
            self._relabel()
            return
        except ValueError:
            pass
        try:
            spec = parse_operand(text)
        except ValueError:  # not expected from a saved strategy; shown as typed so the row says why
            self.name.value, self.args.value, self.timeframe.value = "sma", text, _OWN
            self._relabel()
            return
        default = spec.definition.outputs[0]
        self.name.value = spec.name + ("" if spec.output == default else f".{spec.output}")
        self.args.value = ", ".join(str(int(p)) if float(p).is_integer() else f"{p:g}" for p in spec.params)
        self.timeframe.value = spec.timeframe or _OWN
        self._relabel()


class ConditionRow:
    """A row of the form: left operand, comparison, right operand, a remove button, and the parser's
    sentence under it while an operand is wrong."""

    def __init__(self, condition: Condition, on_remove: Any, changed: Any) -> None:
        def edited(_e: Any) -> None:
            if self.validate() is None:
                changed()

        self.hysteresis = condition.hysteresis
        self.left = OperandPicker("Indicator", edited)
        self.op = ft.Dropdown(label="", dense=True, width=190, value=condition.op, on_select=edited,
                              options=[ft.DropdownOption(key=k, text=v) for k, v in OPERATORS.items()])
        self.right = OperandPicker("Than", edited)
        self.left.show(condition.left)
        self.right.show(condition.right)
        self.error = ft.Text("", size=12, color=ft.Colors.ERROR, visible=False)
        remove = ft.IconButton(ft.Icons.REMOVE_CIRCLE_OUTLINE, tooltip="Remove this condition",
                               on_click=lambda _e: on_remove(self))
        self.control = ft.Column([ft.Row([*self.left.controls, self.op, *self.right.controls, remove], wrap=True,
                                         spacing=6, run_spacing=6), self.error], spacing=2)
        self.validate()

    def condition(self) -> Condition:
        return Condition(self.left.text, self.op.value or "cross_above", self.right.text, self.hysteresis)

    def validate(self) -> str | None:
        """The first wrong operand's sentence (shown under the row), or None."""
        mistake = check_row_operand(self.left.text) or check_row_operand(self.right.text)
        self.error.value, self.error.visible = mistake or "", mistake is not None
        _update(self.error)
        return mistake


class RulesEditor:
    """The buy (or sell) side: condition rows joined by all / any, and a button adding a row."""

    def __init__(self, title: str, rows: tuple[Condition, ...], join: str, changed: Any) -> None:
        self._changed = changed
        self.join = ft.Dropdown(dense=True, width=170, value=join, on_select=lambda _e: changed(), options=[
            ft.DropdownOption(key="all", text="all of these"), ft.DropdownOption(key="any", text="any of these")])
        self.rows: list[ConditionRow] = []
        self.column = ft.Column([], spacing=6)
        add = ft.TextButton("Add condition", icon=ft.Icons.ADD,
                            on_click=lambda _e: self._add(Condition("close", "gt", "0")))
        self.control = ft.Column([ft.Row([ft.Text(title, size=13, weight=ft.FontWeight.W_600), self.join],
                                         wrap=True), self.column, add], spacing=4)
        self.show(rows, join)

    def show(self, rows: tuple[Condition, ...], join: str) -> None:
        self.join.value = join
        self.rows = [ConditionRow(c, self._remove, self._changed) for c in rows]
        self.column.controls = [r.control for r in self.rows]

    def value(self) -> tuple[tuple[Condition, ...], Join]:
        return tuple(r.condition() for r in self.rows), "any" if self.join.value == "any" else "all"

    def _add(self, condition: Condition) -> None:
        self.rows.append(ConditionRow(condition, self._remove, self._changed))
        self.column.controls = [r.control for r in self.rows]
        _update(self.column)
        self._changed()

    def _remove(self, row: ConditionRow) -> None:
        self.rows.remove(row)
        self.column.controls = [r.control for r in self.rows]
        _update(self.column)
        self._changed()


def _update(control: ft.Control) -> None:
    """Show a change the form made itself (a row added, a mistake typed); nothing before it is on a page."""
    try:
        control.update()
    except RuntimeError:
        pass


_NUMBER, _OWN = "number", "own"


def _operand_options() -> list[ft.DropdownOption]:
    """Every indicator output of the registry (a control has one parent: a list per dropdown)."""
    return [ft.DropdownOption(key=_NUMBER, text="a number")] + [
        ft.DropdownOption(key=name if k == 0 else f"{name}.{out}", text=d.title if k == 0 else f"{d.title} {out}")
        for name, d in REGISTRY.items() for k, out in enumerate(d.outputs)]


def _choice(value: str | None, allowed: tuple[Any, ...]) -> Any:
    return value if value in allowed else allowed[0]


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
