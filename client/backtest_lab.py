"""The Strategies screen's state: the strategy being built (`StrategyDraft`, the general form: entry and
exit rules as rows of conditions, exits, sizing, fees, direction), the backtest's progress and its results
(already thinned for a phone-sized chart), the trader's saved strategies (kept in step by the live state)
and the drift report of one running on paper. Written by `StrategiesController`, read by `StrategiesView`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from services.backtest import StrategyError, check_operand, parse_strategy
from services.backtest.strategy import canonical_condition

MAX_POINTS = 400  # a phone-wide chart shows no more; the HTML report keeps every point
# The comparisons a row offers, in the rule language's words (services/signals/rules.py).
OPERATORS: dict[str, str] = {"cross_above": "crosses above", "cross_below": "crosses below", "gt": "is above",
                             "lt": "is below", "breakout_above": "breaks out above",
                             "breakout_below": "breaks out below"}
_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(m|h|d|w)$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10_080}
_AVERAGE = re.compile(r"^(sma|ema)\((\d+)\)$")
Join = Literal["all", "any"]


@dataclass(frozen=True, slots=True)
class Condition:
    """One row: `left` `op` `right`. Operands are the candle operand texts (`sma(50, 1h)`, `rsi(14)`,
    `close`) or a number written as text ("30")."""

    left: str
    op: str  # a key of OPERATORS
    right: str
    hysteresis: float | None = None  # kept from a saved strategy; the form does not edit it

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "left": _operand_json(self.left), "right": _operand_json(self.right)}
        if self.hysteresis is not None:
            out["hysteresis"] = self.hysteresis
        return out

    @property
    def words(self) -> str:
        return f"{self.left} {OPERATORS.get(self.op, self.op)} {self.right}"


def _operand_json(text: str) -> str | float:
    """A number stays a number in the JSON (30, not "30")."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _operand_text(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("not an operand")
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def check_row_operand(text: str) -> str | None:
    """None when `text` is a number or a candle operand, else the parser's own sentence: what the row shows
    as the trader types."""
    text = text.strip()
    if not text:
        return "Pick an indicator or write a number"
    try:
        float(text)
        return None
    except ValueError:
        pass
    try:
        check_operand(text)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class StrategyDraft:
    """What the trader builds: `buy` and `sell` rows (joined by `buy_join` / `sell_join`: all or any), exits,
    sizing, fee and slippage (fractions), positions, and the market and range to test on. `document()` is the
    strategy JSON (services/backtest/README.md); `from_saved()` reads one back. The default is the SMA 50/200
    cross."""

    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    buy: tuple[Condition, ...] = (Condition("sma(50)", "cross_above", "sma(200)"),)
    sell: tuple[Condition, ...] = (Condition("sma(50)", "cross_below", "sma(200)"),)
    buy_join: Join = "all"
    sell_join: Join = "all"
    exit_signal: bool = True
    take_profit_pct: float | None = None
    stop_loss_pct: float | None = None
    trailing_stop_pct: float | None = None
    time_in_trade: int | None = None  # in `time_unit`s
    time_unit: Literal["bars", "hours"] = "bars"
    sizing: Literal["equityPct", "quote", "amount"] = "equityPct"
    size: float = 100.0
    fee: float = 0.0  # fraction of traded value (0.001 = 0.1%)
    slippage: float = 0.0  # fraction of price
    positions: Literal["long", "long_short", "short"] = "long"
    days: int = 730

    @staticmethod
    def cross(indicator: str = "sma", fast: int = 50, slow: int = 200, **others: Any) -> StrategyDraft:
        """The moving-average cross preset: buy when `fast` crosses above `slow`, sell when it crosses below."""
        a, b = f"{indicator}({fast})", f"{indicator}({slow})"
        return StrategyDraft(buy=(Condition(a, "cross_above", b),), sell=(Condition(a, "cross_below", b),), **others)

    @staticmethod
    def ema_rsi(**others: Any) -> StrategyDraft:
        """The EMA cross + RSI filter preset: buy when EMA 12 crosses above EMA 26 while RSI 14 is above 50,
        sell when EMA 12 crosses below EMA 26."""
        return StrategyDraft(buy=(Condition("ema(12)", "cross_above", "ema(26)"), Condition("rsi(14)", "gt", "50")),
                             sell=(Condition("ema(12)", "cross_below", "ema(26)"),), **others)

    def with_market(self, other: StrategyDraft) -> StrategyDraft:
        """This draft's rules and exits on `other`'s symbol, timeframe and range (a preset tapped keeps them)."""
        return replace(self, symbol=other.symbol, timeframe=other.timeframe, days=other.days)

    def _average_cross(self) -> tuple[str, int, int] | None:
        if len(self.buy) != 1 or len(self.sell) != 1:
            return None
        b, s = self.buy[0], self.sell[0]
        fast, slow = _AVERAGE.match(b.left), _AVERAGE.match(b.right)
        if (b.op, s.op, s.left, s.right) != ("cross_above", "cross_below", b.left, b.right) or not fast or not slow \
                or fast[1] != slow[1] or b.hysteresis is not None or s.hysteresis is not None:
            return None
        return fast[1], int(fast[2]), int(slow[2])

    @property
    def name(self) -> str:
        exits = "".join(f", {label} {value:g}%" for label, value in (
            ("TP", self.take_profit_pct), ("SL", self.stop_loss_pct), ("TS", self.trailing_stop_pct))
            if value is not None)
        if self.time_in_trade is not None:
            exits += f", exit after {self.time_in_trade} {self.time_unit}"
        if self.positions != "long":
            exits += ", " + self.positions.replace("_", "/")
        cross = self._average_cross()
        if cross is not None:
            rules = f"{cross[0].upper()} {cross[1]}/{cross[2]}"
        else:
            rules = "Buy " + f" {'and' if self.buy_join == 'all' else 'or'} ".join(c.words for c in self.buy)
            if self.sell:
                rules += ", sell " + f" {'and' if self.sell_join == 'all' else 'or'} ".join(c.words for c in self.sell)
            rules += ","
        return f"{rules} {self.timeframe}{exits} on {self.symbol}"

    @property
    def strategy_id(self) -> str:
        """The saved strategy's id: the same settings save over the same strategy."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:64]

    def _side(self, rows: tuple[Condition, ...], join: Join) -> dict[str, Any] | None:
        if not rows:
            return None
        if len(rows) == 1:
            return rows[0].document()
        return {"op": join, "of": [c.document() for c in rows]}

    def document(self) -> dict[str, Any]:
        exits: dict[str, Any] = {"signal": self.exit_signal}
        for key, value in (("takeProfitPct", self.take_profit_pct), ("stopLossPct", self.stop_loss_pct),
                           ("trailingStopPct", self.trailing_stop_pct)):
            if value is not None:
                exits[key] = value
        if self.time_in_trade is not None:
            minutes = self.time_in_trade * (_MINUTES[self.timeframe] if self.time_unit == "bars" else 60)
            # bars as minutes, hours as hours: from_saved tells them apart
            exits["timeInTrade"] = f"{minutes}m" if self.time_unit == "bars" else f"{self.time_in_trade}h"
        doc: dict[str, Any] = {"name": self.name, "timeframe": self.timeframe, "positions": self.positions}
        for side, cond in (("buy", self._side(self.buy, self.buy_join)), ("sell", self._side(self.sell, self.sell_join))):
            if cond is not None:
                doc[side] = cond
        doc |= {"exit": exits, "sizing": {"type": self.sizing, "value": self.size}}
        if self.fee:
            doc["fee"] = self.fee
        if self.slippage:
            doc["slippage"] = self.slippage
        return doc

    def check(self) -> None:
        """Raise StrategyError (the parser's sentence) when the backtester would refuse the document."""
        for where, rows in (("buy", self.buy), ("sell", self.sell)):
            for row in rows:
                for operand in (row.left, row.right):
                    mistake = check_row_operand(operand)
                    if mistake is not None:
                        raise StrategyError(f"'{where}' condition: {mistake}")
        parse_strategy(self.document(), check_operand=check_operand)

    @staticmethod
    def from_saved(doc: dict[str, Any], days: int = 730) -> StrategyDraft | None:
        """The form's draft for a saved strategy, or None when the form cannot show it (a nested all/any
        group): such a strategy can still be switched on, only not edited here."""
        strategy = doc.get("strategy") or {}
        try:
            timeframe = strategy.get("timeframe") or doc.get("timeframe") or "1h"
            buy, buy_join = _rows(strategy.get("buy"), "buy")
            sell, sell_join = _rows(strategy.get("sell"), "sell")
            exits = strategy.get("exit") or {}
            sizing = strategy.get("sizing") or {}
            time_in_trade, unit = _time_in_trade(exits.get("timeInTrade"), timeframe)
            return StrategyDraft(
                symbol=doc.get("symbol", "BTC/USDT"), timeframe=timeframe, buy=buy, sell=sell, buy_join=buy_join,
                sell_join=sell_join, exit_signal=bool(exits.get("signal", True)),
                take_profit_pct=_pct(exits.get("takeProfitPct")), stop_loss_pct=_pct(exits.get("stopLossPct")),
                trailing_stop_pct=_pct(exits.get("trailingStopPct")), time_in_trade=time_in_trade, time_unit=unit,
                sizing=sizing.get("type", "equityPct"), size=float(sizing.get("value", 100)),
                fee=float(strategy.get("fee", 0)), slippage=float(strategy.get("slippage", 0)),
                positions=strategy.get("positions", "long"), days=days)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _pct(value: Any) -> float | None:
    return None if value is None else float(value)


def _rows(cond: Any, where: str) -> tuple[tuple[Condition, ...], Join]:
    """A saved condition as rows: one comparison, or one all/any group of comparisons. ValueError otherwise."""
    if cond is None:
        return (), "all"
    try:
        canonical = canonical_condition(cond, where)
    except StrategyError as exc:
        raise ValueError(str(exc)) from None
    join: Join = "all"
    parts = [canonical]
    if canonical["op"] in ("all", "any"):
        join, parts = canonical["op"], canonical["of"]
    rows = []
    for part in parts:
        if part.get("op") not in OPERATORS or set(part) - {"op", "left", "right", "hysteresis"}:
            raise ValueError("a nested group")
        hysteresis = part.get("hysteresis")
        rows.append(Condition(_operand_text(part["left"]), part["op"], _operand_text(part["right"]),
                              None if hysteresis is None else float(hysteresis)))
    return tuple(rows), join


def _time_in_trade(text: Any, timeframe: str) -> tuple[int | None, Literal["bars", "hours"]]:
    """ "300m" on 1h candles is 5 bars; "5h" is 5 hours; other units become hours (or bars when they do not
    divide into hours)."""
    if text is None:
        return None, "bars"
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise ValueError(f"time in trade {text!r}")
    minutes = float(match[1]) * _UNIT_MINUTES[match[2]]
    bar = _MINUTES.get(timeframe, 60)
    if match[2] != "m" and minutes % 60 == 0:
        return int(minutes // 60), "hours"
    if minutes % bar == 0:
        return int(minutes // bar), "bars"
    if minutes % 60 == 0:
        return int(minutes // 60), "hours"
    raise ValueError(f"time in trade {text!r} is not whole bars or hours")


@dataclass(slots=True)
class BacktestSummary:
    stats: dict[str, Any]
    equity: list[tuple[int, float]]  # (timestamp_ms, value), thinned
    drawdown: list[tuple[int, float]]  # (timestamp_ms, percent below the peak), thinned
    trades: list[dict[str, Any]]  # RESULT.json trade rows, newest first
    candles: int
    symbol: str = ""  # what it was run on: the chart marks its trades on that symbol


@dataclass(slots=True)
class DriftSummary:
    """A running strategy's live paper trades beside the backtest of the same period."""

    strategy_id: str
    summary: str  # one sentence (services.backtest.drift.DriftReport.summary)
    rows: list[dict[str, Any]]  # DriftReport.to_json()["trades"]
    live_trades: int
    backtest_trades: int


@dataclass(slots=True)
class BacktestLab:
    draft: StrategyDraft = field(default_factory=StrategyDraft)
    running: bool = False
    progress: float = 0.0  # 0..1
    stage: str = ""  # what the progress bar is doing, in words
    error: str | None = None
    result: BacktestSummary | None = None
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → the backend's document (live state)
    notice: str = ""  # the last save / switch / delete, in words
    drift: DriftSummary | None = None
