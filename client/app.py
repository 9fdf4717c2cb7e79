"""One app session: wires a market feed, the signal engine, the backend API and the live-state
listener into an `AppState`, and repaints the shell from it at most ~10 times a second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import flet as ft

from client.shell import Shell
from client.state import INDICATOR_KEY, AppState
from client.theme import themes
from services.api import ApiError, BackendUnreachable, SkeetApi, new_client_order_id
from services.live import LiveState
from services.market import TIMEFRAME_MS, MarketDataError, MarketFeed, Tick

log = logging.getLogger(__name__)

REPAINT_INTERVAL_S = 0.1  # at most ~10 repaints a second, whatever the tick rate
HISTORY_BARS = 120
WARM_UP_CHUNK = 1000
RECENT_SIGNALS_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class SessionServices:
    """Everything a session talks to; built per session by the launcher (or a test)."""

    feed: MarketFeed
    engine: Any  # services.signals.SignalEngine
    api: SkeetApi
    live: LiveState
    modes: dict[str, str]
    backend_url: str


class SkeetSession:
    def __init__(self, page: ft.Page, services: SessionServices, *, watchlist: list[str],
                 timeframe: str = "1m", theme: str = "system") -> None:
        self.page = page
        self.services = services
        self.state = AppState(watchlist=list(watchlist), selected=watchlist[0], timeframe=timeframe,
                              modes=dict(services.modes))
        self.shell = Shell(self._intents(), backend_url=services.backend_url)
        self._theme = theme
        self._tasks: list[asyncio.Task[Any]] = []
        self._painted_version = -1
        self._shown_notice = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        page = self.page
        page.title = "Skeet"
        page.padding = 0
        page.theme, page.dark_theme = themes()
        page.theme_mode = {"light": ft.ThemeMode.LIGHT, "dark": ft.ThemeMode.DARK}.get(self._theme,
                                                                                     ft.ThemeMode.SYSTEM)
        if page.width:
            self.state.width = page.width
        page.on_resize = lambda e: self.state.resize(e.width)
        page.on_close = lambda _e: self._spawn(self.close())
        self.shell.render(self.state)
        page.add(self.shell.root)
        self.services.live.on_status(self.state.set_live_status)
        for job in (self._market_loop, self._live_loop, self._repaint_loop, self._freshness_loop):
            self._spawn(job())

    async def close(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for resource in (self.services.feed, self.services.live, self.services.api):
            with contextlib.suppress(Exception):
                await resource.aclose()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception():
            log.error("session task failed", exc_info=task.exception())

    # -- services → state --------------------------------------------------------------------
    async def _market_loop(self) -> None:
        feed, engine, state = self.services.feed, self.services.engine, self.state
        try:
            state.set_markets(await feed.markets())
            history = {}
            for symbol in state.watchlist:
                history[symbol] = await feed.candles(symbol, state.timeframe, limit=HISTORY_BARS)
                ticker = await feed.ticker(symbol)
                state.set_history(symbol, history[symbol], open_24h=ticker.get("open"))
            # Selected symbol first: its chart is the one on screen.
            for symbol in sorted(state.watchlist, key=lambda s: s != state.selected):
                await self._warm_up(symbol, history[symbol])
            async for tick in feed.ticks(state.watchlist):
                state.add_signals(engine.on_tick(tick))
                state.apply_tick(tick, engine.snapshot(tick.symbol))
        except MarketDataError as exc:
            state.notify(f"Market data: {exc}", "error")
            for symbol in state.watchlist:
                state.set_feed_status(symbol, "offline")

    async def _warm_up(self, symbol: str, candles: list[Any]) -> None:
        """Run the history through the engine so the chart's indicator has a past. Uses the recorded
        trades where the feed has them (replay), else bar closes. Signals from the past are old news
        older than a few minutes are not shown."""
        engine, series = self.services.engine, self.state.indicator.setdefault(symbol, {})
        if not candles:
            return
        trades_between = getattr(self.services.feed, "trades_between", None)
        now_ms = int(time.time() * 1000)
        ticks = (trades_between(symbol, candles[0].timestamp_ms, now_ms) if trades_between
                 else [Tick(symbol, bar.timestamp_ms, bar.close, bar.volume) for bar in candles])
        bar_ms = TIMEFRAME_MS[self.state.timeframe]
        recent: list[Any] = []
        for i, tick in enumerate(ticks):
            if i % WARM_UP_CHUNK == 0:
                await asyncio.sleep(0)  # ~20 ms of work at a time: the UI stays responsive
            fired = engine.on_tick(tick)
            if fired and tick.timestamp_ms >= now_ms - RECENT_SIGNALS_MS:
                recent.extend(fired)
            bar = tick.timestamp_ms - tick.timestamp_ms % bar_ms
            last_in_bar = i + 1 == len(ticks) or ticks[i + 1].timestamp_ms - bar >= bar_ms
            if last_in_bar:  # one snapshot per bar, not per trade
                value = engine.snapshot(symbol).get(INDICATOR_KEY)
                if value is not None:
                    series[bar] = value
        self.state.add_signals(recent)
        self.state.changed()

    async def _live_loop(self) -> None:
        async for change in self.services.live.changes():
            self.state.apply_change(change)

    async def _freshness_loop(self) -> None:
        status = getattr(self.services.feed, "status", None)
        if status is None:
            return
        while True:
            await asyncio.sleep(1.0)
            for symbol in self.state.watchlist:
                with contextlib.suppress(MarketDataError):
                    self.state.set_feed_status(symbol, status(symbol))

    async def _repaint_loop(self) -> None:
        while True:
            await asyncio.sleep(REPAINT_INTERVAL_S)
            if self.state.version != self._painted_version:
                self._painted_version = self.state.version
                self.shell.render(self.state)
                self._show_notice()
                self.page.update()

    def _show_notice(self) -> None:
        notice = self.state.notice
        if notice and notice.serial != self._shown_notice:
            self._shown_notice = notice.serial
            colour = {"success": ft.Colors.GREEN_700, "error": ft.Colors.RED_700}.get(notice.kind)
            self.page.show_dialog(ft.SnackBar(ft.Text(notice.message, color=ft.Colors.WHITE), bgcolor=colour))

    # -- intents → services ------------------------------------------------------------------
    def _intents(self) -> Any:
        from views.common import Intents

        return Intents(
            select_symbol=self.state.select,
            edit_ticket=self.state.edit_ticket,
            submit_order=self.submit_order,
            cancel_order=lambda order_id: self._spawn(self._cancel(order_id)),
            navigate=self.state.navigate,
        )

    def submit_order(self) -> None:
        ticket, state = self.state.ticket, self.state
        if ticket.submitting:
            return  # a double tap is one order
        error = _ticket_error(ticket.amount, ticket.price if ticket.type == "limit" else None)
        if error:
            state.edit_ticket(error=error)
            return
        # The key is fixed before the first attempt and kept while the outcome is unknown, so
        # pressing again after a network failure resubmits the same order, never a second one.
        client_order_id = ticket.client_order_id or new_client_order_id()
        state.edit_ticket(submitting=True, error=None, client_order_id=client_order_id)
        self._spawn(self._place(client_order_id))

    async def _place(self, client_order_id: str) -> None:
        ticket, symbol = self.state.ticket, self.state.selected
        try:
            order = await self.services.api.place_order(
                symbol=symbol, side=ticket.side, type=ticket.type, amount=ticket.amount,
                price=ticket.price if ticket.type == "limit" else None, client_order_id=client_order_id,
            )
        except BackendUnreachable as exc:
            self.state.edit_ticket(submitting=False, error=f"{exc.message}. Press again to retry: the order "
                                                         "will not be placed twice.")
            return
        except ApiError as exc:
            self.state.edit_ticket(submitting=False, error=exc.message, client_order_id=None)
            self.state.notify(f"Order rejected: {exc.message}", "error")
            return
        self.state.edit_ticket(submitting=False, client_order_id=None)
        self.state.notify(f"{order.get('side', '').title()} {order.get('amount')} {order.get('symbol')} "
                          f"{order.get('type')} order sent", "success")

    async def _cancel(self, order_id: str) -> None:
        try:
            await self.services.api.cancel_order(order_id)
        except ApiError as exc:
            self.state.notify(f"Cancel failed: {exc.message}", "error")
        else:
            self.state.notify("Order canceled", "info")


def _ticket_error(amount: str, price: str | None) -> str | None:
    for name, text in (("Amount", amount), ("Limit price", price)):
        if text is None:
            continue
        try:
            value = Decimal(text.strip())
        except (InvalidOperation, AttributeError):
            return f"{name} must be a number"
        if not value.is_finite() or value <= 0:
            return f"{name} must be a positive number"
    return None


SessionFactory = Callable[[], Awaitable[SessionServices]]


def make_main(build_services: SessionFactory, *, watchlist: list[str], timeframe: str,
              theme: str) -> Callable[[ft.Page], Awaitable[None]]:
    async def main(page: ft.Page) -> None:
        services = await build_services()
        session = SkeetSession(page, services, watchlist=watchlist, timeframe=timeframe, theme=theme)
        await session.start()

    return main
