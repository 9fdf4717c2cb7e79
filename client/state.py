"""`AppState`: the one observable store the views read. Services write into it through its methods;
every change bumps `version`, marks its topics dirty and calls `on_change` (the session's repaint scheduler)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from client.backtest_lab import BacktestLab
from client.theme import Breakpoint, breakpoint_for
from services.live import Change, ConnectionStatus
from services.market import TIMEFRAME_MS, Candle, FeedLink, Tick

MAX_BARS = 500  # candles loaded per symbol with its history: what the chart starts with
MAX_HELD = 20_000  # candles held per symbol once the chart scrolls back through the history store (~2 MB)
MAX_SIGNALS = 200
MAX_EQUITY_POINTS = 24 * 60  # one a minute for a day
MAX_INDICATOR_POINTS = 24 * 60
MIN_DISTINCT_BARS = 8
INDICATOR_KEY = "ema_20"  # the engine indicator drawn over the candles

Section = Literal["dashboard", "portfolio", "signals", "insights", "settings"]
SECTIONS: tuple[Section, ...] = ("dashboard", "portfolio", "signals", "insights", "settings")
TIMEFRAMES: tuple[str, ...] = tuple(tf for tf in ("1m", "5m", "15m", "1h", "4h", "1d") if tf in TIMEFRAME_MS)
INDICATOR_MS = 60_000  # the overlay is kept per minute and sampled at whatever bar size is shown


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    last: float
    open_24h: float
    timestamp_ms: int
    direction: int = 0  # sign of the last price move: the arrow next to the colour

    @property
    def change_pct(self) -> float:
        return (self.last / self.open_24h - 1.0) * 100.0 if self.open_24h else 0.0


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the order ticket holds while the trader fills it in (UI state, not an order yet)."""

    side: str = "buy"
    type: str = "market"  # client.ticket.ORDER_TYPES: market limit stop_market stop_limit trailing_stop oco
    amount: str = ""
    amount_mode: str = "base"  # "base": the amount in BTC; "quote": the order's value in USDT
    price: str = ""  # limit price (limit, stop_limit), take-profit leg (oco)
    stop_price: str = ""  # trigger (stop_market, stop_limit), stop-loss leg (oco)
    trailing_percent: str = ""
    tif: str = "GTC"
    post_only: bool = False
    bracket: bool = False  # attach take-profit / stop-loss exits to the entry
    take_profit: str = ""
    stop_loss: str = ""
    confirm_above: str = ""  # ask before orders worth more than this (quote currency); empty: never
    submitting: bool = False
    error: str | None = None
    client_order_id: str | None = None  # fixed at first submit, so a resubmit is the same order
    last_sent: str = ""  # the last order this ticket sent, as its notice said it, with the time (it stays)


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """The price-alert form's outcome while it is sent (the inputs hold their own text)."""

    submitting: bool = False
    error: str | None = None
    client_alert_id: str | None = None  # fixed at first submit, so a resubmit is the same alert
    saved: int = 0  # bumped when an alert is set, so the form can clear itself


@dataclass(frozen=True, slots=True)
class Notice:
    message: str
    kind: Literal["info", "success", "error"] = "info"
    serial: int = 0


