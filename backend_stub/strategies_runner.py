"""`StrategyRunner`: strategies switched on run here, in the backend, on paper — a worker like matching, so
a strategy keeps trading while the phone sleeps or the tab is closed.

Each enabled strategy is a `services.backtest.live.LiveStrategy` (the live engine's candle indicators and
rule code, the backtester's sizing and exit levels) fed by the backend's market feed, warmed with the
feed's candle history, and trading through the same order path as the API (`OrderDesk`: market rules,
idempotency). A clientOrderId is derived from the strategy id and the moment acted on (`st-{id}-{key}`), and
an order is written down as pending before it is placed, so a restart finishes it (the desk returns the
first order for the same key) and never places a second. State (status, position, last signal, error) is
written into the strategy's document (`StrategyBook.write_run`), which the app sees through the live state.

Self-contained on purpose: `start()` / `aclose()`, given a store, a feed, a desk, a broker and the book;
the API's lifespan hosts it today, a worker process can host it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from backend_stub.brokers.base import Broker, BrokerError, OrderRequest
from backend_stub.errors import ApiError
from backend_stub.money import dec
from backend_stub.orders import OrderDesk
from backend_stub.store.base import StateStore
from backend_stub.strategies import STRATEGIES, StrategyBook
from backend_stub.trades import follow_changing_trades
from services.backtest import StrategyError, check_operand, parse_strategy
from services.backtest.engine import MarketSteps
from services.backtest.live import LiveFill, LiveStrategy, Position
from services.market.types import TIMEFRAME_MS, MarketFeed, Tick

log = logging.getLogger(__name__)

WARM_CANDLES = 600  # enough for SMA 200 and its cross; the feed's history fills it at start
CASH_USED = Decimal("0.995")  # an all-in entry leaves this margin for the price moving before the fill
_RETRY_FEED_S = 2.0


def client_order_id(strategy_id: str, key: str) -> str:
    return f"st-{strategy_id}-{key}"[:64]


class _Account:
    """A `StrategyBroker` for one user and symbol: the API's order path, a pending order written first."""

    def __init__(self, run: _Run, desk: OrderDesk, broker: Broker, quote: str) -> None:
        self._run, self._desk, self._broker, self._quote = run, desk, broker, quote

    async def cash(self) -> Decimal:
        balance = await self._broker.fetch_balance(self._run.uid)
        return dec((balance.get("free") or {}).get(self._quote, 0)) * CASH_USED

    async def market_order(self, side: str, amount: Decimal, *, key: str) -> LiveFill:
        run = self._run
        run.pending = {"side": side, "amount": format(amount, "f"), "key": key}
        if not await run.save(if_enabled=True):  # a worker's runner hears of a change a moment late
            run.pending = None
            raise ApiError(409, "The strategy was switched off or deleted before its order was placed")
        request = OrderRequest(symbol=run.symbol, side=side, type="market", amount=amount,  # type: ignore[arg-type]
                               client_order_id=client_order_id(run.strategy_id, key))
        order, _ = await self._desk.place(run.uid, request)
        run.pending = None
        if order.get("status") != "closed" or not order.get("filled"):
            raise ApiError(409, f"The strategy's {side} order did not fill (status {order.get('status')})")
        trades = order.get("trades") or []
        stamp = int(trades[-1]["timestamp"]) if trades else int(order["timestamp"])
        return LiveFill(side, dec(order["filled"]), dec(order["average"]), dec((order.get("fee") or {}).get("cost", 0)),
                        stamp)


