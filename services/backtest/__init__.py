"""The backtester: a strategy (data, `strategy.py`) over candle history through the live rule language and
the one ledger. Public surface:

    strategy = load_strategy("assets/strategies/sma-cross.json", check_operand=check_operand)
    candles = read_candles_csv("BTCUSDT-1m.csv")          # or make_candles(ts, o, h, l, c, v)
    result = backtest(strategy, candles, cash=Decimal(10_000), fee=0.001)
    result.trades, result.equity, result.stats, result.to_json()   # RESULT.json
    export_html(result, "report.html")                              # services.backtest.report

The CLI is `python -m services.backtest` (see README.md in this folder).
"""

from services.backtest.candles import CandleError, Candles, make_candles, read_candles_csv
from services.backtest.engine import Trade
from services.backtest.operands import check_operand
from services.backtest.runner import DEFAULT_CASH, BacktestResult, backtest
from services.backtest.strategy import Strategy, StrategyError, load_strategy, parse_strategy

__all__ = [
    "DEFAULT_CASH",
    "BacktestResult",
    "CandleError",
    "Candles",
    "Strategy",
    "StrategyError",
    "Trade",
    "backtest",
    "check_operand",
    "load_strategy",
    "make_candles",
    "parse_strategy",
    "read_candles_csv",
]
