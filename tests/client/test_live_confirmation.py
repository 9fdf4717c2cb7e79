"""Before a live (not paper) order the app asks, and sends nothing unless the trader says yes.
Runs on a real Flet page and session (a connection that records what it would send to a client)."""

from __future__ import annotations

from typing import Any

import flet as ft
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.app import SessionServices, SkeetSession
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.market import ReplayFeed
from services.signals import SignalEngine
from tests.client.flet_client import AnsweringConnection
from tests.controls import walk


class RecordingConnection(AnsweringConnection):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []

    def send_message(self, message: Any) -> None:
        super().send_message(message)
        self.sent.append(message)


def open_dialogs(page: ft.Page) -> list[ft.AlertDialog]:
    return [d for d in page._dialogs.controls if isinstance(d, ft.AlertDialog) and d.open]  # noqa: SLF001


async def test_a_live_order_waits_for_an_explicit_yes() -> None:
    conn = RecordingConnection()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)  # kept referenced: the page holds its session weakly
    conn.session = flet_session  # its client answers the session's calls
    page = flet_session.page
    flet_session.get_page_patch()  # what a client's registration does: the page tree is mounted
    identity = LocalIdentity("live", key=b"k")
    services = SessionServices(
        feed=ReplayFeed(), engine=SignalEngine(), modes={"orders": "LIVE trading · binance"}, backend_url="",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token, retries=0),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    app = SkeetSession(page, services, watchlist=["BTC/USDT"])
    page.add(app.shell.root)  # the page is live: its dialogs layer is attached
    app.state.live_trading = True
    app.state.edit_ticket(amount="0.5")

    app.trading.submit_order()
    dialogs = open_dialogs(page)
    assert len(dialogs) == 1 and not app.state.ticket.submitting  # asked, nothing sent yet
    text = " ".join(c.value for c in walk(dialogs[0].content) if isinstance(c, ft.Text))
    assert "Buy 0.5 BTC/USDT at the market price" in text and "real funds" in text
    cancel, confirm = dialogs[0].actions
    cancel.on_click(None)
    assert not open_dialogs(page) and not app.state.ticket.submitting and app.state.ticket.client_order_id is None

    app.trading.submit_order()
    open_dialogs(page)[0].actions[1].on_click(None)
    assert app.state.ticket.submitting and app.state.ticket.client_order_id  # sent, with its idempotency key
    await app.close()
    assert flet_session is not None
