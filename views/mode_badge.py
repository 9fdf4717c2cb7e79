"""The mode badge: which data, broker, state and identity the app runs on, always on screen."""

from __future__ import annotations

import flet as ft

from client.state import AppState
from services.market import FeedLink

MODE_ORDER = ("market", "orders", "live", "insights", "identity")
STATUS_COLOUR = {"connected": ft.Colors.GREEN_400, "connecting": ft.Colors.AMBER_400,
                 "reconnecting": ft.Colors.ORANGE_400, "offline": ft.Colors.RED_400}
LINK_COLOUR = {True: ft.Colors.GREEN_400, False: ft.Colors.ORANGE_400}  # the market's link (the gateway)
PHONE_WORDS = {"Simulated market": "Simulated", "Paper trading": "Paper"}  # five chips in 370 px


class ModeBadgeView:
    TOPICS = frozenset({"live", "layout"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self) -> None:
        self.chips = ft.Row(spacing=6, wrap=True, run_spacing=4)
        self.control = ft.Semantics(identifier="mode-badge", container=True, content=self.chips)

    def render(self, state: AppState) -> None:
        labels = [state.modes[k] for k in MODE_ORDER if state.modes.get(k)]
        status_text = f"{state.modes.get('live', 'live state')}: {state.live_status}"
        # A phone has room for one row: each mode by its first words ("Paper trading", not its backend URL).
        def short(text: str) -> str:
            if state.breakpoint != "phone":
                return text
            head = text.split(" · ")[0]
            return PHONE_WORDS.get(head, head)

        market = state.modes.get("market")
        link = state.market_link
        link_text = link_words(market or "", link) if link is not None else None
        phone = state.breakpoint == "phone"
        self.chips.controls = [
            *(_chip(link_text or "", dot=LINK_COLOUR[link.connected], compact=phone)
              if link is not None and label == market
              else _chip(short(label), compact=phone) for label in labels if label != state.modes.get("live")),
            _chip(short(state.modes.get("live", "Live state")), dot=STATUS_COLOUR.get(state.live_status),
                  compact=phone),
        ]
        # One row on a phone, in smaller chips (a scrolling row would hide the badge's label from screen readers).
        self.chips.wrap = not phone
        self.chips.spacing = 4 if phone else 6
        self.control.label = "Modes: " + ", ".join(
            [*(link_text if link_text and lbl == market else lbl for lbl in labels if lbl != state.modes.get("live")),
             status_text]
        )


def link_words(mode: str, link: FeedLink) -> str:
    """ "Live via gateway · 0.4 s" (the feed's mode, then the age of the newest data) or "Reconnecting…"."""
    if not link.connected:
        return "Reconnecting…"
    head = mode.split(" · ")[0]
    return head if link.age_s is None else f"{head} · {link.age_s:.1f} s"


def _chip(text: str, dot: str | None = None, *, compact: bool = False) -> ft.Control:
    parts: list[ft.Control] = []
    if dot:
        parts.append(ft.Container(width=8, height=8, border_radius=ft.BorderRadius.all(4), bgcolor=dot))
    parts.append(ft.Text(text, size=10 if compact else 11, weight=ft.FontWeight.W_500))
    return ft.Container(
        content=ft.Row(parts, spacing=4 if compact else 5, tight=True),
        padding=ft.Padding.symmetric(vertical=3, horizontal=6 if compact else 8),
        border_radius=ft.BorderRadius.all(10),
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
    )
