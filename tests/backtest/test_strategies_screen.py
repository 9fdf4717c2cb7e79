"""The Strategies screen: a draft built in the form is backtested over history the feed serves page by page,
with progress, and the view shows the figures, the equity and drawdown curves and the trades; mistakes and
a cancel are said on the screen."""

from __future__ import annotations

import math
from types import SimpleNamespace

from client.backtest_lab import StrategyDraft
from client.controllers.strategies import StrategiesController
from client.state import AppState
from services.market.types import Candle
from tests.backtest.test_strategy_flow import type_cross
from views.common import Intents
from views.strategies import StrategiesView

HOUR = 3_600_000
NOW_MS = 1_704_067_200_000 + 60 * 24 * HOUR  # 60 days after 2024-01-01


class HistoryFeed:
    """A feed whose history is a fixed list of hourly candles, served `limit` at a time from `since_ms`."""

    def __init__(self) -> None:
        self.rows = []
        for i in range(60 * 24):
            price = 100 + 10 * math.sin(i / 30) + i * 0.01
            self.rows.append(Candle(1_704_067_200_000 + i * HOUR, price, price + 0.5, price - 0.5, price + 0.1, 1.0))
        self.pages = 0

    async def candles(self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None,
                      limit: int = 200) -> list[Candle]:
        self.pages += 1
        return [c for c in self.rows if since_ms is None or c.timestamp_ms >= since_ms][:limit]


def _controller(feed: HistoryFeed) -> tuple[StrategiesController, AppState]:
    state = AppState(watchlist=["BTC/USDT", "ETH/USDT"], selected="BTC/USDT")
    ctx = SimpleNamespace(state=state)
    return StrategiesController(ctx, lambda: feed, clock=lambda: NOW_MS / 1000), state  # type: ignore[arg-type, return-value]


async def test_a_backtest_from_the_form_shows_figures_curves_and_trades() -> None:
    feed = HistoryFeed()
    controller, state = _controller(feed)
    drafts: list[StrategyDraft] = []
    view = StrategiesView(Intents(run_backtest=drafts.append))
    view.render(state)
    type_cross(view, 5, 20)
    view.days.value, view.timeframe.value = "60", "1h"
    view.stop_loss.value = "3"
    view._submit()
    (draft,) = drafts
    assert draft == StrategyDraft.cross("sma", 5, 20, symbol="BTC/USDT", timeframe="1h", stop_loss_pct=3.0, days=60)
    await controller.run(draft)
    lab = state.backtest
    assert lab.error is None and lab.progress == 1.0 and not lab.running and feed.pages >= 2
    assert lab.result is not None and lab.result.candles == 60 * 24 and lab.result.stats["trades"] > 3
    view.render(state)
    assert view.results.visible and view.figures["trades"].value == str(lab.result.stats["trades"])
    assert len(view.equity_line.points) > 100 and len(view.trades.controls) == min(50, lab.result.stats["trades"])
    assert view.run.disabled is False and view.cancel.visible is False


async def test_mistakes_are_said_on_the_screen() -> None:
    controller, state = _controller(HistoryFeed())
    await controller.run(StrategyDraft.cross("sma", 1, 20, days=10))
    assert state.backtest.error is not None and "period" in state.backtest.error
    view = StrategiesView(Intents())
    view.render(state)
    assert view.error.visible and "period" in (view.error.value or "")
    row = view.buy.rows[0]
    row.left.args.value = "five"
    assert row.validate() == "SMA period must be a number, not 'five'" and row.error.visible  # as it is typed
    assert view.draft() is None and (view.error.value or "").endswith("SMA period must be a number, not 'five'")


async def test_cancel_stops_loading_history() -> None:
    feed = HistoryFeed()
    controller, state = _controller(feed)
    original = feed.candles

    async def slow_candles(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the trader cancels after the first page
        controller.cancel()
        return await original(*args, **kwargs)

    feed.candles = slow_candles  # type: ignore[method-assign]
    await controller.run(StrategyDraft.cross("sma", 5, 20, timeframe="1h", days=60))
    assert state.backtest.stage == "Cancelled" and state.backtest.result is None and feed.pages == 1
