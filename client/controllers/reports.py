"""`ReportsController`: the offline analytics report (HTML, plotly inlined), written off the UI loop and,
where the app runs on a server or a phone, handed to the client."""

from __future__ import annotations

import asyncio
import logging
import time

from client.context import SessionContext
from services.analytics import analyse, export_html_report
from services.auth.devtoken import state_dir

log = logging.getLogger(__name__)


class ReportsController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx

    async def export(self) -> None:
        state, screen = self._ctx.state, self._ctx.screen
        prices = {s: q.last for s, q in state.quotes.items()}
        path = state_dir() / "reports" / f"skeet-report-{time.strftime('%Y%m%d-%H%M%S')}.html"
        try:
            analytics = analyse(list(state.orders.values()), prices)
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
