"""The selected symbol's order book (10 levels a side, depth bars, spread), its recent trades and its 24 h
high, low and volume, from what the market feed reports into `AppState` (no I/O here)."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import DOWN, UP
from views.common import amount_decimals, fmt, fmt_time, panel, price_decimals

LEVELS = 10
TRADES_SHOWN = 14


class OrderBookView:
    """Its level rows are made once (`LEVELS` a side) and take each refresh's prices, amounts and bar widths
    in place, a row with no level hidden: a refresh sends the values that changed, not ~160 new controls
    (which the server encodes and the browser builds, every second)."""

    TOPICS = frozenset({"depth", "selected", "markets"})

    def __init__(self) -> None:
        self.stats = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.spread = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT, text_align=ft.TextAlign.CENTER)
        self.ask_levels = [Level(DOWN) for _ in range(LEVELS)]  # the best ask last: nearest the spread
        self.bid_levels = [Level(UP) for _ in range(LEVELS)]  # the best bid first
        self.asks = ft.Column([level.control for level in self.ask_levels], spacing=0)
        self.bids = ft.Column([level.control for level in self.bid_levels], spacing=0)
        self.empty = ft.Text("No order book from this market source.", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        header = ft.Row([ft.Text("Price", size=11, expand=True, color=ft.Colors.ON_SURFACE_VARIANT),
                         ft.Text("Amount", size=11, color=ft.Colors.ON_SURFACE_VARIANT)])
        self.control = panel("Order book", ft.Column([self.stats, header, self.asks, self.spread, self.bids,
                                                      self.empty], spacing=2), identifier="order-book")

    def render(self, state: AppState) -> None:
        symbol = state.selected
        market = state.markets.get(symbol)
        book = state.order_books.get(symbol) or {}
        ticker = state.tickers.get(symbol) or {}
        places = price_decimals(market, ticker.get("last"))
        amount_places = amount_decimals(market)
        base = (market or {}).get("base") or symbol.split("/")[0]
        self.stats.value = day_stats(ticker, places, amount_places, base)
        asks = list(book.get("asks") or [])[:LEVELS]
        bids = list(book.get("bids") or [])[:LEVELS]
        self.empty.visible = not (asks or bids)
        largest = max([a for _, a in asks + bids] or [1.0])
        # Asks fill from the bottom (the best one next to the spread), bids from the top.
        shown_asks: list[tuple[float, float] | None] = [None] * (LEVELS - len(asks)) + list(reversed(asks))
        for level, entry in zip(self.ask_levels, shown_asks, strict=True):
            level.show(entry, largest, places, amount_places)
        for level, entry in zip(self.bid_levels, [*bids, *[None] * (LEVELS - len(bids))], strict=True):
            level.show(entry, largest, places, amount_places)
        self.asks.visible = bool(asks)
        self.bids.visible = bool(bids)
        if asks and bids:
            spread = asks[0][0] - bids[0][0]
            mid = (asks[0][0] + bids[0][0]) / 2
            self.spread.value = f"Spread {fmt(spread, places)} ({spread / mid * 100:.3f}%)"
        else:
            self.spread.value = ""
        self.control.label = (f"{symbol} order book: best bid {fmt(bids[0][0], places)}, best ask "
                              f"{fmt(asks[0][0], places)}" if asks and bids else f"{symbol} order book, empty")


def day_stats(ticker: dict[str, Any], places: int, amount_places: int, base: str) -> str:
    """"24h high 98,000.00 · low 96,500.00 · volume 1,234.5 BTC", or nothing before the ticker is known."""
    if not ticker or ticker.get("high") is None:
        return ""
    volume = ticker.get("baseVolume")
    parts = [f"24h high {fmt(ticker['high'], places)}", f"low {fmt(ticker.get('low'), places)}"]
    if volume is not None:
        parts.append(f"volume {fmt(volume, min(amount_places, 2))} {base}")
    return " · ".join(parts)


class Level:
    """One price level's row: its price and amount over a bar as wide as its share of the largest level
    shown. Made once; `show` gives it a level (or hides it)."""

    def __init__(self, colour: str) -> None:
        self.bar = ft.Container(bgcolor=ft.Colors.with_opacity(0.15, colour), border_radius=2, expand=1)
        self.rest = ft.Container(expand=99)
        self.price = ft.Text("", size=12, color=colour, expand=True, font_family="monospace")
        self.amount = ft.Text("", size=12, font_family="monospace")
        self.control = ft.Stack([ft.Row([self.rest, self.bar], spacing=0, height=18),
                                 ft.Row([self.price, self.amount], height=18)], height=18, visible=False)

    def show(self, level: tuple[float, float] | None, largest: float, places: int, amount_places: int) -> None:
        self.control.visible = level is not None
        if level is None:
            return
        price, amount = level
        share = max(0.02, min(1.0, amount / largest)) if largest else 0.0
        width = round(share * 100)
        self.bar.expand = width
        self.rest.expand = 100 - width
        self.rest.visible = width < 100
        self.price.value = fmt(price, places)
        self.amount.value = fmt(amount, amount_places)


class TradesView:
    """Its rows are made once (`TRADES_SHOWN`) and take each refresh's trades in place, as the book's do."""

    TOPICS = frozenset({"depth", "selected", "markets"})

    def __init__(self) -> None:
        self.rows = [TradeRow() for _ in range(TRADES_SHOWN)]
        self.list = ft.Column([row.control for row in self.rows], spacing=0)
        self.empty = ft.Text("No trades from this market source yet.", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.control = panel("Recent trades", ft.Column([self.empty, self.list], spacing=2), identifier="trades")

    def render(self, state: AppState) -> None:
        symbol = state.selected
        market = state.markets.get(symbol)
        trades = (state.recent_trades.get(symbol) or [])[:TRADES_SHOWN]
        self.empty.visible = not trades
        places = price_decimals(market, trades[0].get("price") if trades else None)
        amount_places = amount_decimals(market)
        for row, trade in zip(self.rows, [*trades, *[None] * (TRADES_SHOWN - len(trades))], strict=True):
            row.show(trade, places, amount_places)


class TradeRow:
    """One trade of the tape: price (coloured by its side), amount, time."""

    def __init__(self) -> None:
        self.price = ft.Text("", size=12, expand=True, font_family="monospace")
        self.amount = ft.Text("", size=12, font_family="monospace")
        self.time = ft.Text("", size=11, width=58, text_align=ft.TextAlign.RIGHT, color=ft.Colors.ON_SURFACE_VARIANT)
        self.control = ft.Row([self.price, self.amount, self.time], height=18, visible=False)

    def show(self, trade: dict[str, Any] | None, places: int, amount_places: int) -> None:
        self.control.visible = trade is not None
        if trade is None:
            return
        self.price.value = fmt(trade.get("price"), places)
        self.price.color = UP if trade.get("side") == "buy" else DOWN
        self.amount.value = fmt(trade.get("amount"), amount_places)
        self.time.value = fmt_time(trade.get("timestamp"))
