"""A strategy on a live trade stream: the backtester's live twin, for a paper (or live) session.

Trades build the strategy's candles (`services.signals.candles.CandleSeries`, the live engine's incremental
indicators); at each candle's close the buy and sell conditions are evaluated by the live rule code
(`services.signals.rules.RuleRunner`), and the first trade of the next candle, its open, acts on the signal
with a market order through the broker. Sizing, the signal rules (both conditions firing = no signal; entries
only while flat; the opposite signal exits, and reverses in `long_short`) and the amount rounding are the
backtester's (`engine.order_amount`).

Exits other than the signal are the runner's own checks on every trade, at the backtester's levels
(percent of the entry fill price): a trade at or beyond the take-profit, the stop-loss or the trailing stop
(the best traded price since entry, less the percent) closes the position with a market order; so does the
first trade of a candle that opens at or after entry + `timeInTrade`. A backtest fills a take-profit at its
own level and a stop at its level; live, the market order fills at the trade's price: the drift report shows
that difference trade by trade.

Every order carries a key derived from the moment it acts on (the signal candle's time, or the exit trade's
time) and its purpose, so a broker that keys orders on it (the backend's clientOrderId) never places one
twice when the runner restarts and sees the same moment again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from services.backtest.engine import MarketSteps, order_amount
from services.backtest.strategy import Strategy, StrategyError
from services.ledger import dec
from services.ledger.book import OrderBook
from services.signals.candles import CandleSeries, parse_operand
from services.signals.rules import Rule, RuleRunner


class StrategyBroker(Protocol):
    """What the runner needs of a broker for one account and symbol."""

    async def cash(self) -> Decimal: ...

    async def market_order(self, side: str, amount: Decimal, *, key: str) -> LiveFill:
        """A market order, placed at most once per `key` (a retry with the same key returns the first)."""
        ...


@dataclass(frozen=True, slots=True)
class LiveFill:
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    timestamp_ms: int
    reason: str = "signal"  # entry or exit: "signal", "takeProfit", "stopLoss", "trailingStop", "time"


@dataclass(frozen=True, slots=True)
class Position:
    """The open position as the runner sees it (what a restart needs to carry on)."""

    side: int  # +1 long, -1 short
    amount: Decimal  # base, positive
    entry_price: Decimal
    entry_ms: int  # the entry candle's open time
    best: Decimal  # best traded price since entry (the trailing stop's anchor)

    def to_json(self) -> dict[str, Any]:
        return {"side": "long" if self.side > 0 else "short", "amount": float(self.amount),
                "entryPrice": float(self.entry_price), "entryMs": self.entry_ms, "best": float(self.best)}

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Position:
        return Position(1 if doc["side"] == "long" else -1, dec(doc["amount"]), dec(doc["entryPrice"]),
                        int(doc["entryMs"]), dec(doc["best"]))


class LiveStrategy:
    """`await on_trade(ts, price, amount)` for every trade of `symbol`, in time order; `warm(candles)` first
    with the history before the stream, so indicators start where the chart's are."""

    def __init__(self, strategy: Strategy, *, symbol: str, timeframe: str, broker: StrategyBroker,
                 market: MarketSteps | None = None) -> None:
        self.strategy, self.symbol, self.broker = strategy, symbol, broker
        self.timeframe = strategy.timeframe or timeframe
        self.series = CandleSeries(self.timeframe)
        self.runners = {side: RuleRunner(Rule(id=side, name=side, direction=side, when=cond), self.timeframe)  # type: ignore[arg-type]
                        for side, cond in (("buy", strategy.buy), ("sell", strategy.sell)) if cond is not None}
        for operand in strategy.operands():
            if operand != "price":
                self.series.want(parse_operand(operand, self.timeframe))
        steps = market or MarketSteps()
        self.steps = steps
        self.book = OrderBook(price_step=steps.price_step, amount_step=steps.amount_step,
                              slippage=dec(strategy.slippage))
        self.fee_factor = 1 + dec(strategy.fee)
        value = dec(strategy.sizing.value)
        self.sizing = (strategy.sizing.type, value / 100 if strategy.sizing.type == "equityPct" else value)
        self.position: Position | None = None
        self.fills: list[LiveFill] = []
        self.last_signal: tuple[int, int] | None = None  # (candle open time, +1 buy / -1 sell)

    @property
    def side(self) -> int:
        return self.position.side if self.position else 0

    def restore(self, position: Position | None, last_signal: tuple[int, int] | None = None) -> None:
        """Carry on from a saved state (a restart): the position held and the last signal acted on."""
        self.position, self.last_signal = position, last_signal

    def warm(self, candles: list[tuple[int, float, float, float, float, float]]) -> None:
        """Closed candles (ts, o, h, l, c, v) before the live stream: indicators and the rules' edge state
        follow them, no order is placed."""
        for ts, o, h, l, c, v in candles:  # noqa: E741
            if self.series.start is not None and ts <= self.series.start:
                continue
            self.series.on_candle(ts, o, h, l, c, v)
            self._fired(c, ts + self.series.ms)

    def warm_forming(self, timestamp_ms: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        """The candle forming when the stream starts, as far as it has traded: the live trades then carry
        it on, so it closes with its whole range, not only what traded after the start."""
        for i, price in enumerate((o, h, l, c)):
            self.series.on_trade(timestamp_ms + i, price, v / 4)

    async def on_trade(self, timestamp_ms: int, price: float, amount: float) -> None:
        close = self.series.c
        closed_at = self.series.start
        new_candle = self.series.on_trade(timestamp_ms, price, amount)
        if self.position is not None:
            reason = self._exit_reason(timestamp_ms, dec(price), new_candle)
            if reason is not None:
                await self._exit(f"{reason}-{timestamp_ms}", reason)
        if not new_candle or closed_at is None:
            return
        signal = self._fired(close, timestamp_ms)
        if not signal or (self.last_signal is not None and closed_at <= self.last_signal[0]):
            return  # no signal, or one acted on before a restart
        allowed = self.strategy.positions
        key = f"{'buy' if signal > 0 else 'sell'}-{closed_at}"
        if not self.side:
            if allowed == "long_short" or (allowed == "long") == (signal > 0):
                self.last_signal = (closed_at, signal)
                await self._enter(signal, price, key)
        elif self.strategy.exits.signal and signal == -self.side:
            self.last_signal = (closed_at, signal)
            await self._exit(f"exit-{closed_at}", "signal")
            if allowed == "long_short":
                await self._enter(signal, price, key)

    def _fired(self, close: float, timestamp_ms: int) -> int:
        values = dict(self.series.closed)
        values["price"] = close
        fired = {side: runner.evaluate(self.symbol, values, timestamp_ms) is not None
                 for side, runner in self.runners.items()}
        buy, sell = fired.get("buy", False), fired.get("sell", False)
        return 1 if buy and not sell else (-1 if sell and not buy else 0)

    def _exit_reason(self, timestamp_ms: int, price: Decimal, new_candle: bool) -> str | None:
        """The backtester's exit levels, checked against this trade. O(1)."""
        pos, ex = self.position, self.strategy.exits
        assert pos is not None
        if ex.time_in_trade_ms is not None and new_candle and self.series.start is not None \
                and self.series.start >= pos.entry_ms + ex.time_in_trade_ms:
            return "time"
        sign = pos.side
        best = max(pos.best, price) if sign > 0 else min(pos.best, price)
        if best != pos.best:
            self.position = pos = Position(pos.side, pos.amount, pos.entry_price, pos.entry_ms, best)
        gain = (price - pos.entry_price) * sign / pos.entry_price * 100
        if ex.take_profit_pct is not None and gain >= dec(ex.take_profit_pct):
            return "takeProfit"
        if ex.stop_loss_pct is not None and gain <= -dec(ex.stop_loss_pct):
            return "stopLoss"
        if ex.trailing_stop_pct is not None and (price - best) * sign / best * 100 <= -dec(ex.trailing_stop_pct):
            return "trailingStop"
        return None

    async def _enter(self, side: int, last: float, key: str) -> None:
        order_side = "buy" if side > 0 else "sell"
        price = self.book.slipped(dec(last), order_side)
        kind, value = self.sizing
        amount = order_amount(kind, value, await self.broker.cash(), price, self.fee_factor, side,
                              self.steps.amount_step)
        if amount <= 0:  # the backtester skips such an entry too; live, the trader is told
            step = self.steps.amount_step
            raise StrategyError(f"the sizing buys less than the market's smallest amount"
                                f"{f' ({step.normalize():f})' if step else ''} at {price:f}: no order was placed")
        fill = await self.broker.market_order(order_side, amount, key=key)
        self.fills.append(fill)
        bucket = fill.timestamp_ms - fill.timestamp_ms % self.series.ms
        self.position = Position(side, fill.amount, fill.price, bucket, fill.price)

    async def _exit(self, key: str, reason: str) -> None:
        assert self.position is not None
        fill = await self.broker.market_order("sell" if self.side > 0 else "buy", self.position.amount, key=key)
        self.fills.append(replace(fill, reason=reason))
        self.position = None
