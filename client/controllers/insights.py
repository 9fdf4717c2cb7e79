"""`InsightsController`: asks the backend's insight provider about the selected symbol, with its recent
signals, one question at a time."""

from __future__ import annotations

from client.context import SessionContext
from services.api import ApiError


class InsightsController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx

    def ask(self, question: str) -> None:
        state = self._ctx.state
        if state.insight_pending:
            return
        state.insight_pending = True
        state.changed()
        self._ctx.spawn(self._ask(question.strip() or None), name="insight")

    async def _ask(self, question: str | None) -> None:
        state = self._ctx.state
        recent = [s for s in reversed(state.signals) if s.symbol == state.selected][-20:]
        signals = [{"name": s.rule_name[:64], "detail": s.rule_name[:200], "timestamp": s.timestamp_ms,
                    "direction": s.direction} for s in recent]
        try:
            insight = await self._ctx.services.api.insight(state.selected, question, timeframe=state.timeframe,
                                                           signals=signals)
        except ApiError as exc:
            state.insight_pending = False
            state.notify(f"Insight failed: {exc.message}", "error")
            return
        # The listener normally delivers it first; the response fills in if the stream is behind.
        state.insights.setdefault(str(insight.get("id")), insight)
        state.insight_pending = False
        state.changed()
