"""The analytics view built from `AppState` and inspected without a browser."""

from __future__ import annotations

from typing import Any

import flet as ft
import flet_charts as fch

from client.state import AppState
from services.live import Change
from services.market import Tick
from tests.analytics.orders import btc_round_trip, order, trade
from tests.controls import walk
from views.analytics import AnalyticsView


def figure(view: AnalyticsView, name: str) -> str:
    found = [c for c in walk(view.control) if isinstance(c, ft.Semantics) and c.identifier == f"analytics-{name}"]
    assert found, name
    return [c.value for c in walk(found[0]) if isinstance(c, ft.Text)][-1]


def state_with(orders: dict[str, dict[str, Any]], prices: dict[str, float]) -> AppState:
    state = AppState(watchlist=list(prices), selected=next(iter(prices)))
    for version, (order_id, doc) in enumerate(orders.items(), 1):
        state.apply_change(Change("orders", order_id, "added", doc, version))
    for symbol, price in prices.items():
        state.apply_tick(Tick(symbol, 9_000, price, 0.1))
    return state


def test_key_figures_from_orders_and_live_prices() -> None:
    view = AnalyticsView()
    view.render(state_with(btc_round_trip(), {"BTC/USDT": 130.0}))
    assert figure(view, "pnl") == "+34.61"
    assert figure(view, "realised") == "+22.16"
    assert figure(view, "unrealised") == "+12.45"
    assert figure(view, "fees") == "0.39"
    assert figure(view, "drawdown") == "-0.10"  # the first fill's fee, before any gain
    assert view.figures["pnl"].color == ft.Colors.GREEN_400
    assert not view.empty.visible and view.charts.visible


def test_charts_are_native_flet_charts() -> None:
    orders = {**btc_round_trip(), "e1": order("e1", "ETH/USDT", "buy", 1.0, [trade(50, 1.0, 0.05, 4_000)])}
    view = AnalyticsView()
    view.render(state_with(orders, {"BTC/USDT": 130.0, "ETH/USDT": 40.0}))
    assert isinstance(view.curve, fch.LineChart) and isinstance(view.bars, fch.BarChart)
    assert [round(p.y, 4) for p in view.curve_line.points] == [-0.1, 9.79, 29.61, 29.56, 24.56]
    rods = [g.rods[0] for g in view.bars.groups]
    assert [round(r.to_y, 2) for r in rods] == [34.61, -10.05]
    assert [r.color for r in rods] == [ft.Colors.GREEN_400, ft.Colors.RED_400]
    assert [a.label.value for a in view.bars.bottom_axis.labels] == ["BTC", "ETH"]


def test_a_tick_moves_the_unrealised_figures() -> None:
    state = state_with(btc_round_trip(), {"BTC/USDT": 130.0})
    view = AnalyticsView()
    view.render(state)
    state.apply_tick(Tick("BTC/USDT", 9_500, 140.0, 0.1))
    view.render(state)
    assert figure(view, "unrealised") == "+17.45"
    assert figure(view, "pnl") == "+39.61"


def test_empty_account_says_what_will_appear() -> None:
    view = AnalyticsView()
    view.render(state_with({}, {"BTC/USDT": 100.0}))
    assert view.empty.visible and not view.charts.visible
    assert figure(view, "pnl") == "—"


def test_export_button_emits_the_intent() -> None:
    asked: list[bool] = []
    view = AnalyticsView(on_export=lambda: asked.append(True))
    view.render(state_with(btc_round_trip(), {"BTC/USDT": 130.0}))
    assert view.export.content == "Export report"
    view.export.on_click(None)  # type: ignore[misc,call-arg,arg-type]  # a handler takes the event
    assert asked == [True]
