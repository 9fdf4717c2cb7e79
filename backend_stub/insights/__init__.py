"""AI insights: a short read of a market (trend, volatility, signals, sentiment, reasoning) from a
deterministic local analyst, Vertex AI (Gemini) or an OpenAI-compatible API, falling back to the
local analyst when a remote fails. `routes.py` serves it as `/v1/insights`."""

from backend_stub.insights.config import InsightSettings, build_desk
from backend_stub.insights.desk import InsightDesk
from backend_stub.insights.local import LocalAnalyst
from backend_stub.insights.openai_compat import OpenAIInsights
from backend_stub.insights.types import (
    Analysis,
    Indicators,
    Insight,
    InsightError,
    InsightProvider,
    MarketContext,
    NotEnoughData,
    ProviderFailed,
    SignalEvent,
)
from backend_stub.insights.vertex import VertexInsights

__all__ = [
    "Analysis",
    "Indicators",
    "Insight",
    "InsightDesk",
    "InsightError",
    "InsightProvider",
    "InsightSettings",
    "LocalAnalyst",
    "MarketContext",
    "NotEnoughData",
    "OpenAIInsights",
    "ProviderFailed",
    "SignalEvent",
    "VertexInsights",
    "build_desk",
]
