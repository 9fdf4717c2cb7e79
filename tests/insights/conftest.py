"""Fixtures for the insights tests: candle series with a known shape, and a loopback HTTP server.

`LoopbackServer` runs a real uvicorn server on a free 127.0.0.1 port in its own thread, so the
providers under test go through httpx, TCP and HTTP/1.1 exactly as they would against the real API.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.market.types import Candle

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def make_candles(
    n: int = 120, *, drift: float = 0.0, wiggle: float = 0.3, start: float = 100.0
) -> list[Candle]:
    """`n` one-minute bars: a straight line with slope `drift` per bar plus a deterministic wiggle."""
    bars = []
    for i in range(n):
        base = start + drift * i
        close = base + wiggle * math.sin(i * 1.7)
        open_ = base + wiggle * math.sin(i * 1.7 - 1.0)
        bars.append(
            Candle(
                timestamp_ms=T0 + i * 60_000,
                open=open_,
                high=max(open_, close) + abs(wiggle) * 0.5 + 0.01,
                low=min(open_, close) - abs(wiggle) * 0.5 - 0.01,
                close=close,
                volume=10.0 + (i % 7),
            )
        )
    return bars


class LoopbackServer:
    """A uvicorn server for `app` on 127.0.0.1, started and stopped by a context manager."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app, log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        self._thread.start()
        for _ in range(500):
            if server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("loopback server did not start")

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=5)


@pytest.fixture
def candles() -> Any:
    """`make_candles`, as a fixture so test modules need not import conftest."""
    return make_candles


@pytest.fixture
def uptrend() -> list[Candle]:
    return make_candles(120, drift=0.1)


@pytest.fixture
def loopback() -> Iterator[type[LoopbackServer]]:
    yield LoopbackServer


class ScriptedModel:
    """State shared by a loopback model server and the test: what to answer, and what was asked.

    `behaviour`: "ok" (a valid insight), "fenced" (valid JSON inside a Markdown fence), "500",
    "not_json" (an HTML error page with status 200), "bad_insight" (JSON, but not an insight),
    "slow" (answers after `delay_s`), "empty" (no candidates/choices), "safety" (Gemini stops on SAFETY).
    """

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.delay_s = 2.0
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def answer_for(self, prompt: str) -> dict[str, Any]:
        """A model's answer that agrees with the rules-based read it was given, citing one number."""
        facts = json.loads(prompt.split("Facts:\n", 1)[1].split("\n\nQuestion:", 1)[0])
        read = facts["rules_based_read"]
        return {
            "trend": read["trend"],
            "volatility": read["volatility"],
            "sentiment": read["sentiment"],
            "reasoning": f"Price changed {facts['indicators']['change_pct']:+.2f}% with a steady slope; "
            "momentum supports the trend but RSI is stretched.",
        }


