"""Operand syntax a trader reads (`sma(50, 1h)`, `macd(12, 26, 9).signal`, `close`) parsed into a
frozen, hashable `IndicatorSpec`, and the registry saying which names, parameters and outputs exist.

Every mistake is refused here, when a rule is written, with one sentence naming it.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from services.signals.errors import RuleError

# The candle timeframes a chart and a rule may name (equal to services.market.types.TIMEFRAME_MS).
TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
_TIMEFRAME_LIST = "1m, 5m, 15m, 1h, 4h or 1d"


class OperandError(RuleError):
    """An operand that does not exist: unknown name, parameter out of range, unknown timeframe."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: whole numbers (`integer`) or any number, from `lo` to `hi` inclusive."""

    name: str
    default: float
    lo: float
    hi: float
    integer: bool = True


@dataclass(frozen=True, slots=True)
class IndicatorDef:
    """What the registry knows of one indicator: its words, parameters and named outputs.

    `outputs[0]` is the default output (`macd(12, 26, 9)` is its line). `inputs` names the candle
    fields it reads; `timeframed` is False only for `price`, the last trade.
    """

    name: str
    title: str
    params: tuple[Param, ...] = ()
    outputs: tuple[str, ...] = ("value",)
    inputs: tuple[str, ...] = ("close",)
    timeframed: bool = True
    talib: str | None = None  # the TA-Lib function it equals, for the docs and tests


def _period(default: int, lo: int = 2, hi: int = 1000) -> Param:
    return Param("period", default, lo, hi)


