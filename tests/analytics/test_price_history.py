"""Analytics marked from the history store: between fills, an open position's value follows each stored
candle's close, so the equity curve and its drawdown show what the account was worth hour by hour."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np

from services.analytics import analyse, store_prices
from services.market.history import CandleStore
from tests.analytics.orders import order, trade

HOUR = 3_600_000
T0 = 1_704_067_200_000


def test_an_open_position_is_marked_at_every_stored_close(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    closes = [100, 110, 90, 120, 130]  # the hours after the buy
    bars = np.array([(T0 + i * HOUR, c, c + 1, c - 1, c, 1.0) for i, c in enumerate(closes)], dtype=np.float64)
    store.write("synthetic-7", "BTC/USDT", "1h", bars)
    orders = {
        "o1": order("o1", "BTC/USDT", "buy", 1.0, [trade(100, 1.0, 0.1, T0 + 10)]),
        "o2": order("o2", "BTC/USDT", "sell", 1.0, [trade(125, 1.0, 0.125, T0 + 3 * HOUR + 30 * 60_000)]),
    }
    history = store_prices(store, "synthetic-7", "1h")
    with_history = analyse(orders.values(), {"BTC/USDT": 130}, now_ms=T0 + 5 * HOUR, history=history)
    curve = [(p.timestamp_ms, p.pnl) for p in with_history.equity]
    basis = Decimal("100.1")
    # The buy, then the closes of hours 0, 1 and 2 while held (100, 110, 90 at their close times), the
    # sell, and the closing point at now; flat after the sell, so no more candle points.
    assert curve[0] == (T0 + 10, Decimal(100) - basis)
    assert curve[1:4] == [(T0 + HOUR, 100 - basis), (T0 + 2 * HOUR, 110 - basis), (T0 + 3 * HOUR, 90 - basis)]
    assert curve[4][0] == T0 + 3 * HOUR + 30 * 60_000 and len(curve) == 6
    assert min(with_history.drawdown) < min(analyse(orders.values(), {"BTC/USDT": 130},
                                                    now_ms=T0 + 5 * HOUR).drawdown)  # the dip to 90 shows
    # The same realised result either way: the history only marks, it never books.
    assert with_history.realised == analyse(orders.values(), {}).realised


def test_without_history_the_curve_is_marked_at_the_fills() -> None:
    orders = {"o1": order("o1", "BTC/USDT", "buy", 1.0, [trade(100, 1.0, 0.1, T0)])}
    plain = analyse(orders.values(), {"BTC/USDT": 105}, now_ms=T0 + HOUR)
    assert [p.timestamp_ms for p in plain.equity] == [T0, T0 + HOUR]
    empty = analyse(orders.values(), {"BTC/USDT": 105}, now_ms=T0 + HOUR,
                    history=lambda symbol, since, until: [])
    assert empty.equity == plain.equity


async def test_the_report_fills_hourly_history_from_the_apps_market_source(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import time
    from types import SimpleNamespace

    from client.controllers.reports import ReportsController
    from client.state import AppState
    from services.market.history import SyntheticSource

    monkeypatch.setenv("SKEET_DATA_DIR", str(tmp_path))  # the app's state folder, where the store lives
    now = int(time.time() * 1000)
    bought = now - 30 * HOUR
    orders = [order("o1", "BTC/USDT", "buy", 0.1, [trade(60_000, 0.1, 6, bought)])]
    state = AppState(watchlist=["BTC/USDT"], selected="BTC/USDT")  # the synthetic market
    controller = ReportsController(SimpleNamespace(state=state))  # type: ignore[arg-type]
    history = await controller._price_history(orders)
    assert history is not None
    closes = history("BTC/USDT", bought, now)
    expected = SyntheticSource().bars("BTC/USDT", "1h", bought - bought % HOUR, now)
    assert 28 <= len(closes) <= 31
    assert closes == [(int(t) + HOUR, float(c)) for t, c in zip(expected[:, 0], expected[:, 4], strict=True)
                      if t + HOUR <= now]
    assert list((tmp_path / "history").rglob("*.npy"))
