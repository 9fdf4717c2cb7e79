"""A saved strategy's buttons keep working while its row changes: the runner writes its state into the
document right after the strategy is switched on, and a tap on "Switch off" made as that change lands
must still reach the app (it was dropped when each render rebuilt the rows: the tapped control was gone).
Runs on a real Flet page and session (a connection that records what it would send to a client)."""

from __future__ import annotations

from typing import Any

import flet as ft
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.state import AppState
from tests.client.test_live_confirmation import RecordingConnection
from tests.controls import by_identifier, texts, walk
from views.common import Intents
from views.strategies import StrategiesView

SID = "sma-50-200-1h-on-btc-usdt"


def button(view: StrategiesView, label: str) -> ft.TextButton:
    """The row's button with this label, as the trader's screen shows it."""
    row = by_identifier(view.saved, f"strategy-{SID}")
    (found,) = [c for c in walk(row) if isinstance(c, ft.TextButton) and c.content == label]
    return found


def saved(enabled: bool, run: dict[str, Any]) -> dict[str, Any]:
    return {"id": SID, "name": "SMA 50/200 1h on BTC/USDT", "symbol": "BTC/USDT", "timeframe": "1h",
            "enabled": enabled, "timestamp": 1, "run": run}


async def test_switch_off_reaches_the_app_after_the_runner_rewrote_the_row() -> None:
    conn = RecordingConnection()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)  # kept referenced: the page holds its session weakly
    page = flet_session.page
    flet_session.get_page_patch()
    actions: list[tuple[str, str]] = []
    view = StrategiesView(Intents(strategy_action=lambda action, sid: actions.append((action, sid))))
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")
    state.backtest.saved = {SID: saved(True, {"status": "warming"})}
    view.render(state)
    page.add(view.control)
    tapped = button(view, "Switch off")  # on the trader's screen

    state.backtest.saved = {SID: saved(True, {"status": "running", "lastSignal": {"side": "buy", "timestamp": 0}})}
    view.render(state)  # the runner's write arrives; the tap was made on the row as it was before
    page.update()
    assert "BTC/USDT · on paper · last signal buy at 1970-01-01 00:00" in texts(view.saved)
    await flet_session.dispatch_event(tapped._i, "click", None)  # noqa: SLF001
    assert actions == [("off", SID)]

    state.backtest.saved = {SID: saved(False, {"status": "off"})}
    view.render(state)
    page.update()
    assert button(view, "Trade on paper") is tapped
    await flet_session.dispatch_event(tapped._i, "click", None)  # noqa: SLF001
    assert actions[-1] == ("on", SID)

    state.backtest.saved = {}
    view.render(state)
    assert texts(view.saved) == ["None yet: build one above and save it."]
