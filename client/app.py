"""One app session's core: starts the feature controllers (`client/controllers/`), owns every task they
run (one `TaskOwner`), repaints the shell from `AppState` when it changes (`client/repaint.py` says how
often), and stops it all."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import flet as ft
import flet.canvas as cv

from client.context import SessionContext, SessionServices
from client.controllers import (
    AccountController,
    InsightsController,
    MarketController,
    ReportsController,
    RulesController,
    StrategiesController,
    TradingController,
)
from client.controllers.depth import DepthController
from client.hub import MarketHub
from client.patches import PatchSender
from client.preferences import Preferences
from client.repaint import RepaintScheduler
from client.sessions import SessionRegistry
from client.shell import Shell
from client.state import SECTIONS, AppState
from client.tasks import TaskOwner
from client.theme import breakpoint_for, themes
from services.auth.devtoken import state_dir
from views.common import Intents

__all__ = ["SessionServices", "SkeetSession", "make_main", "sign_in_with_firebase"]

THEME_MODES = {"light": ft.ThemeMode.LIGHT, "dark": ft.ThemeMode.DARK, "system": ft.ThemeMode.SYSTEM}

log = logging.getLogger(__name__)

TICKET_FIRST_H = 560.0  # px of the phone ticket sheet until the ticket has been laid out and says its height
SHEET_TOP_STRIP = 64.0  # px of the screen left above the ticket sheet: a tap there closes it
SHEET_HANDLE_H = 48.0  # px Flutter's sheet puts above its content for the drag handle (kMinInteractiveDimension)
# A tab that went away and did not come back within this long is gone for good. Flet's own eviction (the
# web server sets it shorter, see client/web.py) normally ends the session first; this bounds it anyway.
END_AFTER_DISCONNECT_S = 28.0
ANSWER_TIMEOUT_S = 10.0  # Flet forgets a call its client never answered after this long


class SkeetSession:
    """A session's lifecycle (`start`, `close`), its tasks and its repaints; the features live in
    `self.market`, `self.trading`, `self.rules`, `self.account`, `self.insights` and `self.reports`."""

    def __init__(self, page: ft.Page, services: SessionServices, *, watchlist: list[str],
                 timeframe: str = "1m", theme: str = "system", registry: SessionRegistry | None = None,
                 end_after_disconnect_s: float = END_AFTER_DISCONNECT_S) -> None:
        self.page = page
        self.services = services
        defaults = Preferences(watchlist=list(watchlist), theme=theme)
        prefs = services.saved or defaults
        self.state = AppState(watchlist=list(prefs.watchlist), selected=prefs.watchlist[0], timeframe=timeframe,
                              modes=dict(services.modes), theme=prefs.theme, market_source=services.market_source)
        self.tasks = TaskOwner("session")
        ctx = SessionContext(services=services, state=self.state, tasks=self.tasks, screen=self)
        if services.market is not None:
            self.hub, self._owns_hub = services.market, False
        else:  # a session alone: a hub of its own over its feed and engine (checked by SessionServices)
            assert services.feed is not None
            self.hub = MarketHub.serving(services.feed, services.engine, source=services.market_source,
                                         speed=services.replay_speed)
            self._owns_hub = True
        self.market = MarketController(ctx, self.hub)
        self.trading = TradingController(ctx)
        self.rules = RulesController(ctx, self.market)
        self.account = AccountController(ctx)
        self.insights = InsightsController(ctx)
        self.reports = ReportsController(ctx)
        self.strategies = StrategiesController(ctx, lambda: self.market.feed, history=state_dir() / "history")
        self.depth = DepthController(ctx, lambda: self.market.feed)
        self.intents = self._intents()
        self.shell = Shell(self.intents, backend_url=services.backend_url, exchange=services.exchange)
        self.patches = PatchSender(page, self.shell.root)  # a repaint's changes in one message, not one per control
        self._sheet: ft.BottomSheet | None = None
        self._sheet_box: ft.Container | None = None  # the phone ticket sheet's box, sized to the ticket
        self._files: ft.FilePicker | None = None  # made in start(), with the page
        self._network: ft.Connectivity | None = None
        # Repaints follow changes (a tick reaches the screen within one gap), throttled by what they cost and by
        # how fast the client takes them in.
        self._answerer = cv.Canvas(width=0, height=0)  # in the page's overlay: see `_client_answer`
        self.repainter = RepaintScheduler(self.state, self._repaint, showing=lambda: self._connected and self._visible,
                                          ack=self._client_answer, catch_up=self.market.catch_up)
        self.state.on_change = self.repainter.wake
        self._shown_notice = 0
        self._registry = registry
        self._end_after_s = end_after_disconnect_s
        self._connected = True  # repaints go nowhere while the tab is away
        self._visible = True  # the tab shows the page (a hidden tab or backgrounded app is not repainted)
        self._ending: asyncio.TimerHandle | None = None
        self._closing: asyncio.Future[None] | None = None

    @property
    def task_count(self) -> int:
        return len(self.tasks)

    @property
    def closed(self) -> bool:
        return self._closing is not None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        page = self.page
        page.title = "Skeet"
        page.padding = 0
        page.theme, page.dark_theme = themes()
        page.theme_mode = THEME_MODES[self.state.theme]
        if page.width:
            self.state.width = page.width
        if page.height:
            self.state.height = page.height
        page.on_resize = lambda e: self._resize(e.width, e.height)
        self.rules.load()
        if self.services.preferences and self.services.preferences.problem:
            self.state.notify(self.services.preferences.problem, "error")
        # A hidden tab or a backgrounded app cannot show a frame: no repaints until it is back (the session keeps its own
        # visibility from these events; the client sends them only to a page that listens).
        page.on_app_lifecycle_state_change = self._visibility_changed
        page.on_disconnect = self._disconnected
        page.on_connect = self._reconnected
        page.on_close = self._closed_by_flet
        if self._registry is not None:
            self._registry.add(self)
        # A browser or a phone saves files through the client (a download, a share sheet); made here,
        # in the page's context, so the service registers with this page. Kept referenced: the page
        # drops services nothing holds.
        self._files = ft.FilePicker()
        self._network = ft.Connectivity(on_change=lambda _e: self.market.network_changed())
        # Flet 1.0.5 unregisters, after each event, a service with fewer than two references besides its
        # registry (a refcount test in ServiceRegistry.unregister_services): one attribute is not enough.
        self._kept_services = (self._files, self._network)  # (without it, both were gone after the first event)
        self.shell.render(self.state)
        page.overlay.append(self._answerer)
        page.add(self.shell.root)
        self.services.live.on_status(self.state.set_live_status)
        for job in (self.market.run(), self.market.watch_freshness(), self.market.load_exchanges(),
                    self.account.follow_live(), self.account.load_keys(), self.account.check_backend(),
                    self.trading.follow_balance(), self.depth.run(),
                    self.repainter.run()):
            self.tasks.spawn(job)

    async def close(self) -> None:
        """Cancel every task, then release the feed, the live listener (its /v1/stream socket) and the
        API client (its connections). Safe to call more than once, from any task, even one of its own."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._stop_ending()
        if self._registry is not None:
            self._registry.discard(self)
        await self.tasks.aclose()
        resources: list[Any] = [self.market, self.services.live, self.services.api]
        if self._owns_hub:
            resources.append(self.hub)
        for resource in resources:
            with contextlib.suppress(Exception):
                await resource.aclose()
        self._let_go_of_page()
        log.info("session closed")

    def _let_go_of_page(self) -> None:
        """Drop what the page holds of this session: its controls, its event handlers, the services'
        callbacks. A closed session's page can outlive it a while (a cancelled asyncio timer keeps the
        context it was made in, and Flet's current page is in it, until the timer's time comes), and
        through the page this session and its whole screen would stay in memory with it."""
        page = self.page
        with contextlib.suppress(Exception):  # a page whose connection is gone may refuse some of it
            page.on_resize = None
            page.on_app_lifecycle_state_change = None
            page.on_disconnect = None
            page.on_connect = None
            page.on_close = None
            page.controls.clear()
            page.overlay.clear()
            # Flet diffs a list against the copy it took at the last update (`__prev_lists`); a gone client gets
            # no more updates, so those copies would keep the old screen. Flet itself keeps the page of a deleted
            # session until its eviction loop next finds one (a local of `FletAppManager.__evict_expired_sessions`).
            for owner in (page, *page.views, page._overlay, page._services):
                for snapshots in ("__prev_lists", "__prev_dicts", "__prev_classes"):
                    getattr(owner, snapshots, {}).clear()
        if self._network is not None:
            self._network.on_change = None
        self._sheet = None

    async def _closed_by_flet(self, _e: ft.Event[ft.Page]) -> None:
        await self.close()  # Flet evicted the session: its tab has been away longer than the timeout

    async def _visibility_changed(self, e: ft.AppLifecycleStateChangeEvent) -> None:
        # Kept here, not read from `page.app_visible`: a reloading tab sends HIDE as it unloads, and the
        # reloaded one resumes the session showing, without ever sending SHOW, so Flet's flag stays False.
        was_visible = self._visible
        self._visible = e.state not in (ft.AppLifecycleState.HIDE, ft.AppLifecycleState.PAUSE)
        if self._visible and not was_visible:
            self.repainter.wake()  # what changed while hidden is painted now
            self.market.resumed()  # back from the background: the stream reconnects now, resuming by seq

    async def _disconnected(self, _e: ft.Event[ft.Page]) -> None:
        """The tab closed or its connection dropped: stop painting, and end unless it comes back."""
        self._connected = False
        if self._ending is None:
            # A timer, not a sleeping task, holding the session weakly and in an empty context: a cancelled
            # timer stays in the event loop until its time, and with a task (or this context, where Flet
            # keeps the page) it would hold the whole ended session, page and controls, that long.
            self._ending = asyncio.get_running_loop().call_later(
                self._end_after_s, _end_session, weakref.ref(self), context=contextvars.Context())

    async def _reconnected(self, _e: ft.Event[ft.Page]) -> None:
        """Back (a reload, a network blip): the client gets the page as it is now, then repaints go on."""
        self._stop_ending()
        if self.closed:  # only where Flet keeps sessions longer than END_AFTER_DISCONNECT_S
            self.page.controls[:] = [ft.Text("This Skeet session has ended: open the app again.")]
            self.page.update()
            return
        self._connected = True
        self._visible = True  # a (re)connected client is showing the page
        self.repainter.client_changed()
        self.state.changed()

    def _stop_ending(self) -> None:
        if self._ending is not None:
            self._ending.cancel()
            self._ending = None

    # -- repaint -----------------------------------------------------------------------------
    def _repaint(self, dirty: set[str]) -> None:
        controls = self.shell.render(self.state, dirty)
        self._show_notice()
        if controls is None:  # the whole page; then what a page's patch does not reach (isolated rows)
            self.page.update()
            controls = self.shell.isolated
        self.patches.send(controls)  # not what is off the page (a phone's ticket while its sheet is shut)

    async def _client_answer(self) -> None:
        """Returns once the client has applied every message sent before this call: Flet's client handles
        them in order. Flet 1.0.5 has no acknowledgement of its own; the call is `get_capture` of an empty
        canvas, which its client answers at once (null: nothing captured) without drawing anything."""
        await self._answerer._invoke_method("get_capture", timeout=ANSWER_TIMEOUT_S)  # noqa: SLF001  (its timeout)

    def _show_notice(self) -> None:
        notice = self.state.notice
        if notice and notice.serial != self._shown_notice:
            self._shown_notice = notice.serial
            colour = {"success": ft.Colors.GREEN_700, "error": ft.Colors.RED_700}.get(notice.kind)
            self.page.show_dialog(ft.SnackBar(ft.Text(notice.message, color=ft.Colors.WHITE), bgcolor=colour))

    # -- intents → controllers ---------------------------------------------------------------
    def _intents(self) -> Intents:
        state, spawn = self.state, self.tasks.spawn
        market, trading, rules, account = self.market, self.trading, self.rules, self.account
        return Intents(
            select_symbol=state.select,
            show_rows=market.show_rows,
            edit_ticket=state.edit_ticket,
            submit_order=trading.submit_order,
            cancel_order=lambda order_id: spawn(trading.cancel_order(order_id)),
            add_alert=trading.add_alert,
            delete_alert=lambda alert_id: spawn(trading.delete_alert(alert_id)),
            navigate=self.navigate,
            set_timeframe=lambda tf: spawn(market.set_timeframe(tf)),
            add_symbol=market.add_symbol,
            remove_symbol=market.remove_symbol,
            search_symbol=state.search_symbol,
            ask_insight=self.insights.ask,
            save_rule=rules.save,
            toggle_rule=rules.toggle,
            delete_rule=rules.delete,
            set_theme=account.set_theme,
            save_api_key=lambda ex, key, secret: spawn(account.save_keys(ex, key, secret)),
            delete_api_key=lambda ex: spawn(account.delete_keys(ex)),
            open_ticket=self.open_ticket,
            set_market=lambda source: spawn(market.switch(source)),
            set_range=state.set_range,
            set_alerts=state.set_alerts,
            toggle_study=state.toggle_study,
            toggle_full_chart=state.toggle_chart_full,
            load_older=market.load_older,
            export_report=lambda: spawn(self.reports.export()),
            run_backtest=lambda draft: spawn(self.strategies.run(draft)),
            cancel_backtest=self.strategies.cancel,
            save_strategy=lambda draft, on: spawn(self.strategies.save(draft, enabled=on)),
            strategy_action=lambda action, sid: spawn(self.strategies.act(action, sid)),
        )

    def navigate(self, section: str) -> None:
        if section in SECTIONS:
            self.state.navigate(section)  # type: ignore[arg-type]  # checked just above

    def _resize(self, width: float, height: float | None = None) -> None:
        if self._sheet is not None and breakpoint_for(width) != "phone":
            self.close_sheet()  # the ticket has a place in the wider layout
        self.state.resize(width, height)

    def open_ticket(self) -> None:
        """On a phone the order ticket is a bottom sheet over the dashboard."""
        # Scroll-controlled, with the ticket in a scrolling column: every order type's fields fit on a phone
        # (a plain sheet stops at 9/16 of the screen and cut the button off). A scrolling column fills such a
        # sheet to the screen's top whatever it holds (half of it was empty): its box takes the ticket's
        # height as laid out, up to the screen less a strip to tap away, and scrolls beyond.
        ticket = ft.Container(self.shell.ticket.control, padding=ft.Padding.only(left=12, right=12, top=12, bottom=24),
                              on_size_change=self._ticket_sized, size_change_interval=50)
        self._sheet_box = ft.Container(ft.Column([ticket], scroll=ft.ScrollMode.AUTO, tight=True),
                                       height=min(TICKET_FIRST_H, self._sheet_room()))
        self._sheet = ft.BottomSheet(self._sheet_box, show_drag_handle=True, scrollable=True,
                                     on_dismiss=lambda _e: self._sheet_dismissed())
        self.page.show_dialog(self._sheet)

    def _sheet_room(self) -> float:
        """The most height of the sheet's content: the screen less the strip to tap away and the drag handle,
        on any screen (a short one's sheet scrolls sooner; floored at TICKET_FIRST_H, it covered the strip)."""
        return max(0.0, (self.state.height or 844.0) - SHEET_TOP_STRIP - SHEET_HANDLE_H)

    def _ticket_sized(self, e: ft.LayoutSizeChangeEvent[Any]) -> None:
        box = self._sheet_box
        height = min(float(e.height), self._sheet_room())
        if box is not None and self._sheet is not None and abs((box.height or 0) - height) > 1:
            box.height = height
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                box.update()

    # -- Screen: what controllers may ask of the page ----------------------------------------
    def show_dialog(self, dialog: ft.DialogControl) -> None:
        self.page.show_dialog(dialog)

    def pop_dialog(self) -> None:
        self.page.pop_dialog()

    def close_sheet(self) -> None:
        if self._sheet_dismissed():
            with contextlib.suppress(Exception):
                self.page.pop_dialog()

    def _sheet_dismissed(self) -> bool:
        sheet, self._sheet = self._sheet, None
        if sheet is None:
            return False
        sheet.content = None  # type: ignore[assignment]  # one parent per control: give it back to the layout
        return True

    def set_theme_mode(self, theme: str) -> None:
        self.page.theme_mode = THEME_MODES.get(theme, ft.ThemeMode.SYSTEM)

    @property
    def saves_on_client(self) -> bool:
        page = self.page
        return self._files is not None and bool(page.web or (page.platform is not None and page.platform.is_mobile()))

    async def save_on_client(self, file_name: str, data: bytes) -> None:
        assert self._files is not None  # saves_on_client said so
        await self._files.save_file(file_name=file_name, src_bytes=data)