@dataclass
class AppState:
    watchlist: list[str]
    selected: str
    timeframe: str = "1m"
    modes: dict[str, str] = field(default_factory=dict)
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)
    quotes: dict[str, Quote] = field(default_factory=dict)
    candles: dict[str, list[Candle]] = field(default_factory=dict)
    indicator: dict[str, dict[int, float]] = field(default_factory=dict)  # symbol → minute → value
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    insights: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    insight_pending: bool = False
    rules: list[Any] = field(default_factory=list)  # services.signals.Rule, as the rule book holds them
    rule_error: str | None = None
    indicator_keys: tuple[str, ...] = ()  # what a rule can compare: "price", "rsi_14", ...
    rule_saved: int = 0  # bumped when a rule is saved, so the editor can clear its form
    theme: str = "system"
    history_span_ms: int = 0  # how much distinct history the source has (a replay's length); 0: unlimited
    chart_bars: int = 0  # the range selector; 0: the default for the screen width
    chart_studies: tuple[str, ...] = ("ema20",)  # views.chart_studies keys drawn, in the order picked
    chart_full: bool = False  # a phone shows the chart alone, full screen
    alerts_enabled: bool = False  # pop up a notice when a rule fires for a watched symbol
    live_trading: bool = False  # the backend routes orders to a real exchange: confirm each one
    market_source: str = "synthetic"
    exchanges: list[str] = field(default_factory=list)  # what a live feed can use (empty: no ccxt here)
    symbol_query: str = ""
    secure_store: str = "unknown"  # what the OS keyring offers: "available" | "none" | "unknown"
    saved_keys: dict[str, str] = field(default_factory=dict)  # exchange → masked API key
    signals: deque[Any] = field(default_factory=lambda: deque(maxlen=MAX_SIGNALS))
    feed_status: dict[str, str] = field(default_factory=dict)
    market_link: FeedLink | None = None  # a steered feed's link (the gateway on a phone): the badge shows it
    live_status: ConnectionStatus = "connecting"
    backend_error: str | None = None
    ticket: Ticket = field(default_factory=Ticket)
    balance: dict[str, Any] = field(default_factory=dict)  # ccxt balance: {"free": {CUR: n}, "used": ..., "total": ...}
    order_books: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol → ccxt order book
    recent_trades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # symbol → ccxt trades, newest first
    tickers: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol → ccxt ticker (24 h high, low, volume)
    history_start: set[tuple[str, str]] = field(default_factory=set)  # (symbol, timeframe) scrolled back to its first bar
    equity_curve: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=MAX_EQUITY_POINTS))
    account_revision: int = 0  # bumped by every order or position change: the balance is then re-read
    alert_draft: AlertDraft = field(default_factory=AlertDraft)
    backtest: BacktestLab = field(default_factory=BacktestLab)  # the Strategies screen
    notice: Notice | None = None
    width: float = 1440
    height: float | None = None  # the screen's, once known: how many watchlist rows can be on it
    section: Section = "dashboard"
    version: int = 0
    dirty: set[str] = field(default_factory=lambda: {"all"})  # topics changed since the last repaint
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)  # wakes the repaint

    # -- observation -------------------------------------------------------------------------
    def changed(self, *topics: str) -> None:
        """Something changed; `topics` say what (views repaint only for theirs), none means all."""
        self.version += 1
        self.dirty.update(topics or ("all",))
        if self.on_change is not None:
            self.on_change()

    def take_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    @property
    def breakpoint(self) -> Breakpoint:
        return breakpoint_for(self.width)

    # -- market data -------------------------------------------------------------------------
    def set_markets(self, markets: dict[str, dict[str, Any]]) -> None:
        self.markets = markets
        self.changed("markets")

    def set_history(self, symbol: str, candles: list[Candle], open_24h: float | None = None) -> None:
        self.candles[symbol] = list(candles[-MAX_BARS:])
        self.history_start.discard((symbol, self.timeframe))
        if candles and symbol not in self.quotes:
            last = candles[-1]
            self.quotes[symbol] = Quote(symbol, last.close, open_24h or candles[0].open, last.timestamp_ms)
        self.changed("candles", "quotes", "quote.selected", "quote.held")

    def prepend_history(self, symbol: str, timeframe: str, older: list[Candle]) -> bool:
        """Older bars (the chart scrolling back) put before the held ones; an empty page marks the start of
        the source's history. Ignored (False) when they no longer fit: another timeframe is shown, or the
        held bars were replaced meanwhile. Holds at most MAX_HELD bars: past that, no more is loaded."""
        bars = self.candles.get(symbol)
        if timeframe != self.timeframe or not bars:
            return False
        first = bars[0].timestamp_ms
        older = [c for c in older if c.timestamp_ms < first]
        if not older:
            self.history_start.add((symbol, timeframe))
        else:
            bars[:0] = older[-(MAX_HELD - len(bars)):] if len(bars) < MAX_HELD else []
        self.changed("candles")
        return True

    def can_scroll_back(self, symbol: str) -> bool:
        return (symbol, self.timeframe) not in self.history_start and len(self.candles.get(symbol, ())) < MAX_HELD

    def apply_tick(self, tick: Tick, indicators: dict[str, float] | None = None) -> None:
        """O(1): updates the quote, the current bar (or opens the next) and the indicator point."""
        previous = self.quotes.get(tick.symbol)
        if previous is None:
            self.quotes[tick.symbol] = Quote(tick.symbol, tick.price, tick.price, tick.timestamp_ms)
        else:
            move = tick.price - previous.last
            direction = 1 if move > 0 else -1 if move < 0 else previous.direction
            # The constructor, not dataclasses.replace: this runs for every trade of every symbol in every
            # session, and replace() looks the fields up each time.
            self.quotes[tick.symbol] = Quote(tick.symbol, tick.price, previous.open_24h, tick.timestamp_ms, direction)
        bar_ms = TIMEFRAME_MS[self.timeframe]
        bar_start = tick.timestamp_ms - tick.timestamp_ms % bar_ms
        bars = self.candles.setdefault(tick.symbol, [])
        if bars and bars[-1].timestamp_ms == bar_start:
            bar = bars[-1]
            bars[-1] = Candle(bar_start, bar.open, max(bar.high, tick.price), min(bar.low, tick.price),
                              tick.price, bar.volume + tick.amount)
        elif not bars or bars[-1].timestamp_ms < bar_start:
            bars.append(Candle(bar_start, tick.price, tick.price, tick.price, tick.price, tick.amount))
            del bars[:-MAX_HELD]
        value = (indicators or {}).get(INDICATOR_KEY)
        if value is not None and math.isfinite(value):
            self.record_indicator(tick.symbol, tick.timestamp_ms, value)
        self.changed(*self._tick_topics(tick.symbol))

    def _tick_topics(self, symbol: str) -> tuple[str, ...]:
        """What a trade of `symbol` changes: every quote list; the chart and ticket only for the selected
        symbol ("candles", "quote.selected"); the account and positions only for what is held ("quote.held").
        Per-session repaints then skip the panels a trade of another symbol cannot change."""
        topics: tuple[str, ...] = ("quotes", "candles", "quote.selected") if symbol == self.selected else ("quotes",)
        totals = self.balance.get("total") or {}
        held = bool(totals) and symbol.partition("/")[0] in totals or bool(self.positions) and any(
            p.get("symbol") == symbol for p in self.positions.values())
        return (*topics, "quote.held") if held else topics

    def record_indicator(self, symbol: str, timestamp_ms: int, value: float) -> None:
        """Keep the overlay per minute (the last value in it); trims to a day. Amortised O(1)."""
        series = self.indicator.setdefault(symbol, {})
        series[timestamp_ms - timestamp_ms % INDICATOR_MS] = value
        if len(series) > MAX_INDICATOR_POINTS + 64:
            for old in sorted(series)[: len(series) - MAX_INDICATOR_POINTS]:
                del series[old]

    def set_market_link(self, link: FeedLink) -> None:
        if link != self.market_link:
            self.market_link = link
            self.changed("live")

    def set_feed_status(self, symbol: str, status: str) -> None:
        if self.feed_status.get(symbol) != status:
            self.feed_status[symbol] = status
            self.changed("feed")

    def add_signals(self, signals: list[Any]) -> None:
        """Keep the log newest first. Live signals are newer than all shown; a symbol's warm-up history
        (added one symbol after another) is merged in by time instead of stacked on top."""
        if not signals:
            return
        if not self.signals or min(s.timestamp_ms for s in signals) >= self.signals[0].timestamp_ms:
            self.signals.extendleft(signals)
        else:
            merged = sorted([*self.signals, *signals], key=lambda s: s.timestamp_ms, reverse=True)
            self.signals = deque(merged[:MAX_SIGNALS], maxlen=MAX_SIGNALS)
        self.changed("signals")

    # -- live user state ---------------------------------------------------------------------
    def apply_change(self, change: Change) -> dict[str, Any] | None:
        """A listener event (Firestore or /v1/stream): the only way orders reach the screen.
        Returns the document as it was before."""
        table = {"orders": self.orders, "positions": self.positions, "insights": self.insights,
                 "alerts": self.alerts, "strategies": self.backtest.saved}.get(change.collection)
        if table is None:
            return None
        before = table.get(change.doc_id)
        if change.kind == "removed" or change.doc is None:
            table.pop(change.doc_id, None)
        else:
            table[change.doc_id] = change.doc
        if change.collection == "insights":
            self.insight_pending = False
        if change.collection in ("orders", "positions"):
            self.account_revision += 1
        self.changed(change.collection)
        return before

    def set_live_status(self, status: ConnectionStatus) -> None:
        self.live_status = status
        self.changed("live")

    def sorted_insights(self) -> list[dict[str, Any]]:
        return sorted(self.insights.values(), key=lambda i: i.get("timestamp") or 0, reverse=True)

    def open_positions(self) -> list[dict[str, Any]]:
        return [p for p in self.positions.values() if (p.get("amount") or 0) > 0]

    def unrealised_pnl(self, position: dict[str, Any]) -> float | None:
        """Marked at the live quote when there is one, else at the backend's last mark."""
        quote = self.quotes.get(position.get("symbol", ""))
        amount, basis = position.get("amount") or 0.0, position.get("costBasis")
        if quote is not None and basis is not None:
            return amount * quote.last - basis
        return position.get("unrealizedPnl")

    def sorted_alerts(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(active, triggered): active ones nearest to firing first, triggered ones newest first."""
        active = [a for a in self.alerts.values() if a.get("status") == "active"]
        fired = [a for a in self.alerts.values() if a.get("status") == "triggered"]
        active.sort(key=lambda a: d if (d := self.alert_distance(a)) is not None else math.inf)
        fired.sort(key=lambda a: a.get("triggeredAt") or 0, reverse=True)
        return active, fired

    def alert_distance(self, alert: dict[str, Any]) -> float | None:
        """How far the price must move for `alert` to fire, as a fraction of the last price."""
        quote = self.quotes.get(alert.get("symbol", ""))
        price = alert.get("price")
        if quote is None or not price or not quote.last:
            return None
        return abs(price - quote.last) / quote.last

    def edit_alert_draft(self, **fields: Any) -> None:
        self.alert_draft = replace(self.alert_draft, **fields)
        self.changed("alert_draft")

    def open_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.sorted_orders() if o.get("status") == "open"]

    def sorted_orders(self) -> list[dict[str, Any]]:
        return sorted(self.orders.values(), key=lambda o: o.get("timestamp") or 0, reverse=True)

    # -- UI state ----------------------------------------------------------------------------
    def select(self, symbol: str) -> None:
        if symbol != self.selected:
            self.selected = symbol
            self.changed("selected")

    def set_watchlist(self, symbols: list[str]) -> None:
        self.watchlist = list(dict.fromkeys(symbols))
        if self.selected not in self.watchlist and self.watchlist:
            self.selected = self.watchlist[0]
        self.changed("watchlist")

    def set_timeframe(self, timeframe: str) -> None:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe!r}")
        self.timeframe = timeframe
        self.changed("candles")

    def timeframe_available(self, timeframe: str) -> bool:
        """A replay of N minutes can fill bars up to N/8 long; longer ones would repeat the loop."""
        return not self.history_span_ms or TIMEFRAME_MS[timeframe] * MIN_DISTINCT_BARS <= self.history_span_ms

    def set_range(self, bars: int) -> None:
        self.chart_bars = bars
        self.changed("chart")

    def toggle_study(self, key: str) -> None:
        self.chart_studies = (tuple(k for k in self.chart_studies if k != key) if key in self.chart_studies
                              else (*self.chart_studies, key))
        self.changed("chart")

    def toggle_chart_full(self) -> None:
        self.chart_full = not self.chart_full
        self.changed("layout")

    def set_alerts(self, enabled: bool) -> None:
        self.alerts_enabled = enabled
        self.changed("settings")

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        self.changed("settings")

    def search_symbol(self, query: str) -> None:
        self.symbol_query = query
        self.changed("settings")

    def symbol_matches(self, limit: int = 8) -> list[str]:
        """Tradable symbols containing the query, not already watched; exact base matches first."""
        query = self.symbol_query.strip().upper()
        if not query:
            return []
        found = [s for s in self.markets if query in s.upper() and s not in self.watchlist]
        return sorted(found, key=lambda s: (not s.startswith(query + "/"), not s.startswith(query), s))[:limit]

    def set_rules(self, rules: list[Any], error: str | None = None) -> None:
        self.rules, self.rule_error = list(rules), error
        self.changed("rules")

    def navigate(self, section: Section) -> None:
        if section != self.section:
            self.section = section
            self.changed("layout")

    def resize(self, width: float, height: float | None = None) -> None:
        if height is not None and height != self.height:
            self.height = height
            self.changed("rows")
        if width != self.width:
            self.width = width
            self.changed("layout")

    # -- account -------------------------------------------------------------------------------
    def set_balance(self, balance: dict[str, Any]) -> None:
        self.balance = balance
        self.changed("balance")

    def free(self, currency: str) -> float:
        return float((self.balance.get("free") or {}).get(currency) or 0.0)

    def used(self, currency: str) -> float:
        return float((self.balance.get("used") or {}).get(currency) or 0.0)

    def equity(self, quote: str = "USDT") -> float | None:
        """Everything marked in `quote`: each currency's total at its last price against `quote`.
        None until the balance is known or while a held currency has no price yet."""
        totals = self.balance.get("total") or {}
        if not totals:
            return None
        value = 0.0
        for currency, amount in totals.items():
            if not amount:
                continue
            if currency == quote:
                value += float(amount)
                continue
            q = self.quotes.get(f"{currency}/{quote}")
            if q is None:
                return None
            value += float(amount) * q.last
        return value

    def record_equity(self, timestamp_ms: int) -> None:
        """One point a minute (the last value in it): the equity curve."""
        value = self.equity()
        if value is None:
            return
        minute = timestamp_ms - timestamp_ms % 60_000
        if self.equity_curve and self.equity_curve[-1] == (minute, value):
            return  # nothing moved: no repaint
        if self.equity_curve and self.equity_curve[-1][0] == minute:
            self.equity_curve[-1] = (minute, value)
        else:
            self.equity_curve.append((minute, value))
        self.changed("equity")

    def set_market_depth(self, symbol: str, *, book: dict[str, Any] | None = None,
                         trades: list[dict[str, Any]] | None = None, ticker: dict[str, Any] | None = None) -> None:
        if book is not None:
            self.order_books[symbol] = book
        if trades is not None:
            self.recent_trades[symbol] = trades
        if ticker is not None:
            self.tickers[symbol] = ticker
        self.changed("depth")

    def edit_ticket(self, **fields: Any) -> None:
        self.ticket = replace(self.ticket, **fields)
        self.changed("ticket")

    def notify(self, message: str, kind: Literal["info", "success", "error"] = "info") -> None:
        serial = (self.notice.serial + 1) if self.notice else 1
        self.notice = Notice(message, kind, serial)
        self.changed("notice")


def alert_fired(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """An alert turned triggered just now (one already triggered when the app started is old news)."""
    return (after is not None and after.get("status") == "triggered"
            and before is not None and before.get("status") == "active")
