"""Which provider answers, from the environment (12-factor, as Cloud Run sets it).

SKEET_INSIGHTS          local (default) | vertex | openai
SKEET_INSIGHTS_BASE_URL the remote's base URL (OpenAI-compatible: without /v1; Vertex: the regional host)
SKEET_INSIGHTS_MODEL    model name (defaults: gemini-2.5-flash, gpt-4o-mini)
SKEET_INSIGHTS_TIMEOUT_S seconds before a remote answer is given up for the local one (default 20)
OPENAI_API_KEY          the OpenAI-compatible key (on Cloud Run: a Secret Manager secret mounted as env)
GOOGLE_CLOUD_PROJECT    Vertex project (else the one Application Default Credentials name)
SKEET_VERTEX_LOCATION   Vertex region (default us-central1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from backend_stub.insights import openai_compat, vertex
from backend_stub.insights.desk import InsightDesk
from backend_stub.insights.local import LocalAnalyst
from backend_stub.insights.types import InsightProvider

ProviderKind = Literal["local", "vertex", "openai"]
_KINDS: tuple[ProviderKind, ...] = ("local", "vertex", "openai")


@dataclass(frozen=True, slots=True, kw_only=True)
class InsightSettings:
    provider: ProviderKind = "local"
    base_url: str | None = None
    model: str | None = None
    timeout_s: float = 20.0
    openai_api_key: str | None = field(default=None, repr=False)
    project: str | None = None
    location: str = vertex.DEFAULT_LOCATION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InsightSettings:
        """Settings from `env` (default `os.environ`); raises `ValueError` on an unknown provider or timeout."""
        env = os.environ if env is None else env
        kind = env.get("SKEET_INSIGHTS", "local").strip().lower() or "local"
        if kind not in _KINDS:
            raise ValueError(f"SKEET_INSIGHTS must be one of {', '.join(_KINDS)}, not {kind!r}")
        try:
            timeout_s = float(env.get("SKEET_INSIGHTS_TIMEOUT_S", "20"))
        except ValueError:
            raise ValueError("SKEET_INSIGHTS_TIMEOUT_S must be a number of seconds") from None
        if not 0 < timeout_s <= 300:
            raise ValueError("SKEET_INSIGHTS_TIMEOUT_S must be between 0 and 300 seconds")
        return cls(
            provider=kind,  # type: ignore[arg-type]  # checked against _KINDS above
            base_url=env.get("SKEET_INSIGHTS_BASE_URL") or None,
            model=env.get("SKEET_INSIGHTS_MODEL") or None,
            timeout_s=timeout_s,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            project=env.get("GOOGLE_CLOUD_PROJECT") or None,
            location=env.get("SKEET_VERTEX_LOCATION") or vertex.DEFAULT_LOCATION,
        )


def build_desk(
    settings: InsightSettings,
    *,
    http: httpx.AsyncClient | None = None,
    credentials: vertex.GoogleCredentials | None = None,
) -> InsightDesk:
    """The desk for `settings`. `credentials` replaces Application Default Credentials for Vertex."""
    local = LocalAnalyst()
    provider: InsightProvider
    if settings.provider == "openai":
        provider = openai_compat.OpenAIInsights(
            api_key=settings.openai_api_key,
            base_url=settings.base_url or openai_compat.DEFAULT_BASE_URL,
            model=settings.model or openai_compat.DEFAULT_MODEL,
            timeout_s=settings.timeout_s,
            http=http,
            local=local,
        )
    elif settings.provider == "vertex":
        provider = vertex.VertexInsights(
            project=settings.project,
            location=settings.location,
            model=settings.model or vertex.DEFAULT_MODEL,
            base_url=settings.base_url,
            credentials=credentials,
            timeout_s=settings.timeout_s,
            http=http,
            local=local,
        )
    else:
        provider = local
    return InsightDesk(provider=provider, local=local)
