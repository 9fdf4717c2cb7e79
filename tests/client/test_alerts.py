"""Price alerts in the app: the panel read from state, and the whole trip through a real backend
(set over HTTP, fired by the backend's feed, heard through the live listener, told to the trader)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import flet as ft
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.app import SessionServices, SkeetSession
from client.shell import Shell
from client.state import AppState, alert_fired
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.live import Change
from services.live.stream import StreamLive
from services.market import ReplayFeed, Tick
from services.signals import SignalEngine
from tests.backend.conftest import TEST_KEY, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.client.test_live_confirmation import RecordingConnection
from tests.client.test_views import make_state
from tests.controls import by_identifier, texts, walk
from views.alerts import alert_fired_message, preview
from views.common import Intents

ACTIVE = {"id": "a1", "symbol": "BTC/USDT", "condition": "above", "price": 150.0, "status": "active",
          "note": "take profit", "timestamp": 1, "triggeredAt": None, "triggerPrice": None}


def live(state: AppState, kind: str, doc: dict, version: int) -> dict | None:
    return state.apply_change(Change("alerts", doc["id"], kind, doc, version))  # type: ignore[arg-type]


def test_the_panel_says_what_an_alert_will_do_before_it_is_set() -> None:
    state = make_state()
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 5, 131.25, 0.1))
    asked: list[tuple[str, str, str]] = []
    shell = Shell(Intents(add_alert=lambda *a: asked.append(a)))
    state.navigate("signals")
    shell.render(state)
    view = shell.alerts
    assert "No alerts yet" in " ".join(texts(view.control))
    assert view.symbol.value == "BTC/USDT" and view.price.label == "Alert price (USDT)"
    view.price.value = "150"
    view.note.value = " take profit "
    assert view._preview(state) == "Fires when it rises to 150.00 · +14.29% from 131.25"  # noqa: SLF001
    view.add.on_click(None)
    assert asked == [("BTC/USDT", "150", "take profit")]


def test_preview_covers_what_a_trader_can_type() -> None:
    assert preview("120", 131.25, 2) == "Fires when it falls to 120.00 · -8.57% from 131.25"
    assert preview("131.25", 131.25, 2).startswith("That is the price now")
    assert preview("abc", 131.25, 2) == "Enter a price"
    assert preview("-1", 131.25, 2) == "The price must be above zero"
    assert preview("", 131.25, 2).startswith("Set a price")


def test_active_then_triggered_alerts_come_from_the_live_state() -> None:
    state = make_state()
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 5, 131.25, 0.1))
    deleted: list[str] = []
    shell = Shell(Intents(delete_alert=deleted.append))
    state.navigate("signals")
    assert live(state, "added", ACTIVE, 1) is None
    shell.render(state)
    row = texts(by_identifier(shell.root, "alert-a1"))
    assert "BTC/USDT rises to 150.00" in row and "14.3% away · take profit" in row
    assert shell.alerts.count.value == "1 active · 0 triggered"

    fired = {**ACTIVE, "status": "triggered", "triggeredAt": 1_700_000_000_000, "triggerPrice": 150.5}
    before = live(state, "modified", fired, 2)
    assert alert_fired(before, fired)
    assert alert_fired_message(fired, state.markets["BTC/USDT"]) == (
        "Alert: BTC/USDT rose to 150.00 (traded 150.50) · take profit")
    shell.render(state)
    row = texts(by_identifier(shell.root, "alert-a1"))
    assert "BTC/USDT rose to 150.00" in row
    assert shell.alerts.count.value == "0 active · 1 triggered"
    delete = next(c for c in walk(by_identifier(shell.root, "alert-a1")) if isinstance(c, ft.IconButton))
    delete.on_click(None)
    assert deleted == ["a1"]


def test_an_alert_already_triggered_at_start_is_not_news() -> None:
    state = make_state()
    fired = {**ACTIVE, "status": "triggered", "triggerPrice": 150.5}
    assert not alert_fired(live(state, "added", fired, 1), fired)
    assert not alert_fired(live(state, "modified", {**fired, "note": "edited"}, 2), fired)


async def until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll the app's state (what its repaint loop reads) until `condition` holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_set_an_alert_and_hear_it_fire_through_the_backend(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(make_settings(tmp_path), feed) as backend:
        await feed.until_consumers(1)
        conn = RecordingConnection()
        conn.pubsubhub = PubSubHub()
        flet_session = Session(conn)  # kept referenced: the page holds its session weakly
        conn.session = flet_session  # its client answers the session's calls
        flet_session.get_page_patch()
        identity = LocalIdentity("alice", key=TEST_KEY)
        services = SessionServices(
            feed=ReplayFeed(), engine=SignalEngine(), modes={}, backend_url=backend.base_url,
            api=SkeetApi(base_url=backend.base_url, token=identity.token, retries=0),
            live=StreamLive(base_url=backend.base_url, token=identity.token),
        )
        app = SkeetSession(flet_session.page, services, watchlist=["BTC/USDT"])
        await app.start()
        try:
            state = app.state
            app.trading.add_alert("BTC/USDT", "abc", "")
            assert state.alert_draft.error == "The alert price must be a number"
            app.trading.add_alert("BTC/USDT", "51000", "take profit")
            await until(lambda: state.alerts)
            [alert] = state.alerts.values()
            assert (alert["condition"], alert["status"]) == ("above", "active")
            assert state.notice and state.notice.message == "Alert set: BTC/USDT rises to 51,000.00"
            assert state.alert_draft.saved == 1 and state.alert_draft.client_alert_id is None

            await feed.until_followed("BTC/USDT")  # the backend's watcher follows the alerted symbol
            await feed.trade("BTC/USDT", 51_002.5)
            await until(lambda: state.notice and state.notice.message.startswith("Alert: "))
            assert state.notice.message == "Alert: BTC/USDT rose to 51,000.00 (traded 51,002.50) · take profit"
            assert state.alerts[alert["id"]]["status"] == "triggered"

            app.intents.delete_alert(alert["id"])  # the intent the trash button emits
            await until(lambda: not state.alerts)
        finally:
            await app.close()
    assert flet_session is not None


def test_a_moving_price_rewrites_the_distance_but_keeps_the_row_and_its_delete_button() -> None:
    state = make_state()
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 5, 131.25, 0.1))
    shell = Shell(Intents())
    state.navigate("signals")
    live(state, "added", ACTIVE, 1)
    shell.render(state)
    row = by_identifier(shell.root, "alert-a1")
    assert "14.3% away · take profit" in texts(row)
    state.apply_tick(Tick("BTC/USDT", 60_000 * 29 + 9, 140.0, 0.1))
    shell.render(state)
    assert by_identifier(shell.root, "alert-a1") is row  # the same control: a tap on it is not lost
    assert "7.1% away · take profit" in texts(row)
