"""Streaming signal engine: incremental indicators per symbol, and rules (as data) firing signals.

Callers import from here; the modules behind it are private to the package.

    engine = SignalEngine(rules=default_rules(), config=EngineConfig(sma_period=50))
    for signal in engine.on_tick(tick):          # O(1) + O(log n) per sorted window
        ...                                       # Signal(symbol, rule_id, direction, strength, ...)
    engine.snapshot("BTC/USDT")["rsi_14"]         # NaN until warmed up
    book = RuleBook(path, defaults=default_rules())  # raises RuleBookCorrupt (file kept aside)
    book.add(Rule.from_dict({...})); engine.set_rules(book.rules)

Candle indicators (any period, any timeframe; API in `services.signals.candles`):

    spec = parse_operand("sma(50, 1h)")              # frozen, hashable IndicatorSpec
    compute(spec, Candles(ts, o, h, l, c, v))         # numpy batch: value at each close
    make_indicator(spec).push(o, h, l, c, v)          # incremental; .peek() for the forming candle
    Rule(..., when={"op": "cross_above", "left": "sma(50, 1h)", "right": "sma(200, 1h)"})
    engine.watch("BTC/USDT", "rsi(14, 15m)")          # a chart's indicator, in engine.snapshot()
"""

from services.signals.candles import (
    Candles,
    CandleSeries,
    IndicatorSpec,
    OperandError,
    compute,
    compute_many,
    compute_on,
    make_indicator,
    parse_operand,
    resample,
)
from services.signals.config import EngineConfig
from services.signals.engine import SignalEngine
from services.signals.errors import RuleBookCorrupt, RuleError, RuleNotFound, SignalsError
from services.signals.indicators import TickCounters
from services.signals.rulebook import RuleBook
from services.signals.rules import Rule, Signal, default_rules
from services.signals.windows import RollingQuantile, SortedWindow

__all__ = [
    "CandleSeries",
    "Candles",
    "IndicatorSpec",
    "OperandError",
    "compute",
    "compute_many",
    "compute_on",
    "make_indicator",
    "parse_operand",
    "resample",
    "EngineConfig",
    "RollingQuantile",
    "Rule",
    "RuleBook",
    "RuleBookCorrupt",
    "RuleError",
    "RuleNotFound",
    "Signal",
    "SignalEngine",
    "SignalsError",
    "SortedWindow",
    "TickCounters",
    "default_rules",
]
