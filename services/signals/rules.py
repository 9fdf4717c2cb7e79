"""Rules as data (JSON-serialisable) and their evaluation into `Signal`s, per symbol.

A rule's `when` is a tree of conditions over operands: a number, a candle indicator in the
operand syntax of `services.signals.operands` (`"sma(50, 1h)"`, `"rsi(14)"`, `"bb(20, 2).upper"`,
`"close"`; a timeframe left out is the rule's `timeframe`, else the engine's), or one of the
tick indicators of earlier versions (`LEGACY_KEYS`: "price", "rsi_14", "ema_12", "bb_upper"...):
    {"op": "gt" | "lt", "left": a, "right": b, "hysteresis": h}   threshold / comparison
    {"op": "cross_above" | "cross_below", "left": a, "right": b}   a crossed b since last tick
    {"op": "breakout_above" | "breakout_below", "left": a, "right": b}
                                                  a beyond b's value as it stood before this tick
    {"op": "all" | "any", "of": [conditions]}
A rule fires on the rising edge of its condition (false -> true), not on every tick it holds;
hysteresis keeps a comparison true until it is undone by more than `h` (no chatter around a
threshold), and `cooldown_ms` (stream time) silences the rule for that symbol after it fired:
an edge during the cool-down is dropped, not delayed (a signal should be about now).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from services.signals.config import EngineConfig
from services.signals.errors import RuleError
from services.signals.indicators import indicator_keys
from services.signals.operands import IndicatorSpec, check_timeframe, parse_operand

Direction = Literal["buy", "sell"]
Operand = str | float
_COMPARE = ("gt", "lt")
_CROSS = ("cross_above", "cross_below")
_BREAKOUT = ("breakout_above", "breakout_below")
_COMBINE = ("all", "any")
# Tick-indicator names of the default engine, kept so saved rules and the default rules still run.
LEGACY_KEYS: frozenset[str] = frozenset(indicator_keys(EngineConfig()))
DEFAULT_TIMEFRAME = "1m"


def operand_spec(name: str, timeframe: str) -> IndicatorSpec | None:
    """The candle spec an operand names (None for a tick-indicator key). Raises OperandError."""
    return None if name in LEGACY_KEYS else parse_operand(name, timeframe)


def operand_key(name: str, timeframe: str) -> str:
    """The key an operand's value has in the engine's values: the legacy name or the spec's text."""
    spec = operand_spec(name, timeframe)
    return name if spec is None else str(spec)


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule fired for a symbol: what to do, how strongly (0..1), and the values that did it."""

    symbol: str
    rule_id: str
    rule_name: str
    direction: Direction
    strength: float
    timestamp_ms: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    """A user's rule. `symbols` is "*" (every symbol) or a tuple of symbols.

    `strength` is a constant in [0, 1] or {"of": operand, "lo": x, "hi": y}: the operand mapped
    linearly from lo (0) to hi (1) and clamped, e.g. RSI 70 -> 0, 100 -> 1 for an overbought rule.
    """

    id: str
    name: str
    direction: Direction
    when: Mapping[str, Any]
    symbols: str | tuple[str, ...] = "*"
    enabled: bool = True
    cooldown_ms: int = 0
    strength: float | Mapping[str, Any] = 1.0
    timeframe: str | None = None  # of operands naming none; None: the engine's (EngineConfig.timeframe)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise RuleError("a rule needs a non-empty string id")
        if self.direction not in ("buy", "sell"):
            raise RuleError(f"rule {self.id!r}: direction must be 'buy' or 'sell', not {self.direction!r}")
        if isinstance(self.symbols, list):
            object.__setattr__(self, "symbols", tuple(self.symbols))
        elif isinstance(self.symbols, str) and self.symbols != "*":
            object.__setattr__(self, "symbols", (self.symbols,))  # one symbol, not its letters
        if self.symbols != "*" and not (
            isinstance(self.symbols, tuple) and all(isinstance(x, str) for x in self.symbols)
        ):
            raise RuleError(f"rule {self.id!r}: symbols must be '*' or a list of symbols")
        if not isinstance(self.cooldown_ms, int) or self.cooldown_ms < 0:
            raise RuleError(f"rule {self.id!r}: cooldown_ms must be a non-negative integer")
        if self.timeframe is not None:
            check_timeframe(self.timeframe)
        _validate(self.when, self.id)
        _validate_strength(self.strength, self.id)

    def applies_to(self, symbol: str) -> bool:
        return self.symbols == "*" or symbol in self.symbols

    def operands(self) -> tuple[str, ...]:
        """Indicator keys the rule reads (reported in a Signal's `values`)."""
        names: list[str] = []
        _collect(self.when, names)
        if isinstance(self.strength, Mapping) and isinstance(self.strength.get("of"), str):
            names.append(self.strength["of"])
        return tuple(dict.fromkeys(names))

    def specs(self, default_timeframe: str = DEFAULT_TIMEFRAME) -> tuple[IndicatorSpec, ...]:
        """The candle indicators the rule reads, timeframes resolved (rule's, else the default)."""
        tf = self.timeframe or default_timeframe
        found = (operand_spec(name, tf) for name in self.operands())
        return tuple(dict.fromkeys(s for s in found if s is not None))

    def with_changes(self, **changes: Any) -> Rule:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "direction": self.direction,
            "when": _plain(self.when),
            "symbols": self.symbols if self.symbols == "*" else list(self.symbols),
            "enabled": self.enabled,
            "cooldown_ms": self.cooldown_ms,
            "strength": _plain(self.strength),
        } | ({"timeframe": self.timeframe} if self.timeframe is not None else {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        if not isinstance(d, Mapping):
            raise RuleError(f"a rule must be an object, got {type(d).__name__}")
        unknown = set(d) - {
            "id",
            "name",
            "direction",
            "when",
            "symbols",
            "enabled",
            "cooldown_ms",
            "strength",
            "timeframe",
        }
        if unknown:
            raise RuleError(f"rule {d.get('id')!r}: unknown fields {sorted(unknown)}")
        try:
            symbols = d.get("symbols", "*")
            return cls(
                id=d["id"],
                name=d.get("name", d["id"]),
                direction=d["direction"],
                when=_plain(d["when"]),
                symbols=symbols if isinstance(symbols, str) else tuple(symbols),
                enabled=bool(d.get("enabled", True)),
                cooldown_ms=d.get("cooldown_ms", 0),
                strength=_plain(d.get("strength", 1.0)),
                timeframe=d.get("timeframe"),
            )
        except KeyError as exc:
            raise RuleError(f"rule {d.get('id')!r}: missing field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise RuleError(f"rule {d.get('id')!r}: {exc}") from None


def _plain(x: Any) -> Any:
    """Deep copy into plain dicts/lists so `to_dict()` output is JSON-ready and detached."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _validate_operand(x: Any, rule_id: str) -> None:
    if isinstance(x, bool) or not isinstance(x, str | int | float):
        raise RuleError(f"rule {rule_id!r}: operand must be an indicator name or a number, got {x!r}")
    if isinstance(x, float) and not math.isfinite(x):
        raise RuleError(f"rule {rule_id!r}: numeric operand must be finite")
    if isinstance(x, str):
        operand_spec(x, DEFAULT_TIMEFRAME)  # refuses an unknown name, parameter or timeframe


def _validate(cond: Any, rule_id: str) -> None:
    if not isinstance(cond, Mapping) or "op" not in cond:
        raise RuleError(f"rule {rule_id!r}: a condition must be an object with an 'op'")
    op = cond["op"]
    if op in _COMBINE:
        parts = cond.get("of")
        if not isinstance(parts, list | tuple) or not parts:
            raise RuleError(f"rule {rule_id!r}: '{op}' needs a non-empty list 'of'")
        for part in parts:
            _validate(part, rule_id)
        return
    if op not in _COMPARE + _CROSS + _BREAKOUT:
        raise RuleError(f"rule {rule_id!r}: unknown op {op!r}")
    for side in ("left", "right"):
        if side not in cond:
            raise RuleError(f"rule {rule_id!r}: '{op}' needs '{side}'")
        _validate_operand(cond[side], rule_id)
    h = cond.get("hysteresis", 0)
    if isinstance(h, bool) or not isinstance(h, int | float) or h < 0 or not math.isfinite(h):
        raise RuleError(f"rule {rule_id!r}: hysteresis must be a non-negative number")
    if h and op not in _COMPARE:
        raise RuleError(f"rule {rule_id!r}: hysteresis applies to 'gt'/'lt' only")


def _validate_strength(strength: Any, rule_id: str) -> None:
    if isinstance(strength, Mapping):
        if set(strength) != {"of", "lo", "hi"}:
            raise RuleError(f"rule {rule_id!r}: strength mapping needs exactly 'of', 'lo', 'hi'")
        _validate_operand(strength["of"], rule_id)
        lo, hi = strength["lo"], strength["hi"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)) or lo == hi:
            raise RuleError(f"rule {rule_id!r}: strength 'lo' and 'hi' must be different numbers")
    elif isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
        raise RuleError(f"rule {rule_id!r}: strength must be in [0, 1] or a mapping")


def _collect(cond: Mapping[str, Any], names: list[str]) -> None:
    if cond["op"] in _COMBINE:
        for part in cond["of"]:
            _collect(part, names)
        return
    for side in ("left", "right"):
        if isinstance(cond[side], str):
            names.append(cond[side])


# -- evaluation ------------------------------------------------------------------------------
# A compiled condition is `f(values, state) -> bool`; `state` is a per-(rule, symbol) list with
# one slot per stateful node (previous difference, latch, previous level).
Compiled = Callable[[Mapping[str, float], list[Any]], bool]


NAN = math.nan


def _operand(x: Operand, timeframe: str) -> tuple[str | None, float]:
    """(key of the value, NaN) or (None, constant)."""
    return (operand_key(x, timeframe), NAN) if isinstance(x, str) else (None, float(x))


def _compile(cond: Mapping[str, Any], slots: list[Any], tf: str) -> Compiled:
    op = cond["op"]
    if op in _COMBINE:
        parts = [_compile(part, slots, tf) for part in cond["of"]]
        if op == "all":
            # Evaluate every part (no short-circuit): crossover parts must see every tick.
            return lambda v, st: all([f(v, st) for f in parts])
        return lambda v, st: any([f(v, st) for f in parts])
    # Operands are read inline (key lookup or constant), not through getter calls: rules run on
    # every tick and a Python call costs as much as the comparison itself.
    lk, lc = _operand(cond["left"], tf)
    rk, rc = _operand(cond["right"], tf)
    slot = len(slots)
    if op in _COMPARE:
        h = float(cond.get("hysteresis", 0.0))
        sign = 1.0 if op == "gt" else -1.0
        slots.append(False)

        def compare(v: Mapping[str, float], st: list[Any]) -> bool:
            a = lc if lk is None else v.get(lk, NAN)
            b = rc if rk is None else v.get(rk, NAN)
            diff = sign * (a - b)  # > 0 means "condition holds"
            if diff != diff:  # NaN: not warmed up, the latch resets
                st[slot] = False
                return False
            held = diff > 0.0 or (st[slot] and diff > -h)
            st[slot] = held
            return held

        return compare
    slots.append(math.nan)
    if op in _CROSS:
        sign = 1.0 if op == "cross_above" else -1.0

        def cross(v: Mapping[str, float], st: list[Any]) -> bool:
            a = lc if lk is None else v.get(lk, NAN)
            b = rc if rk is None else v.get(rk, NAN)
            diff = sign * (a - b)
            prev = st[slot]
            st[slot] = diff
            return diff > 0.0 and prev <= 0.0  # False while either is NaN

        return cross
    sign = 1.0 if op == "breakout_above" else -1.0

    def breakout(v: Mapping[str, float], st: list[Any]) -> bool:
        level = rc if rk is None else v.get(rk, NAN)
        prev_level = st[slot]
        st[slot] = level
        a = lc if lk is None else v.get(lk, NAN)
        return sign * (a - prev_level) > 0.0

    return breakout


class RuleRunner:
    """One rule compiled, with its per-symbol state (edge, cool-down, node slots)."""

    __slots__ = ("rule", "timeframe", "_cond", "_slots", "_state", "_operands")

    def __init__(self, rule: Rule, default_timeframe: str = DEFAULT_TIMEFRAME) -> None:
        self.rule = rule
        self.timeframe = tf = rule.timeframe or default_timeframe
        self._slots: list[Any] = []
        self._cond = _compile(rule.when, self._slots, tf)
        # Keys of the values it reads: a legacy name as is, a candle spec as its canonical text.
        self._operands = tuple(dict.fromkeys(operand_key(name, tf) for name in rule.operands()))
        # symbol -> [node state list, previous truth, last fire timestamp_ms]
        self._state: dict[str, list[Any]] = {}

    def evaluate(self, symbol: str, values: Mapping[str, float], timestamp_ms: int) -> Signal | None:
        """O(size of the condition tree)."""
        st = self._state.get(symbol)
        if st is None:
            st = self._state[symbol] = [list(self._slots), False, None]
        now = self._cond(values, st[0])
        rising = now and not st[1]
        st[1] = now
        if not rising:
            return None
        last = st[2]
        if last is not None and timestamp_ms - last < self.rule.cooldown_ms:
            return None
        st[2] = timestamp_ms
        rule = self.rule
        return Signal(
            symbol=symbol,
            rule_id=rule.id,
            rule_name=rule.name,
            direction=rule.direction,
            strength=_strength(rule.strength, values, self.timeframe),
            timestamp_ms=timestamp_ms,
            values={"price": values.get("price", math.nan)}
            | {k: values.get(k, math.nan) for k in self._operands},
        )


def _strength(spec: float | Mapping[str, Any], values: Mapping[str, float], tf: str) -> float:
    if not isinstance(spec, Mapping):
        return float(spec)
    key, const = _operand(spec["of"], tf)
    x = const if key is None else values.get(key, NAN)
    if x != x:
        return 0.0
    t = (x - spec["lo"]) / (spec["hi"] - spec["lo"])
    return min(1.0, max(0.0, t))


def default_rules() -> list[Rule]:
    """A few sensible rules for a fresh install (default periods of `EngineConfig`)."""
    return [
        Rule(
            id="ema-cross-up",
            name="EMA 12 crosses above EMA 26",
            direction="buy",
            when={"op": "cross_above", "left": "ema_12", "right": "ema_26"},
            cooldown_ms=5 * 60_000,
        ),
        Rule(
            id="ema-cross-down",
            name="EMA 12 crosses below EMA 26",
            direction="sell",
            when={"op": "cross_below", "left": "ema_12", "right": "ema_26"},
            cooldown_ms=5 * 60_000,
        ),
        Rule(
            id="rsi-overbought",
            name="RSI 14 overbought (> 70)",
            direction="sell",
            when={"op": "gt", "left": "rsi_14", "right": 70, "hysteresis": 5},
            cooldown_ms=60_000,
            strength={"of": "rsi_14", "lo": 70, "hi": 100},
        ),
        Rule(
            id="rsi-oversold",
            name="RSI 14 oversold (< 30)",
            direction="buy",
            when={"op": "lt", "left": "rsi_14", "right": 30, "hysteresis": 5},
            cooldown_ms=60_000,
            strength={"of": "rsi_14", "lo": 30, "hi": 0},
        ),
        Rule(
            id="bb-breakout-up",
            name="Price breaks above the upper Bollinger band",
            direction="buy",
            when={"op": "breakout_above", "left": "price", "right": "bb_upper"},
            cooldown_ms=60_000,
        ),
        Rule(
            id="bb-breakout-down",
            name="Price breaks below the lower Bollinger band",
            direction="sell",
            when={"op": "breakout_below", "left": "price", "right": "bb_lower"},
            cooldown_ms=60_000,
        ),
    ]
