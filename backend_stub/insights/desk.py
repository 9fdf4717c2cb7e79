"""The insights desk: asks the configured provider, and the local analyst when a remote one fails."""

from __future__ import annotations

import logging
from types import TracebackType

from backend_stub.insights.local import LocalAnalyst
from backend_stub.insights.types import Insight, InsightProvider, MarketContext, ProviderFailed

log = logging.getLogger(__name__)


class InsightDesk:
    """Owns its provider: `aclose` (or leaving `async with`) closes the provider's HTTP client."""

    def __init__(self, *, provider: InsightProvider, local: LocalAnalyst | None = None) -> None:
        self._provider = provider
        self._local = local or LocalAnalyst()

    @property
    def provider(self) -> InsightProvider:
        return self._provider

    async def ask(self, context: MarketContext) -> Insight:
        """An insight for `context`. Raises `NotEnoughData` (from any provider) when there is too little to
        read; every remote failure becomes a local answer whose `fallback` says what went wrong."""
        if self._provider.name == "local":
            analysis = await self._local.analyse(context)
            return Insight(context.symbol, context.timeframe, context.question, analysis, "local")
        try:
            analysis = await self._provider.analyse(context)
        except ProviderFailed as failure:
            log.warning(
                "insight provider %s failed, answering locally: %s", self._provider.name, failure.reason
            )
            analysis = await self._local.analyse(context)
            return Insight(
                context.symbol, context.timeframe, context.question, analysis, "local", failure.reason
            )
        return Insight(context.symbol, context.timeframe, context.question, analysis, self._provider.name)

    async def aclose(self) -> None:
        await self._provider.aclose()

    async def __aenter__(self) -> InsightDesk:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
