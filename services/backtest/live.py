"""A strategy on a live trade stream: the backtester's live twin, for a paper (or live) session.

Trades build the strategy's candles (`services.signals.candles.CandleSeries`, the live engine's incremental
indicators); at each candle's close the buy and sell conditions are evaluated by the live rule code
(`services.signals.rules.RuleRunner`), and the first trade of the next candle, its open, acts on the signal
with a market order through the broker. Sizing, the signal rules (both conditions firing = no signal; entries
only while flat; the opposite signal exits, and reverses in `long_short`) and the amount rounding are the
backtester's (`engine.order_amount`). Exit levels (take-profit, stop-loss, trailing) belong to the broker's
resting orders and are not placed here; a strategy with them is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from services.backtest.engine import MarketSteps, order_amount
from services.backtest.strategy import Strategy, StrategyError
from services.ledger import dec
from services.ledger.book import OrderBook
from services.signals.candles import CandleSeries, parse_operand
from services.signals.rules import Rule, RuleRunner


class StrategyBroker(Protocol):
    """What the runner needs of a broker for one account and symbol."""

    async def cash(self) -> Decimal: ...

    async def market_order(self, side: str, amount: Decimal) -> LiveFill: ...


@dataclass(frozen=True, slots=True)
class LiveFill:
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    timestamp_ms: int


class LiveStrategy:
    """`await on_trade(ts, price, amount)` for every trade of `symbol`, in time order."""

    def __init__(self, strategy: Strategy, *, symbol: str, timeframe: str, broker: StrategyBroker,
                 market: MarketSteps | None = None) -> None:
        ex = strategy.exits
        if ex.take_profit_pct is not None or ex.stop_loss_pct is not None or ex.trailing_stop_pct is not None \
                or ex.time_in_trade_ms is not None:
            raise StrategyError("the live runner acts on signals only; exit levels and time exits are not placed")
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
        self.side = 0  # +1 long, -1 short, 0 flat
        self.held = Decimal(0)
        self.fills: list[LiveFill] = []

    async def on_trade(self, timestamp_ms: int, price: float, amount: float) -> None:
        close = self.series.c
        if not self.series.on_trade(timestamp_ms, price, amount):
            return
        values = dict(self.series.closed)
        values["price"] = close
        fired = {side: runner.evaluate(self.symbol, values, timestamp_ms) is not None
                 for side, runner in self.runners.items()}
        buy, sell = fired.get("buy", False), fired.get("sell", False)
        signal = 1 if buy and not sell else (-1 if sell and not buy else 0)
        if not signal:
            return
        allowed = self.strategy.positions
        if not self.side:
            if allowed == "long_short" or (allowed == "long") == (signal > 0):
                await self._enter(signal, price)
        elif self.strategy.exits.signal and signal == -self.side:
            await self._exit()
            if allowed == "long_short":
                await self._enter(signal, price)

    async def _enter(self, side: int, last: float) -> None:
        order_side = "buy" if side > 0 else "sell"
        price = self.book.slipped(dec(last), order_side)
        kind, value = self.sizing
        amount = order_amount(kind, value, await self.broker.cash(), price, self.fee_factor, side,
                              self.steps.amount_step)
        if amount <= 0:
            return
        fill = await self.broker.market_order(order_side, amount)
        self.fills.append(fill)
        self.side, self.held = side, fill.amount if side > 0 else -fill.amount

    async def _exit(self) -> None:
        fill = await self.broker.market_order("sell" if self.side > 0 else "buy", abs(self.held))
        self.fills.append(fill)
        self.side, self.held = 0, Decimal(0)
