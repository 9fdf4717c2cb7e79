"""`ReportsController`: the offline analytics report (HTML, plotly inlined), written off the UI loop and,
where the app runs on a server or a phone, handed to the client."""

from __future__ import annotations

import asyncio
import logging
import time

from client.context import SessionContext
from client.controllers.strategies import HistoryFill, fill_history, store_reads
from services.analytics import PriceHistory, analyse, export_html_report, fills_from_orders, store_prices
from services.auth.devtoken import state_dir
from services.market.history import CandleStore

log = logging.getLogger(__name__)


class ReportsController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx

    async def _price_history(self, orders: list[dict]) -> PriceHistory | None:
        """Hourly closes from the history store (filled from the app's market source first) for the symbols
        traded, so the report's equity curve is marked hour by hour; None when the source has no history."""
        spec = self._ctx.state.market_source
        fills = fills_from_orders(orders)
        if not fills or not store_reads(spec):
            return None
        store = CandleStore(state_dir() / "history")
        now = int(time.time() * 1000)
        name = None
        try:
            for symbol in sorted({f.symbol for f in fills}):
                since = min(f.timestamp_ms for f in fills if f.symbol == symbol)
                since -= since % 3_600_000  # the hour of the first fill, whose close marks it first
                name = await asyncio.to_thread(fill_history, store, spec, symbol, "1h", HistoryFill(since, now))
        except Exception as exc:  # no history: the curve is marked at the fills, as without a store
            log.warning("no price history for the report: %s", exc)
            return None
        return store_prices(store, name, "1h") if name else None

    async def export(self) -> None:
        state, screen = self._ctx.state, self._ctx.screen
        prices = {s: q.last for s, q in state.quotes.items()}
        path = state_dir() / "reports" / f"skeet-report-{time.strftime('%Y%m%d-%H%M%S')}.html"
        try:
            orders = list(state.orders.values())
            analytics = analyse(orders, prices, history=await self._price_history(orders))
            await asyncio.to_thread(export_html_report, analytics, path)
        except (OSError, ValueError) as exc:
            state.notify(f"Report failed: {exc}", "error")
            return
        if not screen.saves_on_client:
            state.notify(f"Report saved to {path}", "success")  # a desktop app: the file is on this machine
            return
        # The app runs on a server (web), or the file belongs in the phone's own storage: hand the bytes to
        # the client, which downloads them (browser) or asks where to keep them (phone).
        try:
            await screen.save_on_client(path.name, await asyncio.to_thread(path.read_bytes))
        except Exception as exc:  # the client refused or went away: the copy on the server is still there
            log.warning("report download failed: %s", exc)
            state.notify(f"Report saved on the server at {path}; the download failed ({exc})", "error")
            return
        state.notify(f"Report downloaded: {path.name}", "success")
