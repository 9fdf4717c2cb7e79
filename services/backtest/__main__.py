"""`python -m services.backtest --candles FILE.csv --strategy FILE.json [--cash N] [--fee F] [--slippage S]
--out RESULT.json [--html REPORT.html] [--trades-csv TRADES.csv]`: a backtest from files.

Exit codes: 0 done, 2 bad arguments or files (one line on stderr saying what is wrong).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

from services.backtest.candles import CandleError, read_candles_csv
from services.backtest.operands import check_operand
from services.backtest.runner import DEFAULT_CASH, backtest
from services.backtest.strategy import StrategyError, load_strategy


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise _Bad(message[0].upper() + message[1:])


class _Bad(Exception):
    pass


def _float(text: str, label: str, *, low: float, high: float | None, low_open: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"{label} must be a number, not {text!r}") from None
    if not math.isfinite(value) or value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"greater than {low:g}"
        raise _Bad(f"{label} must be {bound}, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m services.backtest", description="Backtest a strategy over a candle file.")
    parser.add_argument("--candles", required=True, help="CSV with timestamp,open,high,low,close,volume")
    parser.add_argument("--strategy", required=True, help="strategy JSON (see services/backtest/README.md)")
    parser.add_argument("--cash", default=str(DEFAULT_CASH), help="starting cash in quote currency (10000)")
    parser.add_argument("--fee", default=None, help="fee as a fraction of traded value, 0.001 = 0.1%% (the strategy's, else 0)")
    parser.add_argument("--slippage", default=None, help="slippage as a fraction of price (the strategy's, else 0)")
    parser.add_argument("--out", required=True, help="where to write RESULT.json")
    parser.add_argument("--html", default=None, help="also write an offline HTML report")
    parser.add_argument("--trades-csv", default=None, help="also write the trades as CSV")
    try:
        args = parser.parse_args(argv)
        cash = Decimal(args.cash.strip()) if _float(args.cash, "--cash", low=0.0, high=None, low_open=True) else None
        fee = None if args.fee is None else _float(args.fee, "--fee", low=0.0, high=0.5, low_open=False)
        slippage = (None if args.slippage is None
                    else _float(args.slippage, "--slippage", low=0.0, high=0.5, low_open=False))
        strategy = load_strategy(args.strategy, check_operand=check_operand)
        candles = read_candles_csv(args.candles)
        # --fee / --slippage override the strategy's own (0 when the strategy names none).
        result = backtest(strategy, candles, cash=cash or DEFAULT_CASH, fee=fee, slippage=slippage)
        document = json.dumps(result.to_json(), allow_nan=False, separators=(",", ":"))
        try:
            Path(args.out).write_text(document, encoding="utf-8")
            if args.html:
                from services.backtest.report import export_html

                export_html(result, args.html)
            if args.trades_csv:
                from services.backtest.report import export_trades_csv

                export_trades_csv(result, args.trades_csv)
        except OSError as exc:
            raise _Bad(f"cannot write {exc.filename}: {exc.strerror}") from None
    except (_Bad, StrategyError, CandleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = result.stats
    print(f"{stats['trades']} trades, total return {stats['totalReturn']:.2f}%, max drawdown "
          f"{stats['maxDrawdown']:.2f}% over {len(candles)} candles → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
