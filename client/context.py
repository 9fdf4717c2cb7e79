"""What a session's controllers share: the services it talks to, its state, its task owner and the few
things only the screen can do (dialogs, the phone's ticket sheet, downloads)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import flet as ft

from client.preferences import Preferences, PreferencesFile
from client.state import AppState
from client.tasks import TaskOwner
from services.api import SkeetApi
from services.live import LiveState
from services.market import MarketFeed
from services.secrets import ExchangeKeyStore
from services.signals import RuleBook, SignalEngine


@dataclass(frozen=True, slots=True)
class SessionServices:
    """Everything a session talks to; built per session by the launcher (or a test)."""

    feed: MarketFeed
    engine: SignalEngine
    api: SkeetApi
    live: LiveState
    modes: dict[str, str]
    backend_url: str
    rulebook: RuleBook | None = None  # the user's rules, persisted; None: the engine's rules, not saved
    preferences: PreferencesFile | None = None
    keys: ExchangeKeyStore | None = None
    exchange: str = "binance"
    market_source: str = "replay"  # what `feed` was opened from (see services.market.open_feed)
    saved: Preferences | None = None  # `preferences` as loaded when the services were built
    replay_speed: float = 1.0  # a market source switched to in Settings opens at this speed


class Screen(Protocol):
    """What controllers may ask of the page, through the session core (which owns the page)."""

    def show_dialog(self, dialog: ft.DialogControl) -> None: ...

    def pop_dialog(self) -> None: ...

    def close_sheet(self) -> None:
        """Shut the phone's order-ticket sheet, if it is open."""
        ...

    def set_theme_mode(self, theme: str) -> None: ...

    @property
    def saves_on_client(self) -> bool:
        """Whether a file the app makes belongs on the client (a browser download, a phone's storage)."""
        ...

    async def save_on_client(self, file_name: str, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionContext:
    services: SessionServices
    state: AppState
    tasks: TaskOwner
    screen: Screen

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any] | None:
        return self.tasks.spawn(coro, name=name)

    def save_preferences(self) -> None:
        """Watchlist, theme and market source, as the trader left them, for the next start."""
        if self.services.preferences:
            state = self.state
            self.services.preferences.save(Preferences(watchlist=list(state.watchlist), theme=state.theme,
                                                       market=state.market_source))
