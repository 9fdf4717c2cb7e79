"""`POST /v1/insights` and `GET /v1/insights` on the real app: dev-token auth, replay feed, SQLite store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from backend_stub.app import create_app
from backend_stub.settings import Settings
from services.auth import devtoken

DEV_KEY = b"insights-route-tests-dev-key"
API_KEY = "sk-test-loopback-7f3a9c2e51b84d06"  # what the loopback OpenAI server accepts (conftest)


def bearer(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {devtoken.mint(uid, key=DEV_KEY)}"}


async def start(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path, dev_key=DEV_KEY))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://skeet.test") as client:
            yield client


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    for name in ("SKEET_INSIGHTS", "SKEET_INSIGHTS_BASE_URL", "OPENAI_API_KEY", "SKEET_INSIGHTS_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def local_api(tmp_path, clean_env) -> AsyncIterator[httpx.AsyncClient]:
    async for client in start(tmp_path):
        yield client


async def test_ask_stores_and_lists_own_insights_only(local_api: httpx.AsyncClient) -> None:
    body = {
        "symbol": "BTC/USDT",
        "question": "Is momentum fading?",
        "signals": [
            {
                "name": "sma_cross_down",
                "detail": "SMA20 below SMA50",
                "timestamp": 1795634000000,
                "direction": "sell",
            }
        ],
    }
    response = await local_api.post("/v1/insights", json=body, headers=bearer("alice"))
    assert response.status_code == 201, response.text
    insight = response.json()
    assert (insight["provider"], insight["fallback"], insight["model"]) == ("local", None, None)
    assert insight["symbol"] == "BTC/USDT" and insight["timeframe"] == "1m"
    assert insight["trend"] in ("up", "down", "sideways")
    assert insight["volatility"] in ("low", "normal", "high")
    assert insight["sentiment"] in ("bullish", "bearish", "neutral")
    assert insight["signals"][0] == body["signals"][0]
    assert insight["indicators"]["bars"] == 120
    assert insight["reasoning"].startswith("BTC/USDT on 1m: over the last 120 bars")

    second = await local_api.post("/v1/insights", json={"symbol": "ETH/USDT"}, headers=bearer("alice"))
    assert second.status_code == 201

    mine = await local_api.get("/v1/insights", headers=bearer("alice"))
    assert mine.status_code == 200
    assert {i["id"] for i in mine.json()} == {insight["id"], second.json()["id"]}
    assert mine.json()[0]["timestamp"] >= mine.json()[1]["timestamp"]
    only_btc = await local_api.get("/v1/insights", params={"symbol": "BTC/USDT"}, headers=bearer("alice"))
    assert [i["id"] for i in only_btc.json()] == [insight["id"]]
    assert (await local_api.get("/v1/insights", headers=bearer("bob"))).json() == []


async def test_the_timeframe_chooses_the_candles_read(local_api: httpx.AsyncClient) -> None:
    response = await local_api.post(
        "/v1/insights", json={"symbol": "SOL/USDT", "timeframe": "1h"}, headers=bearer("u")
    )
    assert response.status_code == 201
    assert response.json()["timeframe"] == "1h"
    assert response.json()["reasoning"].startswith("SOL/USDT on 1h:")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"symbol": "NOPE/USDT"}, 404, "Unknown symbol NOPE/USDT"),
        ({}, 422, "Symbol is required"),
        ({"symbol": "BTC/USDT", "question": "x" * 501}, 422, "question"),
        ({"symbol": "BTC/USDT", "timeframe": "7m"}, 422, "timeframe"),
        ({"symbol": "BTC/USDT", "signals": [{"detail": "no name"}]}, 422, "signals.0.name is required"),
    ],
)
async def test_bad_requests_get_a_readable_error(local_api, body, status, message) -> None:
    response = await local_api.post("/v1/insights", json=body, headers=bearer("alice"))
    assert response.status_code == status
    assert message in response.json()["error"]


async def test_insights_need_a_token(local_api: httpx.AsyncClient) -> None:
    assert (await local_api.post("/v1/insights", json={"symbol": "BTC/USDT"})).status_code == 401
    assert (await local_api.get("/v1/insights")).status_code == 401


async def test_asking_too_often_is_rate_limited(local_api: httpx.AsyncClient) -> None:
    statuses = [
        (
            await local_api.post("/v1/insights", json={"symbol": "BTC/USDT"}, headers=bearer("eager"))
        ).status_code
        for _ in range(11)
    ]
    assert statuses == [201] * 10 + [429]
    assert (
        await local_api.post("/v1/insights", json={"symbol": "BTC/USDT"}, headers=bearer("calm"))
    ).status_code == 201


async def test_a_configured_remote_answers_through_the_route(
    tmp_path, clean_env, openai_server, caplog
) -> None:
    clean_env.setenv("SKEET_INSIGHTS", "openai")
    clean_env.setenv("SKEET_INSIGHTS_BASE_URL", openai_server.url)
    clean_env.setenv("OPENAI_API_KEY", API_KEY)
    clean_env.setenv("SKEET_INSIGHTS_TIMEOUT_S", "2")
    caplog.set_level(logging.DEBUG)
    async for api in start(tmp_path):
        ok = await api.post("/v1/insights", json={"symbol": "BTC/USDT"}, headers=bearer("alice"))
        openai_server.behaviour = "500"
        failed = await api.post("/v1/insights", json={"symbol": "BTC/USDT"}, headers=bearer("alice"))
        listed = await api.get("/v1/insights", headers=bearer("alice"))
    assert ok.status_code == 201 and failed.status_code == 201
    assert (ok.json()["provider"], ok.json()["model"], ok.json()["fallback"]) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        None,
    )
    assert (failed.json()["provider"], failed.json()["fallback"]) == ("local", "openai answered HTTP 500")
    assert {i["provider"] for i in listed.json()} == {"openai", "local"}
    for text in (ok.text, failed.text, listed.text, caplog.text):
        assert API_KEY not in text
