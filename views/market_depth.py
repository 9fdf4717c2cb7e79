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
    TOPICS = frozenset({"depth", "selected", "markets"})

    def __init__(self) -> None:
        self.stats = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.spread = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT, text_align=ft.TextAlign.CENTER)
        self.asks = ft.Column(spacing=0)
        self.bids = ft.Column(spacing=0)
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
        self.asks.controls = [_level(p, a, largest, DOWN, places, amount_places) for p, a in reversed(asks)]
        self.bids.controls = [_level(p, a, largest, UP, places, amount_places) for p, a in bids]
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


def _level(price: float, amount: float, largest: float, colour: str, places: int, amount_places: int) -> ft.Control:
    """One price level with a bar behind it as wide as its share of the largest level shown."""
    share = max(0.02, min(1.0, amount / largest)) if largest else 0.0
    bar = ft.Container(bgcolor=ft.Colors.with_opacity(0.15, colour), border_radius=2, expand=round(share * 100))
    rest = ft.Container(expand=100 - round(share * 100)) if share < 1 else None
    return ft.Stack([
        ft.Row([c for c in (rest, bar) if c is not None], spacing=0, height=18),
        ft.Row([ft.Text(fmt(price, places), size=12, color=colour, expand=True, font_family="monospace"),
                ft.Text(fmt(amount, amount_places), size=12, font_family="monospace")], height=18),
    ], height=18)


class TradesView:
    TOPICS = frozenset({"depth", "selected", "markets"})

    def __init__(self) -> None:
        self.list = ft.Column(spacing=0)
        self.empty = ft.Text("No trades from this market source yet.", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.control = panel("Recent trades", ft.Column([self.empty, self.list], spacing=2), identifier="trades")

    def render(self, state: AppState) -> None:
        symbol = state.selected
        market = state.markets.get(symbol)
        trades = (state.recent_trades.get(symbol) or [])[:TRADES_SHOWN]
        self.empty.visible = not trades
        places = price_decimals(market, trades[0].get("price") if trades else None)
        amount_places = amount_decimals(market)
        self.list.controls = [
            ft.Row([ft.Text(fmt(t.get("price"), places), size=12, expand=True, font_family="monospace",
                            color=UP if t.get("side") == "buy" else DOWN),
                    ft.Text(fmt(t.get("amount"), amount_places), size=12, font_family="monospace"),
                    ft.Text(fmt_time(t.get("timestamp")), size=11, width=58, text_align=ft.TextAlign.RIGHT,
                            color=ft.Colors.ON_SURFACE_VARIANT)], height=18)
            for t in trades
        ]