@dataclass(eq=False)
class _Run:
    """One running strategy and what it wrote last."""

    uid: str
    strategy_id: str
    symbol: str
    book: StrategyBook
    clock: Callable[[], float]
    since_ms: int
    live: LiveStrategy | None = None
    pending: dict[str, Any] | None = None
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    saved: tuple[Any, ...] = ()

    def state(self) -> dict[str, Any]:
        live = self.live
        last = live.last_signal if live else None
        fills = live.fills if live else []
        return {
            "status": "running" if live is not None else "error",
            "since": self.since_ms,
            "position": live.position.to_json() if live and live.position else None,
            "lastSignal": {"timestamp": last[0], "side": "buy" if last[1] > 0 else "sell"} if last else None,
            "lastFill": _fill_json(fills[-1]) if fills else None,
            "pending": self.pending,
            "error": self.error,
            "updatedAt": int(self.clock() * 1000),
        }

    async def save(self, *, only_if_changed: bool = False, if_enabled: bool = False) -> bool:
        """False: not written, the strategy being deleted (or, `if_enabled`, switched off)."""
        state = self.state()
        key = tuple(v for k, v in state.items() if k != "updatedAt")
        if only_if_changed and key == self.saved:
            return True
        self.saved = key
        return await self.book.write_run(self.uid, self.strategy_id, state, if_enabled=if_enabled)


def _fill_json(fill: LiveFill) -> dict[str, Any]:
    return {"side": fill.side, "amount": float(fill.amount), "price": float(fill.price), "fee": float(fill.fee),
            "timestamp": fill.timestamp_ms, "reason": fill.reason}


