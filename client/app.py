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

from client.preferences import Preferences, PreferencesFile
from client.shell import Shell
from client.state import INDICATOR_KEY, SECTIONS, AppState, alert_fired
from client.theme import breakpoint_for, themes
from services.analytics import analyse, export_html_report
from services.api import ApiError, BackendUnreachable, SkeetApi, new_client_alert_id, new_client_order_id
from services.auth.devtoken import state_dir
from services.live import LiveState
from services.market import MarketDataError, MarketFeed, Tick, exchange_ids
from services.secrets import ExchangeKeyStore, NoSecureStore
from services.signals import Rule, RuleBook, SignalEngine
from services.signals.errors import SignalsError
from views.alerts import alert_fired_message
from views.common import Intents, fmt, price_decimals

THEME_MODES = {"light": ft.ThemeMode.LIGHT, "dark": ft.ThemeMode.DARK, "system": ft.ThemeMode.SYSTEM}

log = logging.getLogger(__name__)

REPAINT_INTERVAL_S = 0.1  # at most ~10 repaints a second, whatever the tick rate
HISTORY_BARS = 500  # what the chart can pan through (client.state.MAX_BARS)
WARM_UP_CHUNK = 1000
RECENT_SIGNALS_MS = 5 * 60_000


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


class SkeetSession:
    def __init__(self, page: ft.Page, services: SessionServices, *, watchlist: list[str],
                 timeframe: str = "1m", theme: str = "system") -> None:
        self.page = page
        self.services = services
        defaults = Preferences(watchlist=list(watchlist), theme=theme)
        prefs = services.saved or defaults
        self.state = AppState(watchlist=list(prefs.watchlist), selected=prefs.watchlist[0], timeframe=timeframe,
                              modes=dict(services.modes), theme=prefs.theme, market_source=services.market_source)
        self.shell = Shell(self._intents(), backend_url=services.backend_url, exchange=services.exchange)
        self.feed: MarketFeed = services.feed  # replaced when the trader picks another market source
        self._tasks: list[asyncio.Task[Any]] = []
        self._stream_task: asyncio.Future[Any] | None = None
        self._sheet: ft.BottomSheet | None = None
        self._files: ft.FilePicker | None = None  # made in start(), with the page
        self._painted_version = -1
        self._shown_notice = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        page = self.page
        page.title = "Skeet"
        page.padding = 0
        page.theme, page.dark_theme = themes()
        page.theme_mode = THEME_MODES[self.state.theme]
        if page.width:
            self.state.width = page.width
        page.on_resize = lambda e: self._resize(e.width)
        self._load_rules()
        if self.services.preferences and self.services.preferences.problem:
            self.state.notify(self.services.preferences.problem, "error")
        page.on_close = lambda _e: self._spawn(self.close())
        # A browser or a phone saves files through the client (a download, a share sheet); made here,
        # in the page's context, so the service registers with this page. Kept referenced: the page
        # drops services nothing holds.
        self._files = ft.FilePicker()
        self.shell.render(self.state)
        page.add(self.shell.root)
        self.services.live.on_status(self.state.set_live_status)
        for job in (self._market_loop, self._live_loop, self._repaint_loop, self._freshness_loop,
                    self._load_keys, self._load_exchanges, self._check_backend):
            self._spawn(job())

    async def close(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for resource in (self.feed, self.services.live, self.services.api):
            with contextlib.suppress(Exception):
                await resource.aclose()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session task failed", exc_info=task.exception())

    # -- services → state --------------------------------------------------------------------
    async def _market_loop(self) -> None:
        feed, state = self.feed, self.state
        try:
            state.set_markets(await feed.markets())
        except MarketDataError as exc:
            self._feed_failed(exc)
            return
        self._note_history_span()
        self._stream_task = self._spawn(self._history_then_stream(list(state.watchlist)))

    def _note_history_span(self) -> None:
        recording = getattr(self.feed, "recording", None)
        self.state.history_span_ms = recording.meta.duration_ms if recording is not None else 0

    def _feed_failed(self, exc: Exception) -> None:
        self.state.notify(f"Market data: {exc}", "error")
        for symbol in self.state.watchlist:
            self.state.set_feed_status(symbol, "offline")

    async def _load_history(self, symbols: list[str]) -> dict[str, list[Any]]:
        history = {}
        for symbol in symbols:
            history[symbol] = await self.feed.candles(symbol, self.state.timeframe, limit=HISTORY_BARS)
            ticker = await self.feed.ticker(symbol)
            self.state.set_history(symbol, history[symbol], open_24h=ticker.get("open"))
        return history

    async def _history_then_stream(self, new_symbols: list[str]) -> None:
        """History and engine warm-up for `new_symbols`, then one tick stream for the whole watchlist."""
        feed, engine, state = self.feed, self.services.engine, self.state
        try:
            history = await self._load_history(new_symbols)
            # Selected symbol first: its chart is the one on screen.
            for symbol in sorted(new_symbols, key=lambda s: s != state.selected):
                await self._warm_up(symbol, history[symbol])
            async for tick in feed.ticks(list(state.watchlist)):
                fired = engine.on_tick(tick)
                if fired:
                    state.add_signals(fired)
                    if state.alerts_enabled:
                        signal = fired[-1]
                        state.notify(f"{signal.direction.upper()} signal on {signal.symbol}: {signal.rule_name}")
                state.apply_tick(tick, engine.snapshot(tick.symbol))
        except MarketDataError as exc:
            self._feed_failed(exc)

    def _restart_stream(self, new_symbols: list[str]) -> None:
        if self._stream_task:
            self._stream_task.cancel()
        self._stream_task = self._spawn(self._history_then_stream(new_symbols))

    async def _warm_up(self, symbol: str, candles: list[Any]) -> None:
        """Run the history through the engine so the chart's indicator has a past. Uses the recorded
        trades where the feed has them (replay), else bar closes. Signals from the past are old news
        older than a few minutes are not shown."""
        engine = self.services.engine
        if not candles:
            return
        trades_between = getattr(self.feed, "trades_between", None)
        now_ms = int(time.time() * 1000)
        ticks = (trades_between(symbol, candles[0].timestamp_ms, now_ms) if trades_between
                 else [Tick(symbol, bar.timestamp_ms, bar.close, bar.volume) for bar in candles])
        minute_ms = 60_000
        recent: list[Any] = []
        for i, tick in enumerate(ticks):
            if i % WARM_UP_CHUNK == 0:
                await asyncio.sleep(0)  # ~20 ms of work at a time: the UI stays responsive
            fired = engine.on_tick(tick)
            if fired and tick.timestamp_ms >= now_ms - RECENT_SIGNALS_MS:
                recent.extend(fired)
            minute = tick.timestamp_ms - tick.timestamp_ms % minute_ms
            if i + 1 == len(ticks) or ticks[i + 1].timestamp_ms - minute >= minute_ms:
                value = engine.snapshot(symbol).get(INDICATOR_KEY)  # one snapshot a minute, not a trade
                if value is not None:
                    self.state.record_indicator(symbol, tick.timestamp_ms, value)
        self.state.add_signals(recent)
        self.state.changed()

    async def _live_loop(self) -> None:
        async for change in self.services.live.changes():
            before = self.state.apply_change(change)
            if change.collection == "alerts" and alert_fired(before, change.doc):
                symbol = (change.doc or {}).get("symbol", "")
                self.state.notify(alert_fired_message(change.doc or {}, self.state.markets.get(symbol)), "success")

    async def _freshness_loop(self) -> None:
        status = getattr(self.feed, "status", None)
        if status is None:
            return
        while True:
            await asyncio.sleep(1.0)
            for symbol in self.state.watchlist:
                with contextlib.suppress(MarketDataError):
                    self.state.set_feed_status(symbol, status(symbol))

    async def _repaint_loop(self) -> None:
        """Coalesce: whatever the tick rate, at most one repaint per interval, and only of the panels
        whose data changed (a whole-page diff costs ~100 ms with 50 rows and a chart). A repaint that
        fails is logged and the next one goes ahead: the screen never freezes on one bad frame."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if self.state.version != self._painted_version:
                self._painted_version = self.state.version
                try:
                    self._repaint(self.state.take_dirty())
                except Exception:
                    log.exception("repaint failed")
                    self.state.dirty.add("all")  # the next repaint sends the whole page
            await asyncio.sleep(max(0.0, REPAINT_INTERVAL_S - (loop.time() - started)))

    def _repaint(self, dirty: set[str]) -> None:
        controls = self.shell.render(self.state, dirty)
        self._show_notice()
        if controls is None:
            self.page.update()
            return
        mounted = [c for c in controls if _mounted(c)]  # e.g. not a phone's ticket while its sheet is shut
        if mounted:
            self.page.update(*mounted)

    def _show_notice(self) -> None:
        notice = self.state.notice
        if notice and notice.serial != self._shown_notice:
            self._shown_notice = notice.serial
            colour = {"success": ft.Colors.GREEN_700, "error": ft.Colors.RED_700}.get(notice.kind)
            self.page.show_dialog(ft.SnackBar(ft.Text(notice.message, color=ft.Colors.WHITE), bgcolor=colour))

    # -- intents → services ------------------------------------------------------------------
    def _intents(self) -> Intents:
        state = self.state
        return Intents(
            select_symbol=state.select,
            edit_ticket=state.edit_ticket,
            submit_order=self.submit_order,
            cancel_order=lambda order_id: self._spawn(self._cancel(order_id)),
            add_alert=self.add_alert,
            delete_alert=lambda alert_id: self._spawn(self._delete_alert(alert_id)),
            navigate=self.navigate,
            set_timeframe=lambda tf: self._spawn(self._set_timeframe(tf)),
            add_symbol=self.add_symbol,
            remove_symbol=self.remove_symbol,
            search_symbol=state.search_symbol,
            ask_insight=self.ask_insight,
            save_rule=self.save_rule,
            toggle_rule=self.toggle_rule,
            delete_rule=self.delete_rule,
            set_theme=self.set_theme,
            save_api_key=lambda ex, key, secret: self._spawn(self._save_keys(ex, key, secret)),
            delete_api_key=lambda ex: self._spawn(self._delete_keys(ex)),
            open_ticket=self.open_ticket,
            set_market=lambda source: self._spawn(self._switch_market(source)),
            set_range=state.set_range,
            set_alerts=state.set_alerts,
            toggle_study=state.toggle_study,
            toggle_full_chart=state.toggle_chart_full,
            export_report=lambda: self._spawn(self._export_report()),
        )

    def navigate(self, section: str) -> None:
        if section in SECTIONS:
            self.state.navigate(section)  # type: ignore[arg-type]  # checked just above

    def _resize(self, width: float) -> None:
        if self._sheet is not None and breakpoint_for(width) != "phone":
            self._close_sheet()  # the ticket has a place in the wider layout
        self.state.resize(width)

    def open_ticket(self) -> None:
        """On a phone the order ticket is a bottom sheet over the dashboard."""
        self._sheet = ft.BottomSheet(
            ft.Container(self.shell.ticket.control, padding=ft.Padding.only(left=12, right=12, top=12, bottom=24)),
            show_drag_handle=True, on_dismiss=lambda _e: self._close_sheet(pop=False),
        )
        self.page.show_dialog(self._sheet)

    def _close_sheet(self, pop: bool = True) -> None:
        sheet, self._sheet = self._sheet, None
        if sheet is not None:
            sheet.content = None  # type: ignore[assignment]  # one parent per control: give it back to the layout
            if pop:
                with contextlib.suppress(Exception):
                    self.page.pop_dialog()

    async def _set_timeframe(self, timeframe: str) -> None:
        if not self.state.timeframe_available(timeframe):
            return
        self.state.set_timeframe(timeframe)
        try:
            await self._load_history(list(self.state.watchlist))
        except MarketDataError as exc:
            self.state.notify(f"Could not load {timeframe} candles: {exc}", "error")

    async def _switch_market(self, source: str) -> None:
        """Another market source (replay, or a ccxt exchange): new feed, its markets, history, stream.
        If it cannot be reached, the previous source stays and the trader is told why."""
        from services.market import open_feed

        state = self.state
        feed: MarketFeed | None = None
        try:
            feed = open_feed(source, speed=getattr(self.feed, "_speed", 1.0))
            markets = await feed.markets()
        except (MarketDataError, ImportError, OSError) as exc:
            if feed is not None:
                with contextlib.suppress(Exception):
                    await feed.aclose()  # release its sockets: the old source stays
            state.notify(f"Could not switch to {source}: {exc}", "error")
            return
        if self._stream_task:
            self._stream_task.cancel()
        old, self.feed = self.feed, feed
        with contextlib.suppress(Exception):
            await old.aclose()
        state.modes["market"] = feed.mode
        state.market_source = source
        self._note_history_span()
        if not state.timeframe_available(state.timeframe):
            state.timeframe = "1m"
        state.set_markets(markets)
        kept = [s for s in state.watchlist if s in markets] or list(markets)[:5]
        state.set_watchlist(kept)
        self._save_preferences()
        state.changed()  # the mode badge and every panel: a full repaint
        state.notify(f"Market data: {feed.mode}", "success")
        self._stream_task = self._spawn(self._history_then_stream(list(state.watchlist)))

    def add_symbol(self, symbol: str) -> None:
        state = self.state
        symbol = symbol.strip().upper()
        if symbol in state.watchlist:
            state.notify(f"{symbol} is already on your watchlist")
            return
        if state.markets and symbol not in state.markets:
            state.notify(f"Unknown symbol {symbol} on this market", "error")
            return
        state.set_watchlist([*state.watchlist, symbol])
        state.search_symbol("")
        self._save_preferences()
        self._restart_stream([symbol])

    def remove_symbol(self, symbol: str) -> None:
        if len(self.state.watchlist) <= 1:
            self.state.notify("Keep at least one symbol on the watchlist")
            return
        self.state.set_watchlist([s for s in self.state.watchlist if s != symbol])
        self._save_preferences()
        self._restart_stream([])

    def set_theme(self, theme: str) -> None:
        self.state.set_theme(theme)
        self.page.theme_mode = THEME_MODES.get(theme, ft.ThemeMode.SYSTEM)
        self._save_preferences()

    def _save_preferences(self) -> None:
        if self.services.preferences:
            self.services.preferences.save(Preferences(watchlist=list(self.state.watchlist), theme=self.state.theme,
                                                       market=self.state.market_source))

    # -- rules -------------------------------------------------------------------------------
    def _load_rules(self) -> None:
        book, engine = self.services.rulebook, self.services.engine
        self.state.indicator_keys = tuple(engine.keys())
        if book is not None:
            engine.set_rules(book.rules)
        self.state.set_rules(list(engine.rules))

    def _apply_rules(self) -> None:
        book = self.services.rulebook
        if book is not None:
            self.services.engine.set_rules(book.rules)
            self.state.set_rules(book.rules)

    def save_rule(self, fields: dict[str, Any]) -> None:
        book = self.services.rulebook
        if book is None:
            return
        name = str(fields.get("name") or "").strip()
        if not name:
            self.state.set_rules(book.rules, error="Give the rule a name")
            return
        rule_id = _slug(name)
        while rule_id in book:
            rule_id = _slug(name) + "-" + new_client_order_id()[-4:]
        try:
            book.add(Rule.from_dict({**fields, "name": name, "id": rule_id}))
        except (SignalsError, ValueError, TypeError, KeyError) as exc:
            self.state.set_rules(book.rules, error=str(exc))
            return
        self._apply_rules()
        self.state.rule_saved += 1
        self.state.notify(f"Rule “{name}” added", "success")

    def toggle_rule(self, rule_id: str, enabled: bool) -> None:
        if self.services.rulebook:
            (self.services.rulebook.enable if enabled else self.services.rulebook.disable)(rule_id)
            self._apply_rules()

    def delete_rule(self, rule_id: str) -> None:
        if self.services.rulebook:
            self.services.rulebook.delete(rule_id)
            self._apply_rules()

    # -- insights ----------------------------------------------------------------------------
    def ask_insight(self, question: str) -> None:
        if self.state.insight_pending:
            return
        self.state.insight_pending = True
        self.state.changed()
        self._spawn(self._ask(question.strip() or None))

    async def _ask(self, question: str | None) -> None:
        state = self.state
        recent = [s for s in reversed(state.signals) if s.symbol == state.selected][-20:]
        signals = [{"name": s.rule_name[:64], "detail": s.rule_name[:200], "timestamp": s.timestamp_ms,
                    "direction": s.direction} for s in recent]
        try:
            insight = await self.services.api.insight(state.selected, question, timeframe=state.timeframe,
                                                      signals=signals)
        except ApiError as exc:
            state.insight_pending = False
            state.notify(f"Insight failed: {exc.message}", "error")
            return
        # The listener normally delivers it first; the response fills in if the stream is behind.
        state.insights.setdefault(str(insight.get("id")), insight)
        state.insight_pending = False
        state.changed()

    # -- analytics ---------------------------------------------------------------------------
    async def _export_report(self) -> None:
        """An offline HTML report (plotly's JS inlined) in the state directory; built off the UI loop."""
        state = self.state
        prices = {s: q.last for s, q in state.quotes.items()}
        path = state_dir() / "reports" / f"skeet-report-{time.strftime('%Y%m%d-%H%M%S')}.html"
        try:
            analytics = analyse(list(state.orders.values()), prices)
            await asyncio.to_thread(export_html_report, analytics, path)
        except (OSError, ValueError) as exc:
            state.notify(f"Report failed: {exc}", "error")
            return
        page = self.page
        if self._files is None or not (page.web or (page.platform is not None and page.platform.is_mobile())):
            state.notify(f"Report saved to {path}", "success")  # a desktop app: the file is on this machine
            return
        # The app runs on a server (web), or the file belongs in the phone's own storage: hand the bytes to
        # the client, which downloads them (browser) or asks where to keep them (phone).
        try:
            await self._files.save_file(file_name=path.name, src_bytes=await asyncio.to_thread(path.read_bytes))
        except Exception as exc:  # the client refused or went away: the copy on the server is still there
            log.warning("report download failed: %s", exc)
            state.notify(f"Report saved on the server at {path}; the download failed ({exc})", "error")
            return
        state.notify(f"Report downloaded: {path.name}", "success")

    async def _check_backend(self) -> None:
        """Which broker the backend routes orders to: a live one makes every order ask first."""
        health = await self.services.api.health()
        if health is None:
            self.state.backend_error = "unreachable"
            self.state.notify(f"The Skeet backend at {self.services.backend_url} is unreachable: orders "
                              "cannot be placed until it answers", "error")
            return
        broker = str(health.get("broker") or "")
        self.state.live_trading = bool(broker) and not broker.lower().startswith("paper")
        if self.state.live_trading:
            self.state.modes["orders"] = f"LIVE trading · {broker.removeprefix('Live · ')}"
        self.state.changed()

    async def _load_exchanges(self) -> None:
        """The exchange picker's list; importing ccxt takes about a second, so off the UI loop."""
        self.state.exchanges = await asyncio.to_thread(exchange_ids)
        self.state.changed("settings")

    # -- exchange keys -----------------------------------------------------------------------
    async def _load_keys(self) -> None:
        keys = self.services.keys
        if keys is None or not await keys.available():
            self.state.secure_store = "none"
            self.state.changed()
            return
        self.state.secure_store = "available"
        with contextlib.suppress(NoSecureStore):
            masked = await keys.masked(self.services.exchange)
            if masked:
                self.state.saved_keys[self.services.exchange] = masked
        self.state.changed()

    async def _save_keys(self, exchange: str, api_key: str, secret: str) -> None:
        if self.services.keys is None:
            return
        try:
            masked = await self.services.keys.save(exchange, api_key, secret)
        except (NoSecureStore, ValueError) as exc:
            self.state.notify(str(exc), "error")
            return
        self.state.saved_keys[exchange] = masked
        self.state.notify(f"{exchange} keys saved in the OS keyring", "success")

    async def _delete_keys(self, exchange: str) -> None:
        if self.services.keys is None:
            return
        try:
            await self.services.keys.delete(exchange)
        except NoSecureStore as exc:
            self.state.notify(str(exc), "error")
            return
        self.state.saved_keys.pop(exchange, None)
        self.state.notify(f"{exchange} keys removed", "info")

    def submit_order(self) -> None:
        ticket, state = self.state.ticket, self.state
        if ticket.submitting:
            return  # a double tap is one order
        error = _ticket_error(ticket.amount, ticket.price if ticket.type == "limit" else None)
        if error:
            state.edit_ticket(error=error)
            return
        if state.live_trading:
            self._confirm_live_order()
            return
        self._send_order()

    def _send_order(self) -> None:
        # The key is fixed before the first attempt and kept while the outcome is unknown, so
        # pressing again after a network failure resubmits the same order, never a second one.
        client_order_id = self.state.ticket.client_order_id or new_client_order_id()
        self.state.edit_ticket(submitting=True, error=None, client_order_id=client_order_id)
        self._spawn(self._place(client_order_id))

    def _confirm_live_order(self) -> None:
        """Real money: say exactly what will be sent, and send it only on an explicit yes."""
        ticket, symbol = self.state.ticket, self.state.selected
        price = f" at {ticket.price}" if ticket.type == "limit" else " at the market price"

        def answer(send: bool) -> None:
            self.page.pop_dialog()
            if send:
                self._send_order()

        self.page.show_dialog(ft.AlertDialog(
            modal=True,
            title=ft.Text("Place a live order?"),
            content=ft.Text(f"{ticket.side.upper()} {ticket.amount} {symbol}{price} on "
                            f"{self.state.modes.get('orders', 'the exchange')}. This uses real funds."),
            actions=[ft.TextButton("Cancel", on_click=lambda _e: answer(False)),
                     ft.FilledButton(f"{ticket.side.title()} {symbol}", on_click=lambda _e: answer(True))],
        ))

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
        self._close_sheet()  # on a phone: back to the dashboard, where the order and the confirmation show
        self.state.notify(f"{order.get('side', '').title()} {order.get('amount')} {order.get('symbol')} "
                          f"{order.get('type')} order sent", "success")

    async def _cancel(self, order_id: str) -> None:
        try:
            await self.services.api.cancel_order(order_id)
        except ApiError as exc:
            self.state.notify(f"Cancel failed: {exc.message}", "error")
        else:
            self.state.notify("Order canceled", "info")

    # -- price alerts ----------------------------------------------------------------------------------

    def add_alert(self, symbol: str, price: str, note: str) -> None:
        draft = self.state.alert_draft
        if draft.submitting:
            return  # a double tap is one alert
        error = _number_error("The alert price", price) if symbol else "Pick a symbol to watch"
        if error:
            self.state.edit_alert_draft(error=error)
            return
        # As with orders: the key is fixed before the first attempt, so pressing again after a network
        # failure sets the same alert, never a second one.
        key = draft.client_alert_id or new_client_alert_id()
        self.state.edit_alert_draft(submitting=True, error=None, client_alert_id=key)
        self._spawn(self._set_alert(symbol, price, note, key))

    async def _set_alert(self, symbol: str, price: str, note: str, key: str) -> None:
        draft = self.state.alert_draft
        try:
            alert = await self.services.api.create_alert(symbol=symbol, price=price, note=note,
                                                         client_alert_id=key)
        except BackendUnreachable as exc:
            self.state.edit_alert_draft(submitting=False, error=f"{exc.message}. Press again to retry: the "
                                                                "alert will not be set twice.")
            return
        except ApiError as exc:
            self.state.edit_alert_draft(submitting=False, error=exc.message, client_alert_id=None)
            return
        self.state.edit_alert_draft(submitting=False, client_alert_id=None, saved=draft.saved + 1)
        verb = "rises to" if alert.get("condition") == "above" else "falls to"
        places = price_decimals(self.state.markets.get(symbol), alert.get("price"))
        self.state.notify(f"Alert set: {symbol} {verb} {fmt(alert.get('price'), places)}", "success")

    async def _delete_alert(self, alert_id: str) -> None:
        try:
            await self.services.api.delete_alert(alert_id)
        except ApiError as exc:
            self.state.notify(f"Could not delete the alert: {exc.message}", "error")


def _mounted(control: ft.Control) -> bool:
    """Whether `control` is on the page now (Flet raises, rather than answers None, when it is not)."""
    try:
        return control.page is not None
    except RuntimeError:
        return False


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())[:40] or "rule"


def _ticket_error(amount: str, price: str | None) -> str | None:
    return _number_error("Amount", amount) or (_number_error("Limit price", price) if price is not None else None)


def _number_error(name: str, text: str) -> str | None:
    """Why `text` is not a positive number, in words, or None when it is one."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return f"{name} must be a number"
    if not value.is_finite() or value <= 0:
        return f"{name} must be a positive number"
    return None


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
              timeframe: str, theme: str) -> Callable[[ft.Page], Awaitable[None]]:
    async def main(page: ft.Page) -> None:
        identity = await identify(page)
        services = await build_services(identity)
        session = SkeetSession(page, services, watchlist=watchlist, timeframe=timeframe, theme=theme)
        await session.start()

    return main
