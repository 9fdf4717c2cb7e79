"""Insights from any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...)."""

from __future__ import annotations

import httpx

from backend_stub.insights.local import LocalAnalyst
from backend_stub.insights.prompt import SYSTEM_PROMPT, parse_answer, user_prompt
from backend_stub.insights.remote import dig, post_json
from backend_stub.insights.types import Analysis, MarketContext, ProviderFailed, ProviderName

DEFAULT_BASE_URL = "https://api.openai.com"
DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIInsights:
    """`POST {base_url}/v1/chat/completions` with JSON mode; the API key travels only in the header."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        timeout_s: float = 20.0,
        http: httpx.AsyncClient | None = None,
        local: LocalAnalyst | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        # Accept a base given with its version segment too ("http://host/v1"), as most SDKs expect it.
        self._url = f"{base.removesuffix('/v1')}/v1/chat/completions"
        self._api_key = api_key
        self._model = model
        self._timeout_s = timeout_s
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None
        self._local = local or LocalAnalyst()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIInsights(url={self._url!r}, model={self._model!r})"

    @property
    def name(self) -> ProviderName:
        return "openai"

    async def analyse(self, context: MarketContext) -> Analysis:
        facts = self._local.read(context)
        if not self._api_key:
            raise ProviderFailed("openai has no API key (set OPENAI_API_KEY)")
        body = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(context, facts)},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0.2,
        }
        headers = {"Authorization": f"Bearer {self._api_key}"}
        answer = await post_json(
            self._http, self._url, provider="openai", headers=headers, body=body, timeout_s=self._timeout_s
        )
        text = dig(answer, "choices", 0, "message", "content")
        if not isinstance(text, str) or not text.strip():
            raise ProviderFailed("openai answered no message content")
        model = dig(answer, "model")
        return parse_answer(
            text, facts, provider="openai", model=model if isinstance(model, str) else self._model
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