class StrategyRunner:
    """Every user's enabled strategies, on the backend's market feed. `start()` resumes the enabled ones
    from the store; `apply()` (the routes) starts, restarts or stops one; `aclose()` stops following."""

    def __init__(self, *, store: StateStore, feed: MarketFeed, desk: OrderDesk, broker: Broker, book: StrategyBook,
                 fee: Decimal, slippage: Decimal, clock: Callable[[], float] = time.time) -> None:
        self._store, self._feed, self._desk, self._broker, self._book = store, feed, desk, broker, book
        self._fee, self._slippage, self._clock = fee, slippage, clock
        self._runs: dict[tuple[str, str], _Run] = {}
        self._task: asyncio.Task[None] | None = None
        self._symbols_changed = asyncio.Event()
        book.attach(self)

    def running(self, uid: str, strategy_id: str) -> LiveStrategy | None:
        run = self._runs.get((uid, strategy_id))
        return run.live if run else None

    async def start(self) -> None:
        if self._task is not None:
            return
        for uid, doc in await self._store.find(STRATEGIES, "enabled", True):
            await self._launch(uid, doc)
        self._task = asyncio.create_task(self._watch(), name="strategy-runner")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def apply(self, uid: str, doc: dict[str, Any] | None, strategy_id: str) -> None:
        old = self._runs.pop((uid, strategy_id), None)
        if old is not None:
            async with old.lock:  # a trade being handled finishes first, and saves its state
                self._symbols_changed.set()
        if doc is None:
            return
        doc = await self._store.get(uid, STRATEGIES, strategy_id) or doc  # with that state
        if doc.get("enabled"):
            await self._launch(uid, doc)
        elif old is not None or (doc.get("run") or {}).get("status") != "off":
            run = doc.get("run") or {}
            await self._book.write_run(uid, strategy_id, {**run, "status": "off", "pending": None,
                                                          "updatedAt": int(self._clock() * 1000)})

    async def on_tick(self, tick: Tick) -> None:
        for run in [r for r in self._runs.values() if r.symbol == tick.symbol]:
            async with run.lock:
                if self._runs.get((run.uid, run.strategy_id)) is not run or run.live is None:
                    continue  # stopped while this trade waited
                try:
                    await run.live.on_trade(tick.timestamp_ms, tick.price, tick.amount)
                    run.error = None
                except (ApiError, BrokerError, StrategyError) as exc:  # refused by the market rules or the
                    run.pending, run.error = None, str(exc)  # account, or too small: say so, keep running
                except Exception as exc:
                    log.exception("strategy %s of %s failed on a trade", run.strategy_id, run.uid)
                    run.pending, run.error = None, f"The strategy failed on a trade: {exc}"
                await run.save(only_if_changed=True)

    # -- internals -----------------------------------------------------------------------------------

    async def _launch(self, uid: str, doc: dict[str, Any]) -> None:
        strategy_id, symbol = doc["id"], doc["symbol"]
        saved = doc.get("run") or {}
        since = saved.get("since") if saved.get("status") == "running" else None
        run = _Run(uid, strategy_id, symbol, self._book, self._clock, since or await self._market_now(symbol))
        try:
            strategy = parse_strategy(doc["strategy"], check_operand=check_operand)
            # The paper broker's own costs, so sizing leaves room for the fee it charges.
            strategy = strategy.with_changes(fee=float(self._fee), slippage=float(self._slippage))
            market = (await self._feed.markets())[symbol]
            precision = market.get("precision") or {}
            steps = MarketSteps(price_step=dec(precision.get("price") or 0), amount_step=dec(precision.get("amount") or 0))
            live = LiveStrategy(strategy, symbol=symbol, timeframe=doc["timeframe"],
                                broker=_Account(run, self._desk, self._broker, market["quote"]), market=steps)
            await self._warm(live, symbol)
            position = Position.from_json(saved["position"]) if saved.get("position") else None
            last = saved.get("lastSignal")
            live.restore(position, (int(last["timestamp"]), 1 if last["side"] == "buy" else -1) if last else None)
            run.live = live
            pending = saved.get("pending")
            if pending:  # written down, maybe placed, before a restart: finish it under the same key
                await self._finish(run, live, pending)
        except (ApiError, BrokerError) as exc:
            run.error = str(exc)
        except Exception as exc:
            log.exception("strategy %s of %s could not start", strategy_id, uid)
            run.error = f"The strategy could not start: {exc}"
        self._runs[(uid, strategy_id)] = run
        self._symbols_changed.set()
        await run.save()

    async def _finish(self, run: _Run, live: LiveStrategy, pending: dict[str, Any]) -> None:
        assert isinstance(live.broker, _Account)
        fill = await live.broker.market_order(pending["side"], dec(pending["amount"]), key=pending["key"])
        live.fills.append(fill)
        if live.position is None:
            bucket = fill.timestamp_ms - fill.timestamp_ms % live.series.ms
            live.restore(Position(1 if fill.side == "buy" else -1, fill.amount, fill.price, bucket, fill.price),
                         live.last_signal)
        else:
            live.restore(None, live.last_signal)

    async def _warm(self, live: LiveStrategy, symbol: str) -> None:
        step = TIMEFRAME_MS[live.timeframe]
        now = await self._market_now(symbol)
        try:
            candles = await self._feed.candles(symbol, live.timeframe, since_ms=now - WARM_CANDLES * step,
                                               limit=WARM_CANDLES)
        except Exception as exc:  # no history: the indicators warm up on the live candles instead
            log.warning("no history to warm strategy on %s: %s", symbol, exc)
            return
        live.warm([(c.timestamp_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles
                   if c.timestamp_ms + step <= now])
        forming = [c for c in candles if c.timestamp_ms <= now < c.timestamp_ms + step]
        if forming:  # the live stream carries it on from here
            c = forming[-1]
            live.warm_forming(c.timestamp_ms, c.open, c.high, c.low, c.close, c.volume)

    async def _market_now(self, symbol: str) -> int:
        """The market's own time (a replay's or a test's clock is not the wall clock): its last trade's."""
        try:
            stamp = (await self._feed.ticker(symbol)).get("timestamp")
        except Exception:
            stamp = None
        return int(stamp) if stamp else int(self._clock() * 1000)

    async def _watch(self) -> None:
        """Follow the trades of the symbols with running strategies; start again when that set changes."""
        await follow_changing_trades(self._feed, lambda: sorted({run.symbol for run in self._runs.values()}),
                                     self._symbols_changed, self.on_tick, who="strategies", retry_s=_RETRY_FEED_S)
