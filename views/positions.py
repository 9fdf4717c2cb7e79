"""Positions and P&L: what the trader holds, marked at the live price, with realised P&L and fees."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import direction_colour, direction_icon
from views.common import amount_decimals, fmt, panel, price_decimals

ROW_H = 44  # px a position's row takes in the list (two lines and the spacing)
CHROME_H = 56  # px of the panel around its rows: padding, title row, spacing
SCREEN_LEFT_H = 200  # px of the screen a portfolio keeps for the title, the order history's top, the nav


class PositionsView:
    # The AppState topics this view reads: it repaints only for them ("rows": the screen's height, which
    # caps the Portfolio panel).
    TOPICS = frozenset({"positions", "quote.held", "markets", "rows"})
    def __init__(self) -> None:
        self.total = ft.Text("", size=13, weight=ft.FontWeight.W_600)
        self.empty = ft.Text("No open positions. Filled buy orders show here.",
                             color=ft.Colors.ON_SURFACE_VARIANT, size=13)
        self.list = ft.Column(spacing=6, scroll=ft.ScrollMode.AUTO, expand=True)
        self.control = panel("Positions & P&L", ft.Column([self.empty, self.list], expand=True),
                             identifier="positions", expand=True, actions=[self.total])
        # The Portfolio screen's box for the panel (the screen scrolls: the panel cannot expand in it).
        self.portfolio_box = ft.Container(self.control, height=self.height_for(0, None))
        self._sized = False

    def size_to_rows(self, sized: bool) -> None:
        """On the Portfolio screen the panel is as tall as its rows, up to what the screen leaves it (the
        list scrolls beyond); elsewhere the layout gives it its height. It was a fixed 260 px: three rows
        and a band of nothing, or a sixth position hidden in a box a third of the screen."""
        self._sized = sized

    def height_for(self, rows: int, screen_h: float | None) -> float:
        room = max(CHROME_H + ROW_H, (screen_h or 900.0) - SCREEN_LEFT_H)
        return min(CHROME_H + max(1, rows) * ROW_H, room)

    def render(self, state: AppState) -> list[ft.Control] | None:
        positions = sorted(state.open_positions(), key=lambda p: p.get("symbol", ""))
        self.empty.visible = not positions
        unrealised = [state.unrealised_pnl(p) for p in positions]  # None: the cost is not known
        realised = sum(p.get("realizedPnl") or 0.0 for p in state.positions.values())
        fees = sum((p.get("fees") or {}).get("cost") or 0.0 for p in state.positions.values())
        total = sum(pnl for pnl in unrealised if pnl is not None) + realised
        unknown = sum(pnl is None for pnl in unrealised)
        apart = f" · {unknown} without a known cost" if unknown else ""
        self.total.value = f"P&L {total:+,.2f} (fees {fees:,.2f}){apart}" if state.positions else ""
        self.total.color = direction_colour((total > 0) - (total < 0))
        self.list.controls = [self._row(p, pnl, state) for p, pnl in zip(positions, unrealised, strict=True)]
        if not self._sized:
            return None
        self.portfolio_box.height = self.height_for(len(positions), state.height)
        return [self.portfolio_box]  # its height with its rows

    @staticmethod
    def _row(position: dict[str, Any], pnl: float | None, state: AppState) -> ft.Control:
        symbol = position.get("symbol", "")
        market = state.markets.get(symbol)
        quote = state.quotes.get(symbol)
        mark = quote.last if quote else position.get("markPrice")
        entry = position.get("entryPrice")
        places = price_decimals(market, mark)
        if pnl is None:  # coins the trade history does not explain (deposited, or older than it goes back)
            sign, result = 0, "cost partly unknown" if position.get("basis") == "partial" else "cost unknown"
        else:
            sign = (pnl > 0) - (pnl < 0)
            pct = (pnl / position["costBasis"] * 100) if position.get("costBasis") else 0.0
            result = f"{pnl:+,.2f} ({pct:+.2f}%)"
        return ft.Semantics(
            identifier=f"position-{symbol}",
            label=f"{symbol} position {position.get('amount')}, unrealised P&L {result}",
            content=ft.Row(
                [
                    ft.Column([ft.Text(symbol, weight=ft.FontWeight.W_600, size=13),
                               ft.Text(f"{fmt(position.get('amount'), amount_decimals(market))} @ "
                                       f"{fmt(entry, places)}", size=12, color=ft.Colors.ON_SURFACE_VARIANT)],
                              spacing=0, expand=True),
                    ft.Column([ft.Text(f"mark {fmt(mark, places)}", size=12, text_align=ft.TextAlign.RIGHT),
                               ft.Row([direction_icon(sign),
                                       ft.Text(result, size=12, color=direction_colour(sign))],
                                      spacing=0, tight=True)],
                              spacing=0, horizontal_alignment=ft.CrossAxisAlignment.END),
                ],
            ),
        )
