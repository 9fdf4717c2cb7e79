"""The session core on a real Flet page and session (a connection that records what it would send):
closing stops every task it owns and releases its services; a tab that goes away and stays away ends it;
one that comes back keeps it; a closed session leaves nothing on the page Flet may keep; the phone's ticket
sheet leaves its tap-away strip on any screen."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from typing import Any

import flet as ft
import msgpack
import pytest
from flet.controls.base_control import BaseControl
from flet.messaging.protocol import MessageAction, configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.app import SessionServices, SkeetSession
from client.sessions import SessionRegistry
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.market import ReplayFeed
from services.signals import SignalEngine
from tests.client.flet_client import ClientConnection
from tests.client.test_alerts import until
from tests.client.test_live_confirmation import RecordingConnection


class WireConnection(RecordingConnection):
    """Serialises every message as Flet's web server does (msgpack), which is when Flet takes its copy of
    each control's lists to diff the next update against."""

    def send_message(self, message: Any) -> None:
        self.sent.append(msgpack.packb([message.action, message.body],
                                       default=configure_encode_object_for_msgpack(BaseControl)))


def make(registry: SessionRegistry, end_after_s: float, conn: RecordingConnection | None = None
         ) -> tuple[Session, SkeetSession]:
    conn = conn or RecordingConnection()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)
    conn.session = flet_session  # its client answers the session's calls
    page_patch = flet_session.get_page_patch()  # what a registering client is sent
    if isinstance(conn, WireConnection):
        conn.sent.append(msgpack.packb(page_patch, default=configure_encode_object_for_msgpack(BaseControl)))
    identity = LocalIdentity("core", key=b"k")
    services = SessionServices(
        feed=ReplayFeed(), engine=SignalEngine(), modes={}, backend_url="http://127.0.0.1:9",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token, retries=0),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    app = SkeetSession(flet_session.page, services, watchlist=["BTC/USDT"], registry=registry,
                       end_after_disconnect_s=end_after_s)
    return flet_session, app


async def test_close_stops_every_task_and_releases_the_services() -> None:
    registry = SessionRegistry()
    flet_session, app = make(registry, end_after_s=60)
    await app.start()
    await until(lambda: "BTC/USDT" in app.state.quotes)  # the tick stream runs
    assert registry.counts()["sessions"] == 1 and app.task_count >= 3
    await app.close()
    counts = registry.counts()
    assert app.task_count == 0 and (counts["sessions"], counts["session_tasks"]) == (0, 0)
    assert (counts["sessions_opened"], counts["sessions_closed"]) == (1, 1)
    assert app.state.live_status == "offline"  # the /v1/stream listener was closed
    assert app.tasks.spawn(asyncio.sleep(0)) is None  # a late tap starts nothing
    await app.close()  # twice is harmless
    assert flet_session is not None


async def test_a_tab_that_stays_away_ends_and_one_that_comes_back_stays() -> None:
    registry = SessionRegistry()
    flet_session, app = make(registry, end_after_s=0.5)
    await app.start()
    page = flet_session.page
    await flet_session.dispatch_event(page._i, "disconnect", None)  # noqa: SLF001  (what Flet dispatches)
    await flet_session.dispatch_event(page._i, "connect", None)  # noqa: SLF001
    await asyncio.sleep(0.8)  # past the end delay: the reconnect must have called it off
    assert not app.closed and len(registry) == 1

    await flet_session.dispatch_event(page._i, "disconnect", None)  # noqa: SLF001
    await until(lambda: app.closed and app.task_count == 0, timeout_s=10)
    assert len(registry) == 0


async def test_a_hidden_tab_gets_no_repaints_until_it_shows_again() -> None:
    flet_session, app = make(SessionRegistry(), end_after_s=60)
    renders: list[set[str] | None] = []
    render = app.shell.render

    def counted(state: Any, dirty: set[str] | None = None) -> Any:  # the real render, counted
        renders.append(dirty)
        return render(state, dirty)

    app.shell.render = counted  # type: ignore[method-assign]
    await app.start()
    await until(lambda: "BTC/USDT" in app.state.quotes and len(renders) > 2)  # ticks are being painted
    page = flet_session.page
    await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "hide"})  # noqa: SLF001
    assert not page.app_visible
    await asyncio.sleep(0.2)  # a repaint already under way finishes
    painted, version = len(renders), app.state.version
    await until(lambda: app.state.version > version + 5)  # the market moves on...
    await asyncio.sleep(0.3)  # ...for three repaint intervals more
    assert len(renders) == painted  # ...and the hidden tab was not repainted
    await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "show"})  # noqa: SLF001
    await until(lambda: len(renders) > painted)
    assert "quotes" in (renders[-1] or set())  # what changed while hidden is painted at once
    await app.close()