def openai_app(model: ScriptedModel, *, api_key: str) -> FastAPI:
    """The chat-completions endpoint as OpenAI serves it (bodies copied from real responses' shape)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        model.requests.append({"path": request.url.path, "headers": dict(request.headers), "json": body})
        if request.headers.get("authorization") != f"Bearer {api_key}":
            error = {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, status_code=401)
        if model.behaviour == "slow":
            await asyncio.sleep(model.delay_s)
        if model.behaviour == "500":
            error = {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
            }
            return JSONResponse({"error": error}, status_code=500)
        if model.behaviour == "not_json":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        content = json.dumps(model.answer_for(body["messages"][-1]["content"]))
        if model.behaviour == "bad_insight":
            content = json.dumps({"trend": "to the moon", "sentiment": "bullish", "reasoning": ""})
        if model.behaviour == "fenced":
            content = f"```json\n{content}\n```"
        choices = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ]
        return JSONResponse(
            {
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion",
                "created": 1741569952,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [] if model.behaviour == "empty" else choices,
                "usage": {"prompt_tokens": 412, "completion_tokens": 61, "total_tokens": 473},
                "service_tier": "default",
                "system_fingerprint": "fp_06737a9306",
            }
        )

    return app


def vertex_app(model: ScriptedModel, *, valid_tokens: set[str]) -> FastAPI:
    """Vertex AI's `generateContent` for publisher models, as `aiplatform.googleapis.com` answers it."""
    app = FastAPI()

    @app.post("/v1/projects/{project}/locations/{location}/publishers/google/models/{model_method}")
    async def generate_content(project: str, location: str, model_method: str, request: Request) -> Response:
        body = await request.json()
        model.requests.append(
            {
                "path": request.url.path,
                "headers": dict(request.headers),
                "json": body,
                "project": project,
                "location": location,
                "model_method": model_method,
            }
        )
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in valid_tokens:
            error = {
                "code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                "status": "UNAUTHENTICATED",
            }
            return JSONResponse({"error": error}, status_code=401)
        if not model_method.endswith(":generateContent"):
            return JSONResponse({"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}}, 404)
        if model.behaviour == "slow":
            await asyncio.sleep(model.delay_s)
        if model.behaviour == "500":
            error = {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}
            return JSONResponse({"error": error}, status_code=500)
        if model.behaviour == "not_json":
            return Response(
                "upstream connect error or disconnect/reset before headers", media_type="text/plain"
            )
        text = json.dumps(model.answer_for(body["contents"][-1]["parts"][0]["text"]))
        if model.behaviour == "bad_insight":
            text = "Sure! Here is my analysis: the market looks up."
        finish = "SAFETY" if model.behaviour == "safety" else "STOP"
        candidate = {
            "content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": finish,
            "avgLogprobs": -0.0712,
        }
        usage = {
            "promptTokenCount": 398,
            "candidatesTokenCount": 58,
            "totalTokenCount": 456,
            "trafficType": "ON_DEMAND",
        }
        answer: dict[str, Any] = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model_method.split(":")[0],
            "createTime": "2026-01-01T00:00:00.123456Z",
            "responseId": "6q1ZaN-CHOqjzs8P8t3u2Ac",
        }
        if model.behaviour == "empty":
            answer = {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": usage,
                "modelVersion": model_method.split(":")[0],
            }
        return JSONResponse(answer)

    return app


OPENAI_TEST_KEY = "sk-test-loopback-7f3a9c2e51b84d06"


@pytest.fixture
def openai_server() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    with LoopbackServer(openai_app(model, api_key=OPENAI_TEST_KEY)) as server:
        model.url = server.url
        yield model


class StandInGoogleCredentials:
    """The one allowed stand-in: google-auth credentials without Google's token endpoint.

    Mirrors `google.auth.credentials.Credentials` where the provider touches it (`token`, `valid`,
    `refresh(request)`); each refresh mints a new access token the loopback Vertex server accepts.
    """

    def __init__(self, *, fail_refresh: bool = False) -> None:
        self.token: str | None = None
        self.expired = True
        self.refresh_requests: list[Any] = []
        self.issued: set[str] = set()
        self._fail_refresh = fail_refresh

    @property
    def valid(self) -> bool:
        return self.token is not None and not self.expired

    def refresh(self, request: Any) -> None:
        self.refresh_requests.append(request)
        if self._fail_refresh:
            import google.auth.exceptions

            raise google.auth.exceptions.RefreshError("invalid_grant: account not found")
        self.token = f"ya29.stand-in-{len(self.refresh_requests)}"
        self.issued.add(self.token)
        self.expired = False

    def expire(self) -> None:
        self.expired = True


@pytest.fixture
def google_credentials() -> StandInGoogleCredentials:
    return StandInGoogleCredentials()


@pytest.fixture
def failing_google_credentials() -> StandInGoogleCredentials:
    return StandInGoogleCredentials(fail_refresh=True)


@pytest.fixture
def vertex_server(google_credentials: StandInGoogleCredentials) -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    with LoopbackServer(vertex_app(model, valid_tokens=google_credentials.issued)) as server:
        model.url = server.url
        yield model