def _end_session(ref: weakref.ref[SkeetSession]) -> None:
    """The disconnect timer's end: close the session if it is still there and open."""
    session = ref()
    if session is not None and not session.closed:
        session.tasks.spawn(session.close(), name="end-after-disconnect")



SessionFactory = Callable[[Any], Awaitable[SessionServices]]
IdentityFactory = Callable[[ft.Page], Awaitable[Any]]


async def sign_in_with_firebase(page: ft.Page, identity: Any, *, remembered: str | None) -> None:
    """Resume from a remembered refresh token, else show the sign-in screen until it succeeds."""
    from services.auth.firebase import SignInError
    from views.sign_in import SignInView

    if remembered:
        with contextlib.suppress(SignInError):
            await identity.resume(remembered)
            return
    done = asyncio.Event()

    async def attempt(email: str, password: str) -> None:
        view.render(pending=True)
        page.update()
        try:
            await identity.sign_in(email, password)
        except SignInError as exc:
            view.render(error=str(exc))
            page.update()
            return
        done.set()

    view = SignInView(lambda email, password: page.run_task(attempt, email, password))
    page.title = "Skeet · sign in"
    page.add(view.control)
    await done.wait()
    page.controls.clear()


def make_main(build_services: SessionFactory, identify: IdentityFactory, *, watchlist: list[str],
              timeframe: str, theme: str, registry: SessionRegistry | None = None
              ) -> Callable[[ft.Page], Awaitable[None]]:
    async def main(page: ft.Page) -> None:
        identity = await identify(page)
        services = await build_services(identity)
        session = SkeetSession(page, services, watchlist=watchlist, timeframe=timeframe, theme=theme,
                               registry=registry)
        await session.start()

    return main
