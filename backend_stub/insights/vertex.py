"""Insights from Gemini on Vertex AI: `generateContent` over REST with a google-auth bearer token.

Credentials are google-auth's (Application Default Credentials: the Cloud Run service account in
production, `gcloud auth application-default login` on a laptop). They are resolved on first use, so
an app without them still starts and its insights fall back to the local analyst, saying why.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from backend_stub.insights.local import LocalAnalyst
from backend_stub.insights.prompt import GEMINI_RESPONSE_SCHEMA, SYSTEM_PROMPT, parse_answer, user_prompt
from backend_stub.insights.remote import dig, post_json
from backend_stub.insights.types import Analysis, MarketContext, ProviderFailed, ProviderName

DEFAULT_LOCATION = "us-central1"
DEFAULT_MODEL = "gemini-2.5-flash"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class GoogleCredentials(Protocol):
    """The part of `google.auth.credentials.Credentials` this provider uses."""

    token: str | None

    @property
    def valid(self) -> bool: ...

    def refresh(self, request: Any) -> None: ...


def vertex_base_url(location: str) -> str:
    return f"https://{location}-aiplatform.googleapis.com"


class VertexInsights:
    """`POST {base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`."""

    def __init__(
        self,
        *,
        project: str | None,
        location: str = DEFAULT_LOCATION,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        credentials: GoogleCredentials | None = None,
        timeout_s: float = 20.0,
        http: httpx.AsyncClient | None = None,
        local: LocalAnalyst | None = None,
    ) -> None:
        self._project = project
        self._location = location
        self._model = model
        self._base_url = (base_url or vertex_base_url(location)).rstrip("/")
        self._credentials = credentials
        self._timeout_s = timeout_s
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None
        self._local = local or LocalAnalyst()
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"VertexInsights(project={self._project!r}, location={self._location!r}, model={self._model!r})"
        )

    @property
    def name(self) -> ProviderName:
        return "vertex"

    async def analyse(self, context: MarketContext) -> Analysis:
        facts = self._local.read(context)
        token = await self._bearer_token()
        if not self._project:
            raise ProviderFailed("vertex has no project (set GOOGLE_CLOUD_PROJECT)")
        url = (
            f"{self._base_url}/v1/projects/{self._project}/locations/{self._location}"
            f"/publishers/google/models/{self._model}:generateContent"
        )
        body = {
            "systemInstruction": {"parts": [{"text": SYSTEM_PROMPT}]},
            "contents": [{"role": "user", "parts": [{"text": user_prompt(context, facts)}]}],
            "generationConfig": {
                "temperature": 0.2,
                # Room for Gemini 2.5's thinking tokens, which count against this budget, plus ~200 words.
                "maxOutputTokens": 2048,
                "responseMimeType": "application/json",
                "responseSchema": GEMINI_RESPONSE_SCHEMA,
            },
        }
        answer = await post_json(
            self._http,
            url,
            provider="vertex",
            headers={"Authorization": f"Bearer {token}"},
            body=body,
            timeout_s=self._timeout_s,
        )
        candidate = dig(answer, "candidates", 0)
        if candidate is None:
            blocked = dig(answer, "promptFeedback", "blockReason")
            raise ProviderFailed(f"vertex returned no candidate{f' (blocked: {blocked})' if blocked else ''}")
        finish = dig(candidate, "finishReason")
        if finish not in (None, "STOP"):
            raise ProviderFailed(f"vertex stopped early ({finish})")
        parts = dig(candidate, "content", "parts") or []
        text = "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
        if not text.strip():
            raise ProviderFailed("vertex answered no text")
        version = dig(answer, "modelVersion")
        return parse_answer(
            text, facts, provider="vertex", model=version if isinstance(version, str) else self._model
        )

    async def _bearer_token(self) -> str:
        """A valid access token, refreshed off the event loop (google-auth's transport is blocking)."""
        async with self._token_lock:
            try:
                await asyncio.to_thread(self._ensure_fresh_credentials)
            except ProviderFailed:
                raise
            except Exception as exc:  # google.auth.exceptions.* and the transport's errors
                raise ProviderFailed(
                    f"vertex could not get a Google access token ({type(exc).__name__})"
                ) from None
        token = self._credentials.token if self._credentials is not None else None
        if not token:
            raise ProviderFailed("vertex got no access token from its Google credentials")
        return token

    def _ensure_fresh_credentials(self) -> None:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        if self._credentials is None:
            try:
                credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            except google.auth.exceptions.DefaultCredentialsError:
                raise ProviderFailed(
                    "vertex has no Google credentials (Application Default Credentials)"
                ) from None
            self._credentials = credentials
            self._project = self._project or project
        if not self._credentials.valid or not self._credentials.token:
            self._credentials.refresh(google.auth.transport.requests.Request())

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
