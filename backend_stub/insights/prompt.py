"""What remote models are asked, and how their answers are checked.

Both remote providers send the same instructions and the same facts, ask for one JSON object, and
accept it only if it parses into the fields below with their allowed values; anything else is a
`ProviderFailed` and the desk falls back to the local analyst. Signals and indicators always come
from the data (they are events and numbers, not opinions); the model gives trend, volatility,
sentiment and the reasoning.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend_stub.insights.types import Analysis, MarketContext, ProviderFailed, ProviderName

SYSTEM_PROMPT = (
    "You are a cautious market analyst inside a trading app. You are given computed indicators and "
    "recent signals for one symbol, and maybe a trader's question. Reason only from those facts; do not "
    "invent prices or news, and do not give personal financial advice. Answer with one JSON object and "
    'nothing else, with exactly these keys: "trend" ("up", "down" or "sideways"), "volatility" ("low", '
    '"normal" or "high"), "sentiment" ("bullish", "bearish" or "neutral") and "reasoning" (at most 120 '
    "words of plain prose that cites the numbers and answers the question if one is asked)."
)

MAX_REASONING_CHARS = 2_000

# The same contract in the OpenAPI-subset schema Gemini's `responseSchema` takes.
GEMINI_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "trend": {"type": "STRING", "enum": ["up", "down", "sideways"]},
        "volatility": {"type": "STRING", "enum": ["low", "normal", "high"]},
        "sentiment": {"type": "STRING", "enum": ["bullish", "bearish", "neutral"]},
        "reasoning": {"type": "STRING"},
    },
    "required": ["trend", "volatility", "sentiment", "reasoning"],
}


class ModelAnswer(BaseModel):
    """The JSON object a model must return; extra keys are ignored, missing or unknown values reject it."""

    model_config = ConfigDict(extra="ignore")

    trend: Literal["up", "down", "sideways"]
    volatility: Literal["low", "normal", "high"]
    sentiment: Literal["bullish", "bearish", "neutral"]
    reasoning: str = Field(min_length=1)


def user_prompt(context: MarketContext, facts: Analysis) -> str:
    """The facts as JSON (compact and unambiguous for a model), then the question."""
    payload = {
        "symbol": context.symbol,
        "timeframe": context.timeframe,
        "indicators": asdict(facts.indicators),
        "recent_signals": [
            {"name": s.name, "detail": s.detail, "direction": s.direction} for s in facts.signals
        ],
        "rules_based_read": {
            "trend": facts.trend,
            "volatility": facts.volatility,
            "sentiment": facts.sentiment,
        },
    }
    question = context.question or "What is the market doing now?"
    return f"Facts:\n{json.dumps(payload, ensure_ascii=False)}\n\nQuestion: {question}"


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_answer(text: str, facts: Analysis, *, provider: ProviderName, model: str | None) -> Analysis:
    """The model's text as an `Analysis` built on `facts`; `ProviderFailed` when it is not a valid answer."""
    fenced = _FENCE.match(text)  # some OpenAI-compatible servers wrap JSON in a Markdown fence anyway
    try:
        answer = ModelAnswer.model_validate_json(fenced.group(1) if fenced else text)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise ProviderFailed(f"{provider} answered an invalid insight ({', '.join(fields)})") from None
    return Analysis(
        trend=answer.trend,
        volatility=answer.volatility,
        sentiment=answer.sentiment,
        signals=facts.signals,
        reasoning=answer.reasoning.strip()[:MAX_REASONING_CHARS],
        indicators=facts.indicators,
        model=model,
    )
