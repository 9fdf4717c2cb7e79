"""`AccountController`: the trader's account as the backend keeps it — orders, positions, alerts and insights
from the live state, which broker the backend routes to, exchange keys in the OS keyring — and the theme."""

from __future__ import annotations

import contextlib

from client.context import SessionContext
from client.state import alert_fired
from services.secrets import NoSecureStore
from views.alerts import alert_fired_message


class AccountController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx

    async def follow_live(self) -> None:
        """Every change to the user's documents, into state; an alert that fires says so."""
        state = self._ctx.state
        async for change in self._ctx.services.live.changes():
            before = state.apply_change(change)
            if change.collection == "alerts" and alert_fired(before, change.doc):
                symbol = (change.doc or {}).get("symbol", "")
                state.notify(alert_fired_message(change.doc or {}, state.markets.get(symbol)), "success")

    async def check_backend(self) -> None:
        """Which broker the backend routes orders to: a live one makes every order ask first."""
        state, services = self._ctx.state, self._ctx.services
        health = await services.api.health()
        if health is None:
            state.backend_error = "unreachable"
            state.notify(f"The Skeet backend at {services.backend_url} is unreachable: orders "
                         "cannot be placed until it answers", "error")
            return
        broker = str(health.get("broker") or "")
        state.live_trading = bool(broker) and not broker.lower().startswith("paper")
        if state.live_trading:
            state.modes["orders"] = f"LIVE trading · {broker.removeprefix('Live · ')}"
        state.changed()

    def set_theme(self, theme: str) -> None:
        self._ctx.state.set_theme(theme)
        self._ctx.screen.set_theme_mode(theme)
        self._ctx.save_preferences()

    # -- exchange keys ------------------------------------------------------------------------
    async def load_keys(self) -> None:
        state, services = self._ctx.state, self._ctx.services
        keys = services.keys
        if keys is None or not await keys.available():
            state.secure_store = "none"
            state.changed()
            return
        state.secure_store = "available"
        with contextlib.suppress(NoSecureStore):
            masked = await keys.masked(services.exchange)
            if masked:
                state.saved_keys[services.exchange] = masked
        state.changed()

    async def save_keys(self, exchange: str, api_key: str, secret: str) -> None:
        keys, state = self._ctx.services.keys, self._ctx.state
        if keys is None:
            return
        try:
            masked = await keys.save(exchange, api_key, secret)
        except (NoSecureStore, ValueError) as exc:
            state.notify(str(exc), "error")
            return
        state.saved_keys[exchange] = masked
        state.notify(f"{exchange} keys saved in the OS keyring", "success")

    async def delete_keys(self, exchange: str) -> None:
        keys, state = self._ctx.services.keys, self._ctx.state
        if keys is None:
            return
        try:
            await keys.delete(exchange)
        except NoSecureStore as exc:
            state.notify(str(exc), "error")
            return
        state.saved_keys.pop(exchange, None)
        state.notify(f"{exchange} keys removed", "info")
