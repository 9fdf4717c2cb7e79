"""AI insights: ask about the selected symbol; answers arrive through the live listener, saying
which provider answered (and why a remote one did not, when the local analyst stood in)."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import direction_colour, direction_icon
from views.common import Intents, fmt_time, panel, text_field

SENTIMENT_DIRECTION = {"bullish": 1, "bearish": -1, "neutral": 0}
PROVIDER_NAME = {"local": "Local analyst", "vertex": "Vertex AI", "openai": "OpenAI-compatible"}


class InsightsView:
    TOPICS = frozenset({"insights", "selected", "candles"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents, *, limit: int = 10) -> None:
        self._limit = limit
        self.question = text_field(label="Question (optional)", dense=True, expand=True, max_length=500,
                                     on_submit=lambda e: intents.ask_insight(e.control.value or ""))
        self.ask = ft.FilledButton("Ask", icon=ft.Icons.AUTO_AWESOME,
                                   on_click=lambda _e: intents.ask_insight(self.question.value or ""))
        self.progress = ft.ProgressRing(width=16, height=16, stroke_width=2, visible=False)
        self.symbol = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.empty = ft.Text("No insight yet. Ask for a read of the selected market.",
                             color=ft.Colors.ON_SURFACE_VARIANT, size=13)
        self.list = ft.Column(spacing=10, scroll=ft.ScrollMode.AUTO, expand=True)
        body = ft.Column(
            [self.symbol, ft.Row([self.question, self.ask, self.progress],
                                 vertical_alignment=ft.CrossAxisAlignment.CENTER),
             self.empty, self.list],
            expand=True, spacing=8,
        )
        self.control = panel("AI insights", body, identifier="insights", expand=True)
        self._shown: list[Any] = []

    def render(self, state: AppState) -> None:
        self.symbol.value = f"About {state.selected} · {state.timeframe} candles and your recent signals"
        self.ask.content = "Ask again" if state.insights else "Ask"
        self.ask.disabled = state.insight_pending
        self.progress.visible = state.insight_pending
        insights = state.sorted_insights()[: self._limit]
        self.empty.visible = not insights
        fingerprint = [i.get("id") for i in insights]
        if fingerprint != self._shown:
            self._shown = fingerprint
            self.list.controls = [_card(i) for i in insights]


def _card(insight: dict[str, Any]) -> ft.Control:
    sentiment = insight.get("sentiment", "neutral")
    direction = SENTIMENT_DIRECTION.get(sentiment, 0)
    provider = PROVIDER_NAME.get(insight.get("provider", ""), insight.get("provider", ""))
    if insight.get("model"):
        provider += f" ({insight['model']})"
    fallback = insight.get("fallback")
    facts = (f"Trend {insight.get('trend')} · volatility {insight.get('volatility')} · "
             f"{len(insight.get('signals') or [])} recent signals")
    lines: list[ft.Control] = [
        ft.Row([direction_icon(direction, 18),
                ft.Text(f"{insight.get('symbol')}: {sentiment}", weight=ft.FontWeight.BOLD,
                        color=direction_colour(direction)),
                ft.Text(fmt_time(insight.get("timestamp")), size=11, color=ft.Colors.ON_SURFACE_VARIANT)],
               spacing=4),
        ft.Text(facts, size=12),
    ]
    if insight.get("question"):
        lines.append(ft.Text(f"Q: {insight['question']}", size=12, italic=True))
    lines.append(ft.Text(insight.get("reasoning", ""), size=13, selectable=True))
    lines.append(ft.Text(f"Answered by {provider}" + (f" — remote unavailable: {fallback}" if fallback else ""),
                         size=11, color=ft.Colors.ORANGE_400 if fallback else ft.Colors.ON_SURFACE_VARIANT))
    return ft.Semantics(
        identifier=f"insight-{insight.get('id')}",
        content=ft.Container(ft.Column(lines, spacing=4), padding=ft.Padding.all(10),
                             border_radius=ft.BorderRadius.all(8), border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT)),
    )
