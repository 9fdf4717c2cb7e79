"""Figures by hand on a tiny equity curve, and the exports: one offline HTML file (plotly.js inside, no CDN)
and CSVs a spreadsheet opens."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from services.backtest.candles import make_candles
from services.backtest.report import export_equity_csv, export_html, export_trades_csv
from services.backtest.runner import backtest
from services.backtest.stats import max_drawdown_duration_ms
from services.backtest.strategy import parse_strategy

DAY = 86_400_000


def test_drawdown_duration_is_the_longest_time_below_a_peak() -> None:
    equity = np.array([100, 110, 105, 100, 111, 108, 109, 107.0])
    ts = DAY * np.arange(8)
    # Peak at day 1, back above it at day 4 (3 days); peak at day 4, never regained to day 7 (3 days).
    assert max_drawdown_duration_ms(equity, ts) == 3 * DAY
    assert max_drawdown_duration_ms(np.array([1.0, 2, 3]), DAY * np.arange(3)) == DAY


def _result():  # noqa: ANN202
    close = 100 + 10 * np.sin(np.arange(300) / 8)
    open_ = np.concatenate(([close[0]], close[:-1]))
    candles = make_candles(DAY * np.arange(300), open_, np.maximum(open_, close) + 1, np.minimum(open_, close) - 1, close)
    strategy = parse_strategy({"name": "SMA <3/8>", "buy": {"cross_above": ["sma(3)", "sma(8)"]},
                               "sell": {"cross_below": ["sma(3)", "sma(8)"]}, "fee": 0.001})
    return backtest(strategy, candles, cash=Decimal(1000))


def test_stats_agree_with_the_trades() -> None:
    result = _result()
    stats, trades = result.stats, result.trades
    assert stats["trades"] == len(trades) > 5
    wins = [t for t in trades if t.pnl > 0]
    assert stats["winRate"] == pytest.approx(100 * len(wins) / len(trades))
    assert stats["fees"] == pytest.approx(float(sum(t.entry_fee + t.exit_fee for t in trades)))
    assert stats["finalEquity"] == pytest.approx(1000 + float(sum(t.pnl for t in trades)))
    assert stats["maxDrawdown"] <= 0 and stats["maxDrawdown"] == pytest.approx(100 * float(result.drawdown.min()))


def test_html_report_is_one_offline_file_and_csvs_read_back(tmp_path: Path) -> None:
    result = _result()
    page = export_html(result, tmp_path / "r" / "report.html").read_text()
    assert '<script src="http' not in page  # (the bundle names a CDN only for geo maps' topojson)
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # the bundle itself is inside
    assert "SMA &lt;3/8&gt;" in page  # the name is escaped
    rows = list(csv.DictReader(export_trades_csv(result, tmp_path / "t.csv").open()))
    assert len(rows) == len(result.trades) and float(rows[0]["entryPrice"]) == float(result.trades[0].entry_price)
    eq = list(csv.DictReader(export_equity_csv(result, tmp_path / "e.csv").open()))
    assert len(eq) == len(result.candles) and float(eq[-1]["equity"]) == pytest.approx(float(result.equity[-1]))
