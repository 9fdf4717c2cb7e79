"""Streaming signal engine: incremental indicators per symbol, and rules (as data) firing signals.

Callers import from here; the modules behind it are private to the package.
"""

from services.signals.config import EngineConfig
from services.signals.engine import SignalEngine
from services.signals.errors import RuleBookCorrupt, RuleError, RuleNotFound, SignalsError
from services.signals.indicators import TickCounters
from services.signals.rulebook import RuleBook
from services.signals.rules import Rule, Signal, default_rules
from services.signals.windows import RollingQuantile, SortedWindow

__all__ = [
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
