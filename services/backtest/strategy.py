"""Strategies as data: a JSON document (entries, exits, sizing, fees, direction) read into a frozen
`Strategy`, with every mistake refused in one sentence a trader can act on (`StrategyError`).

Conditions are the signal engine's rule conditions (`services/signals/rules.py`), over candle operands
("sma(10)", "rsi(14)", "close", numbers); a short form `{"cross_above": ["sma(10)", "sma(20)"]}` is read as
`{"op": "cross_above", "left": "sma(10)", "right": "sma(20)"}`. The format is documented in
`services/backtest/README.md`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from services.signals import Rule, RuleError

Positions = Literal["long", "short", "long_short"]
SizingType = Literal["equityPct", "quote", "amount"]

_OPS = ("gt", "lt", "cross_above", "cross_below", "breakout_above", "breakout_below")
_ALIASES = {"crosses_above": "cross_above", "crosses_below": "cross_below", "above": "gt", "below": "lt"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TOP = {"name", "description", "timeframe", "positions", "buy", "sell", "exit", "sizing", "fee", "slippage"}
_EXIT = {"signal", "takeProfitPct", "stopLossPct", "trailingStopPct", "timeInTrade"}


class StrategyError(ValueError):
    """A strategy document is not usable; the message names the field and the mistake."""


@dataclass(frozen=True, slots=True)
class Exits:
    """How a position ends. Percentages are percent of the entry price (5 = 5%)."""

    signal: bool = True  # the opposite signal closes the position
    take_profit_pct: float | None = None
    stop_loss_pct: float | None = None
    trailing_stop_pct: float | None = None  # distance below the best price since entry (above, for a short)
    time_in_trade_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Sizing:
    """`equityPct`: percent of the account's equity (100 = all in); `quote`: a fixed value in the quote
    currency; `amount`: a fixed base amount. Never more than the cash allows (fees included)."""

    type: SizingType = "equityPct"
    value: float = 100.0


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    buy: Mapping[str, Any] | None  # a rule condition (canonical form) or None
    sell: Mapping[str, Any] | None
    positions: Positions = "long"
    exits: Exits = field(default_factory=Exits)
    sizing: Sizing = field(default_factory=Sizing)
    fee: float = 0.0  # fraction of traded value (0.001 = 0.1%)
    slippage: float = 0.0  # fraction of price, against the trader, on market and stop fills
    timeframe: str | None = None  # None: the candles' own timeframe

    def operands(self) -> tuple[str, ...]:
        """Every indicator operand the conditions read, in order, once each."""
        names: list[str] = []
        for cond in (self.buy, self.sell):
            if cond is not None:
                names += Rule(id="x", name="x", direction="buy", when=cond).operands()
        return tuple(dict.fromkeys(names))

    def with_changes(self, **changes: Any) -> Strategy:
        from dataclasses import replace

        return replace(self, **changes)


def load_strategy(path: str | Path, *, check_operand: Callable[[str], None] | None = None) -> Strategy:
    """Read and validate a strategy file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StrategyError(f"strategy file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise StrategyError(f"strategy file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyError(f"strategy file {path} cannot be read ({exc})") from None
    return parse_strategy(raw, check_operand=check_operand)


def parse_strategy(raw: Any, *, check_operand: Callable[[str], None] | None = None) -> Strategy:
    """A `Strategy` from its JSON form. `check_operand(text)` raises ValueError for an operand that does
    not exist (the candle indicator parser); its message is passed on."""
    if not isinstance(raw, Mapping):
        raise StrategyError("a strategy must be a JSON object")
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise StrategyError(f"unknown strategy field {unknown[0]!r} (known: {', '.join(sorted(_TOP))})")
    name = raw.get("name", "strategy")
    if not isinstance(name, str) or not name.strip():
        raise StrategyError("'name' must be a non-empty text")
    positions = raw.get("positions", "long")
    if positions not in ("long", "short", "long_short"):
        raise StrategyError(f"'positions' must be 'long', 'short' or 'long_short', not {positions!r}")
    buy = _condition(raw.get("buy"), "buy", check_operand)
    sell = _condition(raw.get("sell"), "sell", check_operand)
    opens = {"long": buy, "short": sell, "long_short": buy or sell}[positions]
    if opens is None:
        side = "buy" if positions == "long" else "sell"
        raise StrategyError(f"a {positions.replace('_', '/')} strategy needs a '{side}' condition to enter")
    exits = _exits(raw.get("exit", {}))
    timeframe = raw.get("timeframe")
    if timeframe is not None:
        from services.market.types import TIMEFRAME_MS

        if not isinstance(timeframe, str) or timeframe not in TIMEFRAME_MS:
            raise StrategyError(f"timeframe {timeframe!r} does not exist (use one of {', '.join(TIMEFRAME_MS)})")
    return Strategy(
        name=name.strip(),
        buy=buy,
        sell=sell,
        positions=positions,
        exits=exits,
        sizing=_sizing(raw.get("sizing", {"type": "equityPct", "value": 100})),
        fee=_fraction(raw.get("fee", 0.0), "fee"),
        slippage=_fraction(raw.get("slippage", 0.0), "slippage"),
        timeframe=timeframe,
    )


def _condition(cond: Any, side: str, check: Callable[[str], None] | None) -> Mapping[str, Any] | None:
    if cond is None:
        return None
    canonical = canonical_condition(cond, side)
    try:
        rule = Rule(id=side, name=side, direction="buy", when=canonical)
    except RuleError as exc:
        raise StrategyError(f"'{side}' condition: {str(exc).replace(f'rule {side!r}: ', '')}") from None
    if check is not None:
        for operand in rule.operands():
            try:
                check(operand)
            except ValueError as exc:
                raise StrategyError(f"'{side}' condition: {exc}") from None
    return canonical


def canonical_condition(cond: Any, where: str) -> dict[str, Any]:
    """The rules.py form of a condition given in either form."""
    if not isinstance(cond, Mapping):
        raise StrategyError(f"'{where}' condition must be an object such as "
                            '{"cross_above": ["sma(10)", "sma(20)"]}')
    if "op" in cond:
        out = dict(cond)
        if out["op"] in ("all", "any"):
            parts = out.get("of")
            if not isinstance(parts, list) or not parts:
                raise StrategyError(f"'{where}' condition: '{out['op']}' needs a non-empty list 'of'")
            out["of"] = [canonical_condition(p, where) for p in parts]
        return out
    if len(cond) - ("hysteresis" in cond) != 1:
        raise StrategyError(f"'{where}' condition {json.dumps(cond)} must have exactly one operator")
    op, args = next((k, v) for k, v in cond.items() if k != "hysteresis")
    op = _ALIASES.get(op, op)
    if op in ("all", "any"):
        if not isinstance(args, list) or not args:
            raise StrategyError(f"'{where}' condition: '{op}' needs a non-empty list of conditions")
        return {"op": op, "of": [canonical_condition(p, where) for p in args]}
    if op not in _OPS:
        raise StrategyError(f"'{where}' condition: unknown operator {op!r} "
                            f"(use {', '.join(_OPS + ('all', 'any'))})")
    if not isinstance(args, list) or len(args) != 2:
        raise StrategyError(f"'{where}' condition: '{op}' needs a list of two operands, e.g. [\"close\", 100]")
    out = {"op": op, "left": args[0], "right": args[1]}
    if "hysteresis" in cond:
        out["hysteresis"] = cond["hysteresis"]
    return out


def _number(value: Any, label: str, *, low: float = 0.0, low_open: bool = True, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrategyError(f"{label} must be a number, not {json.dumps(value)}")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"{'above' if low_open else 'at least'} {low:g}"
        raise StrategyError(f"{label} must be {bound}, not {value:g}")
    return float(value)


def _fraction(value: Any, label: str) -> float:
    return _number(value, f"'{label}' (a fraction of the traded value, 0.001 = 0.1%)", low=0.0,
                   low_open=False, high=0.5)


def _exits(raw: Any) -> Exits:
    if not isinstance(raw, Mapping):
        raise StrategyError("'exit' must be an object, e.g. {\"takeProfitPct\": 5, \"stopLossPct\": 2}")
    unknown = sorted(set(raw) - _EXIT)
    if unknown:
        raise StrategyError(f"unknown exit field {unknown[0]!r} (known: {', '.join(sorted(_EXIT))})")
    signal = raw.get("signal", True)
    if not isinstance(signal, bool):
        raise StrategyError("'exit.signal' must be true or false")

    def pct(key: str, high: float | None) -> float | None:
        value = raw.get(key)
        return None if value is None else _number(value, f"'exit.{key}' (percent)", high=high)

    time_ms = None
    if raw.get("timeInTrade") is not None:
        text = raw["timeInTrade"]
        match = _DURATION.match(text) if isinstance(text, str) else None
        if not match or float(match[1]) <= 0:
            raise StrategyError(f"'exit.timeInTrade' must be a duration such as \"90m\", \"4h\" or \"2d\", "
                                f"not {json.dumps(text)}")
        time_ms = int(float(match[1]) * _UNIT_MS[match[2]])
    return Exits(signal=signal, take_profit_pct=pct("takeProfitPct", None), stop_loss_pct=pct("stopLossPct", 100),
                 trailing_stop_pct=pct("trailingStopPct", 100), time_in_trade_ms=time_ms)


def _sizing(raw: Any) -> Sizing:
    if not isinstance(raw, Mapping) or set(raw) - {"type", "value"}:
        raise StrategyError("'sizing' must be an object {\"type\": \"equityPct\" | \"quote\" | \"amount\", \"value\": N}")
    kind = raw.get("type", "equityPct")
    if kind not in ("equityPct", "quote", "amount"):
        raise StrategyError(f"'sizing.type' must be 'equityPct', 'quote' or 'amount', not {kind!r}")
    high = 100.0 if kind == "equityPct" else None
    return Sizing(type=kind, value=_number(raw.get("value", 100), f"'sizing.value' ({kind})", high=high))