async def test_a_closed_session_is_freed_while_flet_still_holds_its_page() -> None:
    """Flet keeps a deleted session's page a while (its eviction loop's last local); the page must then hold
    nothing of the closed Skeet session: not its controls, not the copy of them Flet diffs against."""
    registry = SessionRegistry()
    flet_session, app = make(registry, end_after_s=60, conn=WireConnection())
    await app.start()
    quotes = app.state.quotes
    await until(lambda: "BTC/USDT" in quotes)
    app._repaint({"all"})  # noqa: SLF001  (a repaint sent: Flet now keeps its copy of the screen)
    await app.close()
    gone = weakref.ref(app)
    del app
    gc.collect()
    assert gone() is None, [type(r).__qualname__ for r in gc.get_referrers(gone())]
    assert flet_session.page.controls == []
def counted(render: Any, name: str, renders: Counter[str]) -> Any:
    def wrapper(state: Any) -> None:
        renders[name] += 1
        render(state)
    return wrapper


class PatchCounter(ClientConnection):
    """A client's end of the session (`ClientConnection`) that counts the patches by the controls they reach
    (a panel: a patch of it or of anything in it)."""

    def __init__(self) -> None:
        super().__init__()
        self.patched: Counter[int] = Counter()

    def send_message(self, message: Any) -> None:
        super().send_message(message)
        if message.action == MessageAction.PATCH_CONTROL:
            self.patched.update(self.reached[-1])


async def test_panels_of_another_section_are_not_repainted_while_the_market_moves() -> None:
    """Issue 13: what is not on the screen does not repaint. On Settings the watchlist, chart and ticket
    get no patch however many ticks arrive; the Status panel there still follows them; back on Markets
    the watchlist is painted again."""
    conn = PatchCounter()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)
    conn.session = flet_session  # its client answers the session's calls
    conn.register(flet_session.get_page_patch())
    identity = LocalIdentity("hidden", key=b"k")
    services = SessionServices(
        feed=ReplayFeed(), engine=SignalEngine(), modes={}, backend_url="http://127.0.0.1:9",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token, retries=0),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    app = SkeetSession(flet_session.page, services, watchlist=["BTC/USDT", "ETH/USDT"], registry=SessionRegistry())
    await app.start()
    shell = app.shell
    hidden = {shell.watchlist.control._i: "watchlist", shell.chart.control._i: "chart",  # noqa: SLF001
              shell.ticket.control._i: "ticket"}  # noqa: SLF001
    status = shell.status.control._i  # noqa: SLF001
    renders: Counter[str] = Counter()
    for name in hidden.values():  # the real render, counted: a hidden panel costs no CPU either
        getattr(shell, name).render = counted(getattr(shell, name).render, name, renders)
    await until(lambda: any(conn.patched[i] for i in hidden))  # the dashboard is being painted
    app.navigate("settings")
    await until(lambda: conn.patched[status] > 0)  # the Settings page is on screen and painted
    before, version, rendered = {i: conn.patched[i] for i in hidden}, app.state.version, renders.copy()
    await until(lambda: app.state.version > version + 20 and conn.patched[status] > 1, timeout_s=20)
    assert {hidden[i]: conn.patched[i] - n for i, n in before.items()} == dict.fromkeys(hidden.values(), 0)
    assert renders == rendered
    app.navigate("dashboard")
    await until(lambda: conn.patched[shell.watchlist.control._i] > before[shell.watchlist.control._i])  # noqa: SLF001
    await app.close()


@pytest.mark.parametrize("screen_h", [320.0, 480.0, 560.0, 600.0, 623.0, 624.0, 700.0, 844.0, 1200.0])
async def test_the_phone_ticket_sheet_leaves_the_tap_away_strip_on_any_screen(screen_h: float) -> None:
    """The phone's ticket sheet never comes nearer the screen's top than the 64 px strip a tap closes it by:
    before the ticket is laid out, with a short ticket, and with one taller than the screen (it scrolls)."""
    from client.app import SHEET_HANDLE_H, SHEET_TOP_STRIP, TICKET_FIRST_H

    flet_session, app = make(SessionRegistry(), end_after_s=60)
    app.state.resize(390, screen_h)
    app.open_ticket()
    box = app._sheet_box  # noqa: SLF001
    assert box is not None and app._sheet is not None  # noqa: SLF001
    room = screen_h - SHEET_TOP_STRIP - SHEET_HANDLE_H  # the sheet is its box below the drag handle
    assert box.height == min(TICKET_FIRST_H, room)
    ticket = app.shell.ticket.control
    for ticket_h, shown in [(2_000.0, room), (300.0, min(300.0, room)), (screen_h, room)]:
        app._ticket_sized(ft.LayoutSizeChangeEvent(name="size_change", control=ticket, width=366, height=ticket_h))  # noqa: SLF001
        assert box.height == shown and SHEET_HANDLE_H + box.height <= screen_h - SHEET_TOP_STRIP
    app.close_sheet()
    await app.close()
    assert flet_session is not None
