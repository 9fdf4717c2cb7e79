"""What an insight is, what a provider is given, and the one protocol every provider implements.

A provider turns a `MarketContext` (recent candles plus the signals the caller saw) into an
`Analysis`; the desk (`desk.py`) adds who answered and why a fallback happened. Remote models are
given the numbers the local analyst computed, so they reason over facts instead of guessing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from services.market.types import Candle

Trend = Literal["up", "down", "sideways"]
VolatilityLevel = Literal["low", "normal", "high"]
Sentiment = Literal["bullish", "bearish", "neutral"]
ProviderName = Literal["local", "vertex", "openai"]


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """A signal that fired recently: from the caller's signal engine, or found by the local analyst."""

    name: str
    detail: str
    timestamp_ms: int | None = None
    direction: Literal["buy", "sell"] | None = None  # what the signal suggests, when it suggests a side


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Everything a provider may look at: the same context always gives the local analyst the same answer."""

    symbol: str
    timeframe: str
    candles: tuple[Candle, ...]
    signals: tuple[SignalEvent, ...] = ()
    question: str | None = None


@dataclass(frozen=True, slots=True)
class Indicators:
    """The facts computed from the candles; remote providers are given these, never asked to compute them."""

    last_close: float
    change_pct: float  # first → last close of the window
    ema_fast: float
    ema_slow: float
    slope_pct_per_bar: float  # least-squares slope of closes, relative to their mean
    r_squared: float  # how straight that line is, 0..1
    rsi: float | None  # Wilder RSI(14); None when fewer than 15 closes
    realised_vol_pct: float  # stdev of log returns per bar over the window, in percent
    recent_vol_pct: float  # the same over the last RECENT_BARS bars: compared with the window's
    annualised_vol_pct: float  # per-bar volatility scaled to a 365-day year (crypto trades 24/7)
    bars: int


@dataclass(frozen=True, slots=True)
class Analysis:
    """A provider's answer, in one structure whatever the provider."""

    trend: Trend
    volatility: VolatilityLevel
    sentiment: Sentiment
    signals: tuple[SignalEvent, ...]
    reasoning: str
    indicators: Indicators
    model: str | None = None


class InsightError(Exception):
    """Base of the errors this package raises. Messages never carry credentials."""


class NotEnoughData(InsightError):
    """Too few candles to say anything (the route answers 422)."""


class ProviderFailed(InsightError):
    """A remote provider timed out, errored or answered something that is not a valid insight.

    `reason` is a short sentence for the `fallback` field, e.g. "vertex timed out after 10 s".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InsightProvider(Protocol):
    """Something that answers a market question. Remote providers own an HTTP client: `aclose` frees it."""

    @property
    def name(self) -> ProviderName: ...

    async def analyse(self, context: MarketContext) -> Analysis:
        """Answer for `context`. Raises `NotEnoughData`, or `ProviderFailed` when a remote goes wrong."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Insight:
    """An answer as the trader sees it: the analysis, who gave it, and why the remote did not if it failed."""

    symbol: str
    timeframe: str
    question: str | None
    analysis: Analysis
    provider: ProviderName
    fallback: str | None = None  # why the configured remote provider did not answer; None when it did
