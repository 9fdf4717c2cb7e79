"""The OpenAI-compatible provider against a loopback chat-completions server."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from backend_stub.insights import InsightDesk, InsightSettings, LocalAnalyst, MarketContext, OpenAIInsights
from backend_stub.insights.config import build_desk
from services.market.types import Candle

API_KEY = "sk-test-loopback-7f3a9c2e51b84d06"  # the key the loopback server accepts (conftest)


def context(candles: list[Candle], question: str | None = "Is the trend still up?") -> MarketContext:
    return MarketContext(symbol="ETH/USDT", timeframe="1m", candles=tuple(candles), question=question)


def desk_for(server_url: str, *, api_key: str | None = API_KEY, timeout_s: float = 5.0) -> InsightDesk:
    settings = InsightSettings(
        provider="openai",
        base_url=server_url,
        model="gpt-4o-mini",
        timeout_s=timeout_s,
        openai_api_key=api_key,
    )
    return build_desk(settings)


async def test_a_valid_answer_is_parsed_and_says_openai_answered(openai_server, uptrend) -> None:
    async with desk_for(openai_server.url) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("openai", None)
    local = LocalAnalyst().read(context(uptrend))
    assert insight.analysis.trend == local.trend == "up"
    assert insight.analysis.sentiment == "bullish"
    assert insight.analysis.indicators == local.indicators  # numbers come from the data, not the model
    assert insight.analysis.signals == local.signals
    assert insight.analysis.reasoning.startswith(f"Price changed {local.indicators.change_pct:+.2f}%")
    assert insight.analysis.model == "gpt-4o-mini-2024-07-18"

    [request] = openai_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = request["json"]
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "JSON" in body["messages"][0]["content"]
    assert body["messages"][1]["content"].endswith("Question: Is the trend still up?")


async def test_a_base_url_given_with_v1_is_not_doubled(openai_server, uptrend) -> None:
    async with desk_for(openai_server.url + "/v1/") as desk:
        insight = await desk.ask(context(uptrend))
    assert insight.provider == "openai"
    assert openai_server.requests[0]["path"] == "/v1/chat/completions"


async def test_a_json_answer_inside_a_markdown_fence_is_accepted(openai_server, uptrend) -> None:
    openai_server.behaviour = "fenced"
    async with desk_for(openai_server.url) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("openai", None)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("500", "openai answered HTTP 500"),
        ("not_json", "openai answered a body that is not JSON"),
        ("bad_insight", "openai answered an invalid insight (reasoning, trend, volatility)"),
        ("empty", "openai answered no message content"),
    ],
)
async def test_remote_failures_fall_back_to_the_local_analyst(
    openai_server, uptrend, behaviour, reason
) -> None:
    openai_server.behaviour = behaviour
    async with desk_for(openai_server.url) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("local", reason)
    assert insight.analysis == LocalAnalyst().read(context(uptrend))


async def test_a_slow_remote_times_out_into_the_local_answer(openai_server, uptrend) -> None:
    openai_server.behaviour = "slow"
    async with desk_for(openai_server.url, timeout_s=0.3) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("local", "openai timed out after 0.3 s")


async def test_an_unreachable_remote_falls_back(uptrend) -> None:
    async with desk_for("http://127.0.0.1:9", timeout_s=2) as desk:  # port 9 (discard): nothing listens
        insight = await desk.ask(context(uptrend))
    assert insight.provider == "local"
    assert insight.fallback == "openai could not be reached (ConnectError)"


async def test_a_wrong_or_missing_key_falls_back_and_never_leaks(openai_server, uptrend, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-wrong-key-0123456789abcdef"
    async with desk_for(openai_server.url, api_key=wrong_key) as desk:
        insight = await desk.ask(context(uptrend))
        assert wrong_key not in repr(desk.provider)
    assert insight.fallback == "openai answered HTTP 401 (check the credentials)"
    async with desk_for(openai_server.url, api_key=None) as desk:
        missing = await desk.ask(context(uptrend))
    assert missing.fallback == "openai has no API key (set OPENAI_API_KEY)"
    assert len(openai_server.requests) == 1  # no request at all without a key
    everything = caplog.text + json.dumps([insight.fallback, insight.analysis.reasoning])
    assert wrong_key not in everything and API_KEY not in everything
    assert "answering locally" in caplog.text
    assert wrong_key not in repr(InsightSettings(provider="openai", openai_api_key=wrong_key))


async def test_a_shared_http_client_is_left_open(openai_server, uptrend) -> None:
    async with httpx.AsyncClient() as http:
        provider = OpenAIInsights(api_key=API_KEY, base_url=openai_server.url, http=http)
        async with InsightDesk(provider=provider):
            pass
        assert not http.is_closed
