"""Issue 11's flow through the Strategies screen: a trader builds "SMA 50 1h crosses SMA 200 1h, TP 5%,
SL 2%" in the form, backtests it over two years read from the history store (filled from the synthetic
market, with a progress bar), saves it and switches it on for paper trading on a served backend, and reads
the drift report of its live trades beside the backtest of the same period."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from backend_stub.brokers.paper import PaperBroker
from backend_stub.store.sqlite import SqliteStore
from client.backtest_lab import StrategyDraft
from client.controllers.strategies import StrategiesController
from client.state import AppState
from services.api import SkeetApi
from services.market import SyntheticFeed
from tests.backend.conftest import make_settings, serve, token
from tests.first_signal import first_buy
from views.common import Intents
from views.strategies import StrategiesView

MINUTE = 60_000


def screen(tmp_path: Path, api: Any = None,
           clock: Any = time.time) -> tuple[StrategiesView, StrategiesController, AppState, list[Any]]:
    state = AppState(watchlist=["BTC/USDT", "ETH/USDT"], selected="BTC/USDT")  # the synthetic market
    ctx = SimpleNamespace(state=state, services=SimpleNamespace(api=api))
    controller = StrategiesController(ctx, lambda: None, clock, history=tmp_path / "history")  # type: ignore[arg-type]
    emitted: list[Any] = []
    view = StrategiesView(Intents(run_backtest=lambda d: emitted.append(("run", d)),
                                  save_strategy=lambda d, on: emitted.append(("save", d, on)),
                                  strategy_action=lambda a, sid: emitted.append((a, sid))))
    view.render(state)
    return view, controller, state, emitted


def type_cross(view: StrategiesView, fast: int, slow: int) -> None:
    """What a trader does for an average cross: tap the SMA cross preset, type both periods on both sides."""
    view.presets.controls[1].on_click(None)  # type: ignore[attr-defined]
    for rows in (view.buy.rows, view.sell.rows):
        rows[0].left.args.value, rows[0].right.args.value = str(fast), str(slow)


def progress_log(state: AppState) -> list[float]:
    seen: list[float] = []
    changed = state.changed

    def record(*topics: str) -> None:
        seen.append(state.backtest.progress)
        changed(*topics)

    state.changed = record  # type: ignore[method-assign]
    return seen


async def test_sma_50_200_1h_tp_5_sl_2_over_two_years_from_the_store(tmp_path: Path) -> None:
    view, controller, state, emitted = screen(tmp_path)
    type_cross(view, 50, 200)
    view.timeframe.value, view.days.value = "1h", "730"
    view.take_profit.value, view.stop_loss.value = "5", "2"
    view._submit()
    [(_, draft)] = emitted
    assert draft == StrategyDraft.cross("sma", 50, 200, timeframe="1h", take_profit_pct=5.0, stop_loss_pct=2.0, days=730)
    assert draft.name == "SMA 50/200 1h, TP 5%, SL 2% on BTC/USDT"
    seen = progress_log(state)
    await controller.run(draft)
    lab = state.backtest
    assert lab.error is None and lab.result is not None and lab.progress == 1.0
    assert abs(lab.result.candles - 730 * 24) <= 24  # two years of closed hourly candles
    # The bar moved while the store filled (how many steps it showed depends on the machine's speed).
    assert len({p for p in seen if 0 < p < 0.95}) >= 1
    reasons = {t["exitReason"] for t in lab.result.trades}
    assert lab.result.stats["trades"] > 5 and reasons & {"takeProfit", "stopLoss"}, reasons
    assert list((tmp_path / "history").rglob("*.npy"))  # kept: the next run reads the store
    view.render(state)
    assert view.results.visible and view.figures["trades"].value == str(lab.result.stats["trades"])


async def test_two_years_of_one_minute_candles_backtest(tmp_path: Path) -> None:
    _, controller, state, _ = screen(tmp_path)
    await controller.run(StrategyDraft.cross("sma", 50, 200, timeframe="1m", take_profit_pct=5, stop_loss_pct=2,
                                       days=730))
    lab = state.backtest
    assert lab.error is None and lab.result is not None
    assert abs(lab.result.candles - 730 * 1440) <= 1440 and lab.result.stats["trades"] > 100


async def test_switched_on_for_paper_it_trades_and_the_drift_report_sets_it_beside_the_backtest(
        tmp_path: Path) -> None:
    draft = StrategyDraft.cross("sma", 2, 5, timeframe="1m", days=1)
    # Where the synthetic market gives this draft its first buy after a moment: the paper session starts
    # 30 s before that candle closes, the market standing still until it is switched on, then 10× real time.
    market = first_buy(draft.document())
    first, clock = market.first_ms, market.clock
    feed = market.feed()
    async with SqliteStore(tmp_path / "state.db") as store, \
            PaperBroker(store=store, feed=feed, clock=clock) as broker, \
            serve(make_settings(tmp_path), feed, store=store, broker=broker) as backend:
        async def alice() -> str:
            return token("alice")

        async with SkeetApi(base_url=backend.base_url, token=alice) as api:
            view, controller, state, emitted = screen(tmp_path, api, clock)
            view._fill_form(draft)
            view.save_on.on_click(None)  # type: ignore[call-arg, arg-type, misc]
            [(_, saved_draft, on)] = emitted
            assert saved_draft == draft and on is True
            await controller.save(saved_draft, enabled=on)
            market.start()
            sid = draft.strategy_id
            doc = state.backtest.saved[sid]
            assert doc["enabled"] and doc["run"]["status"] == "running", doc
            view.render(state)
            assert "on paper" in _texts(view.saved)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the market runs on its own clock: wait for the signal
                mine = [o for o in await api.orders() if o["clientOrderId"].startswith(f"st-{sid}-")]
                if mine:
                    break
                await asyncio.sleep(0.05)
            assert [o["clientOrderId"] for o in mine] == [f"st-{sid}-buy-{first}"]

            await controller.refresh()
            view.render(state)
            drift_button = _button(view.saved, "Drift")
            drift_button.on_click(None)
            assert emitted[-1] == ("drift", sid)
            await controller.drift(sid)
            drift = state.backtest.drift
            assert drift is not None, state.backtest.notice
            assert drift.live_trades == 1 and len(drift.rows) == 1, drift
            row = drift.rows[0]
            assert row["backtestEntryTime"].startswith(_iso_minute(first + MINUTE))  # the next candle's open
            assert 0 < row["entryDriftBps"] < 30  # the paper broker's slippage; the backtest has none
            view.render(state)
            assert view.drift.visible and "1 trades matched" in (view.drift_summary.value or "")

            await controller.delete(sid)  # stopped and removed on the backend; the bought BTC stays
            assert sid not in state.backtest.saved and state.backtest.notice.startswith("Deleted")
            assert await api.strategies() == []
            assert (await api.balance())["total"]["BTC"] == mine[0]["filled"]


def _iso_minute(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms / 1000))


def _walk(control: Any) -> list[Any]:
    out = [control]
    for child in getattr(control, "controls", None) or []:
        out += _walk(child)
    content = getattr(control, "content", None)
    if content is not None and not isinstance(content, str):
        out += _walk(content)
    return out


def _texts(control: Any) -> str:
    return " ".join(str(c.value) for c in _walk(control) if c.__class__.__name__ == "Text")


def _button(control: Any, label: str) -> Any:
    return next(c for c in _walk(control) if c.__class__.__name__ == "TextButton" and c.content == label)


def test_saved_strategies_reach_the_screen_through_the_live_state(tmp_path: Path) -> None:
    from services.live.types import Change

    view, controller, state, emitted = screen(tmp_path)
    draft = StrategyDraft(take_profit_pct=5, stop_loss_pct=2)
    sid = draft.strategy_id
    doc: dict[str, Any] = {"id": sid, "name": draft.name, "symbol": "BTC/USDT", "timeframe": "1h",
           "strategy": draft.document() | {"timeframe": "1h"}, "enabled": True, "timestamp": 1,
           "run": {"status": "running", "position": {"side": "long", "amount": 0.5, "entryPrice": 60_000,
                                                     "entryMs": 1_790_000_000_000, "best": 61_000},
                   "lastSignal": {"timestamp": 1_789_996_400_000, "side": "buy"}}}
    state.apply_change(Change("strategies", sid, "added", doc, 7))
    view.render(state)
    text = _texts(view.saved)
    assert draft.name in text and "on paper · holding 0.5 since 2026-09-21 14:13 · last signal buy at 2026-09-21 13:13" in text
    _button(view.saved, "Switch off").on_click(None)
    _button(view.saved, "Load").on_click(None)
    assert emitted == [("off", sid), ("load", sid)]
    state.backtest.draft = StrategyDraft.cross("sma", 1, 200)
    controller.load(sid)  # the form shows the saved strategy
    view.render(state)
    assert (view.take_profit.value, view.stop_loss.value, view.buy.rows[0].left.args.value) == ("5", "2", "50")
    state.apply_change(Change("strategies", sid, "removed", None, 8))
    view.render(state)
    assert "None yet" in _texts(view.saved)


async def test_cancel_stops_filling_the_store(tmp_path: Path) -> None:
    _, controller, state, _ = screen(tmp_path)
    changed = state.changed

    def cancel_at_once(*topics: str) -> None:  # the trader taps Cancel as the run starts
        controller.cancel()
        changed(*topics)

    state.changed = cancel_at_once  # type: ignore[method-assign]
    await controller.run(StrategyDraft(timeframe="1m", days=730))
    assert state.backtest.stage == "Cancelled" and state.backtest.result is None and not state.backtest.running
    assert len(list((tmp_path / "history").rglob("*.npy"))) <= 1  # stopped at its first page


def pick(picker: Any, name: str, args: str) -> None:
    """Pick an operand the way the form offers it: the registry name (or "number"), then its period / value."""
    picker.name.value, picker.args.value = name, args
    picker.name.on_select(None)


async def test_an_rsi_strategy_built_in_the_form_is_backtested_and_saved(tmp_path: Path) -> None:
    """"Buy when rsi(14) crosses above 30, sell when it crosses below 70, SL 3%": built row by row, tested over
    90 days of hourly candles from the store, saved on a served backend, and loaded back into the form."""
    feed = SyntheticFeed()
    async with SqliteStore(tmp_path / "state.db") as store, \
            serve(make_settings(tmp_path), feed, store=store) as backend:
        async def alice() -> str:
            return token("alice")

        async with SkeetApi(base_url=backend.base_url, token=alice) as api:
            view, controller, state, emitted = screen(tmp_path, api)
            buy, sell = view.buy.rows[0], view.sell.rows[0]
            pick(buy.left, "rsi", "1")  # a slip of the finger: refused as it is typed, in the parser's words
            assert buy.error.visible and buy.error.value == "RSI period must be a whole number from 2 to 1000"
            pick(buy.left, "rsi", "14")
            pick(buy.right, "number", "30")
            buy.op.value = "cross_above"
            assert not buy.error.visible
            pick(sell.left, "rsi", "14")
            pick(sell.right, "number", "70")
            sell.op.value = "cross_below"
            view.stop_loss.value, view.days.value = "3", "90"
            view._submit()
            [(_, draft)] = emitted
            assert draft.document()["buy"] == {"op": "cross_above", "left": "rsi(14)", "right": 30.0}
            assert draft.document()["sell"] == {"op": "cross_below", "left": "rsi(14)", "right": 70.0}
            assert draft.stop_loss_pct == 3.0
            await controller.run(draft)
            lab = state.backtest
            assert lab.error is None and lab.result is not None and lab.result.stats["trades"] > 0, lab.error
            assert {t["exitReason"] for t in lab.result.trades} <= {"signal", "stopLoss", "end"}
            view.render(state)
            assert view.results.visible

            view.save.on_click(None)  # type: ignore[call-arg, arg-type, misc]
            [_, (_, saved_draft, on)] = emitted
            await controller.save(saved_draft, enabled=on)
            [doc] = await api.strategies()
            assert doc["name"] == "Buy rsi(14) crosses above 30, sell rsi(14) crosses below 70, 1h, SL 3% on BTC/USDT"
            assert doc["strategy"]["exit"] == {"signal": True, "stopLossPct": 3.0} and not doc["enabled"]
            state.backtest.draft = StrategyDraft(days=90)  # the form showed something else before
            view.render(state)
            controller.load(doc["id"])  # back into the form, row by row
            view.render(state)
            assert state.backtest.notice.startswith("Loaded")
            assert view.draft() == draft
            assert (view.buy.rows[0].left.name.value, view.buy.rows[0].left.args.value) == ("rsi", "14")
