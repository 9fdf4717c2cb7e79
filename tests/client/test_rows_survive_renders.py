"""A row's buttons keep working while the list around it changes: a saved strategy's "Switch off" as the
runner writes its state into the document (right after it is switched on), an open order's Cancel as
another order fills. The tap must still reach the app: it was dropped when each render rebuilt the rows,
the tapped control being gone (Flet: "Control with ID ... not found"). The same for a rule's Delete as
another rule is switched off, and for the watchlist's chips and matches in Settings. Runs on a real Flet
page and session (a connection that records what it would send to a client)."""

from __future__ import annotations

from typing import Any

import flet as ft
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.state import AppState
from services.live import Change
from tests.client.test_live_confirmation import RecordingConnection
from tests.controls import by_identifier, texts, walk
from views.common import Intents
from views.strategies import StrategiesView

SID = "sma-50-200-1h-on-btc-usdt"


def live_page() -> tuple[Session, Any]:
    conn = RecordingConnection()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)
    conn.session = flet_session  # its client answers the session's calls
    flet_session.get_page_patch()
    return flet_session, flet_session.page


def button(view: StrategiesView, label: str) -> ft.TextButton:
    """The row's button with this label, as the trader's screen shows it."""
    row = by_identifier(view.saved, f"strategy-{SID}")
    (found,) = [c for c in walk(row) if isinstance(c, ft.TextButton) and c.content == label]
    return found


def saved(enabled: bool, run: dict[str, Any]) -> dict[str, Any]:
    return {"id": SID, "name": "SMA 50/200 1h on BTC/USDT", "symbol": "BTC/USDT", "timeframe": "1h",
            "enabled": enabled, "timestamp": 1, "run": run}


async def test_switch_off_reaches_the_app_after_the_runner_rewrote_the_row() -> None:
    flet_session, page = live_page()  # the session kept referenced: the page holds it weakly
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


async def test_cancel_reaches_the_app_after_another_order_filled() -> None:
    from views.orders import OrdersView

    flet_session, page = live_page()
    cancelled: list[str] = []
    view = OrdersView(Intents(cancel_order=cancelled.append))
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")

    def order(oid: str, status: str, filled: float, ts: int) -> Change:
        return Change("orders", oid, "added", {"id": oid, "symbol": "BTC/USDT", "side": "buy", "type": "limit",
                                               "amount": 1.0, "filled": filled, "price": 100.0, "status": status,
                                               "timestamp": ts}, ts)

    state.apply_change(order("resting", "open", 0.0, 1))
    state.apply_change(order("other", "open", 0.0, 2))
    view.render(state)
    page.add(view.control)
    (tapped,) = [c.content for c in walk(view.list) if isinstance(c, ft.Semantics) and c.label == "Cancel order resting"]
    assert tapped is not None
    state.apply_change(order("other", "closed", 1.0, 2))  # the other order fills as the trader taps
    view.render(state)
    page.update()
    await flet_session.dispatch_event(tapped._i, "click", None)  # noqa: SLF001
    assert cancelled == ["resting"]


async def test_a_rules_delete_reaches_the_app_after_another_rule_was_switched_off() -> None:
    """Two rules: the first is switched off and the second's Delete tapped before the repaint; then the
    first's own switch is flipped back on (its row, and switch, kept)."""
    from services.signals import Rule
    from views.rules import RulesView

    flet_session, page = live_page()
    deleted: list[str] = []
    toggled: list[tuple[str, bool]] = []
    view = RulesView(Intents(delete_rule=deleted.append, toggle_rule=lambda rid, on: toggled.append((rid, on))))
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")

    def rule(rid: str, enabled: bool) -> Rule:
        return Rule(id=rid, name=f"Rule {rid}", direction="buy", enabled=enabled,
                    when={"op": "gt", "left": "price", "right": 100})

    state.set_rules([rule("a", True), rule("b", True)])
    view.render(state)
    page.add(view.control)
    (delete_b,) = [c.content for c in walk(view.list) if isinstance(c, ft.Semantics) and c.label == "Delete rule Rule b"]
    assert delete_b is not None
    (switch_a,) = [c for c in walk(by_identifier(view.list, "rule-a")) if isinstance(c, ft.Switch)]

    state.set_rules([rule("a", False), rule("b", True)])  # the switch-off of "a" comes back from the rule book
    view.render(state)
    page.update()
    await flet_session.dispatch_event(delete_b._i, "click", None)  # noqa: SLF001  (tapped meanwhile)
    assert deleted == ["b"]
    assert by_identifier(view.list, "rule-a").label == "Rule Rule a, disabled" and switch_a.value is False
    switch_a.value = True  # what the client's change writes before its event
    await flet_session.dispatch_event(switch_a._i, "change", None)  # noqa: SLF001
    assert toggled == [("a", True)]

    state.set_rules([rule("a", True)])
    view.render(state)
    assert [c.identifier for c in view.list.controls] == ["rule-a"]  # type: ignore[attr-defined]
    state.set_rules([])
    view.render(state)
    assert texts(view.list) == ["No rules: the engine fires nothing until you add one."]


async def test_watchlist_chips_and_matches_take_taps_after_the_list_changed() -> None:
    """Settings: removing one symbol, then the next at once; a match tapped as the query grows by a letter."""
    from views.settings import SettingsView

    flet_session, page = live_page()
    removed: list[str] = []
    added: list[str] = []
    view = SettingsView(Intents(remove_symbol=removed.append, add_symbol=added.append))
    state = AppState(watchlist=["BTC/USDT", "ETH/USDT", "SOL/USDT"], selected="BTC/USDT")
    state.set_markets({s: {"symbol": s} for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT", "DOT/USDT")})
    view.render(state)
    page.add(view.control)
    (eth,) = [c for c in view.chips.controls if isinstance(c, ft.Chip) and c.delete_icon_tooltip == "Remove ETH/USDT"]
    state.watchlist = ["ETH/USDT", "SOL/USDT"]  # BTC's removal, synced back
    state.changed("watchlist")
    view.render(state)
    page.update()
    await flet_session.dispatch_event(eth._i, "delete", None)  # noqa: SLF001
    assert removed == ["ETH/USDT"]

    state.symbol_query = "D"
    state.changed("settings")
    view.render(state)
    page.update()
    (dot,) = [c for c in view.matches.controls if isinstance(c, ft.TextButton) and c.content == "DOT/USDT"]
    state.symbol_query = "DO"  # the next letter, typed as the trader taps a match
    state.changed("settings")
    view.render(state)
    page.update()
    assert [c.content for c in view.matches.controls] == ["DOGE/USDT", "DOT/USDT"]  # type: ignore[attr-defined]
    await flet_session.dispatch_event(dot._i, "click", None)  # noqa: SLF001
    assert added == ["DOT/USDT"]
