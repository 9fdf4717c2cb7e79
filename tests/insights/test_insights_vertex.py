"""The Vertex AI (Gemini) provider against a loopback `generateContent` server.

Google's token endpoint cannot be reached here, so the credentials are `StandInGoogleCredentials`
(conftest): the one allowed stand-in, refreshed through google-auth's real requests transport object.
"""

from __future__ import annotations

import google.auth.transport.requests
import pytest

from backend_stub.insights import InsightDesk, InsightSettings, LocalAnalyst, MarketContext, VertexInsights
from backend_stub.insights.config import build_desk
from backend_stub.insights.vertex import vertex_base_url
from services.market.types import Candle


def context(candles: list[Candle]) -> MarketContext:
    return MarketContext(symbol="BTC/USDT", timeframe="1m", candles=tuple(candles), question="Where next?")


def desk_for(server_url: str, credentials, *, timeout_s: float = 5.0, project: str | None = "skeet-test"):
    settings = InsightSettings(
        provider="vertex",
        base_url=server_url,
        model="gemini-2.5-flash",
        project=project,
        location="europe-west1",
        timeout_s=timeout_s,
    )
    return build_desk(settings, credentials=credentials)


async def test_a_valid_answer_is_parsed_and_says_vertex_answered(vertex_server, google_credentials, uptrend):
    async with desk_for(vertex_server.url, google_credentials) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("vertex", None)
    local = LocalAnalyst().read(context(uptrend))
    assert (insight.analysis.trend, insight.analysis.sentiment) == (local.trend, local.sentiment)
    assert insight.analysis.indicators == local.indicators
    assert insight.analysis.model == "gemini-2.5-flash"

    [request] = vertex_server.requests
    assert request["path"] == (
        "/v1/projects/skeet-test/locations/europe-west1/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert request["headers"]["authorization"] == "Bearer ya29.stand-in-1"
    body = request["json"]
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert set(body["generationConfig"]["responseSchema"]["required"]) == {
        "trend",
        "volatility",
        "sentiment",
        "reasoning",
    }
    assert body["contents"][0]["role"] == "user"
    assert body["contents"][0]["parts"][0]["text"].endswith("Question: Where next?")
    assert "JSON" in body["systemInstruction"]["parts"][0]["text"]
    # The token came from google-auth's own transport object, as on Cloud Run.
    assert isinstance(google_credentials.refresh_requests[0], google.auth.transport.requests.Request)


async def test_the_token_is_reused_while_valid_and_refreshed_when_expired(
    vertex_server, google_credentials, uptrend
):
    async with desk_for(vertex_server.url, google_credentials) as desk:
        await desk.ask(context(uptrend))
        await desk.ask(context(uptrend))
        google_credentials.expire()
        third = await desk.ask(context(uptrend))
    assert third.provider == "vertex"
    tokens = [r["headers"]["authorization"] for r in vertex_server.requests]
    assert tokens == ["Bearer ya29.stand-in-1", "Bearer ya29.stand-in-1", "Bearer ya29.stand-in-2"]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("500", "vertex answered HTTP 500"),
        ("not_json", "vertex answered a body that is not JSON"),
        ("bad_insight", "vertex answered an invalid insight (body)"),
        ("safety", "vertex stopped early (SAFETY)"),
        ("empty", "vertex returned no candidate (blocked: PROHIBITED_CONTENT)"),
    ],
)
async def test_remote_failures_fall_back_to_the_local_analyst(
    vertex_server, google_credentials, uptrend, behaviour, reason
):
    vertex_server.behaviour = behaviour
    async with desk_for(vertex_server.url, google_credentials) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("local", reason)
    assert insight.analysis == LocalAnalyst().read(context(uptrend))


async def test_a_slow_remote_times_out_into_the_local_answer(vertex_server, google_credentials, uptrend):
    vertex_server.behaviour = "slow"
    async with desk_for(vertex_server.url, google_credentials, timeout_s=0.25) as desk:
        insight = await desk.ask(context(uptrend))
    assert (insight.provider, insight.fallback) == ("local", "vertex timed out after 0.25 s")


async def test_credentials_that_cannot_refresh_fall_back_without_calling_vertex(
    vertex_server, failing_google_credentials, uptrend
):
    async with desk_for(vertex_server.url, failing_google_credentials) as desk:
        insight = await desk.ask(context(uptrend))
    assert insight.fallback == "vertex could not get a Google access token (RefreshError)"
    assert vertex_server.requests == []


async def test_a_token_vertex_rejects_falls_back(vertex_server, google_credentials, uptrend):
    google_credentials.refresh(None)
    google_credentials.issued.clear()  # Vertex no longer accepts it
    async with desk_for(vertex_server.url, google_credentials) as desk:
        insight = await desk.ask(context(uptrend))
    assert insight.fallback == "vertex answered HTTP 401 (check the credentials)"


async def test_no_project_falls_back(vertex_server, google_credentials, uptrend):
    async with desk_for(vertex_server.url, google_credentials, project=None) as desk:
        insight = await desk.ask(context(uptrend))
    assert insight.fallback == "vertex has no project (set GOOGLE_CLOUD_PROJECT)"


async def test_the_default_endpoint_is_the_regional_host() -> None:
    assert vertex_base_url("us-central1") == "https://us-central1-aiplatform.googleapis.com"
    async with InsightDesk(provider=VertexInsights(project="p", location="asia-northeast1")) as desk:
        assert "asia-northeast1" in repr(desk.provider)