_OHLC = ("high", "low", "close")
_OHLCV = ("high", "low", "close", "volume")
REGISTRY: dict[str, IndicatorDef] = {
    d.name: d
    for d in (
        # candle fields (of the forming candle until it closes) and the last trade
        IndicatorDef("price", "Last trade price", timeframed=False, inputs=()),
        IndicatorDef("open", "Open", inputs=("open",)),
        IndicatorDef("high", "High", inputs=("high",)),
        IndicatorDef("low", "Low", inputs=("low",)),
        IndicatorDef("close", "Close"),
        IndicatorDef("volume", "Volume", inputs=("volume",)),
        # trend
        IndicatorDef("sma", "SMA", (_period(20),), talib="SMA"),
        IndicatorDef("ema", "EMA", (_period(20),), talib="EMA"),
        IndicatorDef("wma", "WMA", (_period(20),), talib="WMA"),
        IndicatorDef(
            "macd",
            "MACD",
            (Param("fast", 12, 2, 1000), Param("slow", 26, 2, 1000), Param("signal", 9, 2, 1000)),
            outputs=("line", "signal", "hist"),
            talib="MACD",
        ),
        IndicatorDef("adx", "ADX", (_period(14),), inputs=_OHLC, talib="ADX"),
        IndicatorDef(
            "supertrend",
            "Supertrend",
            (_period(10), Param("multiplier", 3.0, 0.1, 100.0, integer=False)),
            outputs=("value", "direction"),
            inputs=_OHLC,
        ),
        # momentum
        IndicatorDef("rsi", "RSI", (_period(14),), talib="RSI"),
        IndicatorDef(
            "stoch",
            "Stochastic",
            (Param("period", 14, 1, 1000), Param("k_smooth", 3, 1, 1000), Param("d_smooth", 3, 1, 1000)),
            outputs=("k", "d"),
            inputs=_OHLC,
            talib="STOCH",
        ),
        IndicatorDef("willr", "Williams %R", (_period(14),), inputs=_OHLC, talib="WILLR"),
        IndicatorDef("cci", "CCI", (_period(20),), inputs=_OHLC, talib="CCI"),
        IndicatorDef("mfi", "MFI", (_period(14),), inputs=_OHLCV, talib="MFI"),
        IndicatorDef("roc", "Rate of change %", (_period(10, lo=1),), talib="ROC"),
        # volatility and bands
        IndicatorDef(
            "bb",
            "Bollinger bands",
            (_period(20), Param("k", 2.0, 0.1, 10.0, integer=False)),
            outputs=("middle", "upper", "lower"),
            talib="BBANDS",
        ),
        IndicatorDef("stddev", "Standard deviation", (_period(20),), talib="STDDEV"),
        IndicatorDef("zscore", "Z-score", (_period(20),)),
        IndicatorDef("atr", "ATR", (_period(14, lo=1),), inputs=_OHLC, talib="ATR"),
        IndicatorDef("rvol", "Realised volatility", (_period(20, lo=1),)),
        # order statistics
        IndicatorDef("highest", "Highest close", (_period(20),), talib="MAX"),
        IndicatorDef("lowest", "Lowest close", (_period(20),), talib="MIN"),
        IndicatorDef(
            "donchian",
            "Donchian channel",
            (_period(20),),
            outputs=("middle", "upper", "lower"),
            inputs=("high", "low"),
        ),
        IndicatorDef("median", "Rolling median", (_period(20, hi=10_000),)),
        IndicatorDef(
            "quantile",
            "Rolling quantile",
            (_period(100, hi=10_000), Param("q", 0.9, 0.0, 1.0, integer=False)),
        ),
        # volume
        IndicatorDef("vwap", "Rolling VWAP", (_period(20, lo=1),), inputs=_OHLCV),
        IndicatorDef("obv", "On-balance volume", inputs=("close", "volume"), talib="OBV"),
        IndicatorDef("volume_ratio", "Volume / average volume", (_period(20, lo=1),), inputs=("volume",)),
        IndicatorDef(
            "volume_spike",
            "Volume spike (1 or 0)",
            (_period(20, lo=1), Param("ratio", 3.0, 1.0, 1000.0, integer=False)),
            inputs=("volume",),
        ),
    )
}
FIELDS = ("price", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One operand, e.g. `IndicatorSpec("sma", (50,), "1h")`. Hashable: equal specs share state.

    `params` holds every parameter (defaults filled in); `timeframe` None means "the rule's or
    strategy's own", resolved with `on(timeframe)`; `output` is always a name of the indicator's
    outputs (the default one when the text named none). `str(spec)` is the canonical text, which
    is also the key of its value in engine snapshots and `Signal.values`.
    """

    name: str
    params: tuple[float, ...] = ()
    timeframe: str | None = None
    output: str = "value"

    @property
    def definition(self) -> IndicatorDef:
        return REGISTRY[self.name]

    @property
    def base(self) -> IndicatorSpec:
        """The spec without its output: every output of one indicator shares one computation."""
        return IndicatorSpec(self.name, self.params, self.timeframe, self.definition.outputs[0])

    @property
    def output_index(self) -> int:
        return self.definition.outputs.index(self.output)

    def on(self, timeframe: str) -> IndicatorSpec:
        """This spec on `timeframe` when it names none (price never has one)."""
        if self.timeframe is not None or not self.definition.timeframed:
            return self
        return IndicatorSpec(self.name, self.params, check_timeframe(timeframe), self.output)

    def __str__(self) -> str:
        args = [_fmt(p) for p in self.params]
        if self.timeframe is not None:
            args.append(self.timeframe)
        text = f"{self.name}({', '.join(args)})" if args else self.name
        if self.output != self.definition.outputs[0]:
            text += f".{self.output}"
        return text


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_timeframe(timeframe: str) -> str:
    """`timeframe` itself, or OperandError naming the ones that exist."""
    if timeframe not in TIMEFRAME_MS:
        raise OperandError(f"Unknown timeframe '{timeframe}': use {_TIMEFRAME_LIST}")
    return timeframe


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*(?:\.\s*([A-Za-z_]+)\s*)?$", re.S)
_GLUED = re.compile(r"^([a-z_]+?)_?(\d+)$")  # ema20, sma_50: a period glued to the name
_TIMEFRAME_LIKE = re.compile(r"^\d+\s*[a-zA-Z]+$")


def parse_operand(text: str, timeframe: str | None = None) -> IndicatorSpec:
    """Parse `text` (`sma(50, 1h)`, `rsi`, `bb(20, 2).upper`, `close(4h)`) into a spec.

    `timeframe` (the rule's or strategy's own) fills in a spec that names none. O(len(text)).
    Raises OperandError with one sentence naming the mistake.
    """
    if not isinstance(text, str) or not text.strip():
        raise OperandError("An operand must be an indicator such as 'sma(50, 1h)', a price field or a number")
    m = _CALL.match(text)
    if m is None:
        raise OperandError(f"Cannot read '{text.strip()}': write an indicator as name(period), e.g. 'sma(50, 1h)'")
    name, args_text, output = m.group(1).lower(), m.group(2), m.group(3)
    definition = REGISTRY.get(name)
    if definition is None:
        raise OperandError(_unknown_name(name, args_text))
    args = [] if args_text is None or not args_text.strip() else [a.strip() for a in args_text.split(",")]
    tf: str | None = None
    if args and _TIMEFRAME_LIKE.match(args[-1]):
        if not definition.timeframed:
            raise OperandError(f"'{name}' is the last trade's price: it has no timeframe (use close({args[-1]}))")
        tf = check_timeframe(args.pop().replace(" ", "").lower())
    misplaced = next((a for a in args if _TIMEFRAME_LIKE.match(a)), None)
    if misplaced is not None:
        raise OperandError(f"Put the timeframe last, e.g. '{name}(..., {misplaced})'")
    params = _params(definition, args)
    out = definition.outputs[0]
    if output is not None:
        output = output.lower()
        if output not in definition.outputs or len(definition.outputs) == 1:
            if len(definition.outputs) == 1:
                raise OperandError(f"{definition.title} has one value: drop '.{output}'")
            near = difflib.get_close_matches(output, list(definition.outputs), n=1, cutoff=0.5)
            hint = f" — did you mean '.{near[0]}'?" if near else f": use {_either(definition.outputs)}"
            raise OperandError(f"{definition.title} has no output '{output}'{hint}")
        out = output
    spec = IndicatorSpec(name, params, tf, out)
    if name == "macd" and params[0] >= params[1]:
        raise OperandError("MACD's fast period must be shorter than its slow period, e.g. macd(12, 26, 9)")
    return spec.on(timeframe) if timeframe is not None else spec


def _params(definition: IndicatorDef, args: list[str]) -> tuple[float, ...]:
    title, params = definition.title, definition.params
    if len(args) > len(params):
        if not params:
            raise OperandError(f"{title} takes no parameters (only a timeframe, e.g. '{definition.name}(1h)')")
        names = ", ".join(p.name for p in params)
        raise OperandError(f"{title} takes {len(params)} parameter{'s' * (len(params) > 1)} ({names}), got {len(args)}")
    values: list[float] = []
    for k, param in enumerate(params):
        if k >= len(args):
            values.append(int(param.default) if param.integer else float(param.default))
            continue
        raw = args[k]
        what = f"{title} {param.name}"
        try:
            x = float(raw)
        except ValueError:
            raise OperandError(f"{what} must be a number, not '{raw}'") from None
        if param.integer:
            if not (math.isfinite(x) and x.is_integer() and param.lo <= x <= param.hi):
                raise OperandError(f"{what} must be a whole number from {_fmt(param.lo)} to {_fmt(param.hi)}")
            values.append(int(x))
        else:
            if not (math.isfinite(x) and param.lo <= x <= param.hi):
                raise OperandError(f"{what} must be a number from {_fmt(param.lo)} to {_fmt(param.hi)}")
            values.append(x)
    return tuple(values)


def _either(words: tuple[str, ...] | list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _unknown_name(name: str, args_text: str | None) -> str:
    glued = _GLUED.match(name)
    if glued and glued.group(1) in REGISTRY and args_text is None:
        base, period = glued.group(1), glued.group(2)
        return f"Unknown indicator '{name}' — write it as '{base}({period})'"
    close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.6)
    hint = f" — did you mean '{close[0]}'?" if close else ": use e.g. sma(20), ema(20), rsi(14), macd, bb(20, 2), atr(14), close or price"
    return f"Unknown indicator '{name}'{hint}"


def describe_registry() -> list[tuple[str, str, str]]:
    """(syntax with defaults, title, outputs) of every indicator, for docs and pickers."""
    rows = []
    for d in REGISTRY.values():
        syntax = f"{d.name}({', '.join(p.name for p in d.params)}[, tf])" if d.params else d.name
        rows.append((syntax, d.title, ", ".join(d.outputs) if len(d.outputs) > 1 else ""))
    return rows
