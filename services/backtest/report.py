"""Backtest results for people: plotly figures (equity, drawdown, trades on price), one offline HTML file
(plotly.js inlined, no CDN) and CSV exports. Plotly is imported only here, on demand (not on phones)."""

from __future__ import annotations

import csv
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.backtest.runner import BacktestResult, trade_json

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _times(ts: Any) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, tz=UTC) for t in ts.tolist()]


def figures(result: BacktestResult, *, max_points: int = 5_000) -> dict[str, go.Figure]:
    """`equity` (equity + drawdown, one figure) and `trades` (close price with entry/exit markers). Long
    curves are thinned to about `max_points` (every k-th point plus the last) so a phone can draw them."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    candles, n = result.candles, len(result.candles)
    step = max(1, n // max_points)
    keep = list(range(0, n, step)) + ([n - 1] if (n - 1) % step else [])
    x = _times(candles.timestamp_ms[keep])
    curve = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06,
                          subplot_titles=("Equity", "Drawdown (%)"))
    curve.add_trace(go.Scatter(x=x, y=result.equity[keep], mode="lines", name="Equity"), row=1, col=1)
    curve.add_trace(go.Scatter(x=x, y=result.drawdown[keep] * 100, fill="tozeroy", mode="lines", name="Drawdown",
                               line={"color": "#d62728"}), row=2, col=1)
    curve.update_layout(height=520, margin={"t": 40, "l": 60, "r": 20, "b": 40}, hovermode="x unified")
    price = go.Figure(go.Scatter(x=x, y=candles.close[keep], mode="lines", name="Close", line={"color": "#888"}))
    trades = result.trades
    price.add_trace(go.Scatter(x=[datetime.fromtimestamp(t.entry_ms / 1000, tz=UTC) for t in trades],
                               y=[float(t.entry_price) for t in trades], mode="markers", name="Entry",
                               marker={"symbol": "triangle-up", "color": "#2ca02c", "size": 9}))
    price.add_trace(go.Scatter(x=[datetime.fromtimestamp(t.exit_ms / 1000, tz=UTC) for t in trades],
                               y=[float(t.exit_price) for t in trades], mode="markers", name="Exit",
                               marker={"symbol": "triangle-down", "color": "#d62728", "size": 9}))
    price.update_layout(title="Trades", height=380, margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return {"equity": curve, "trades": price}


_LABELS = (("totalReturn", "Total return", "%"), ("cagr", "CAGR", "%"), ("maxDrawdown", "Max drawdown", "%"),
           ("sharpe", "Sharpe", ""), ("sortino", "Sortino", ""), ("calmar", "Calmar", ""),
           ("trades", "Trades", ""), ("winRate", "Win rate", "%"), ("profitFactor", "Profit factor", ""),
           ("expectancy", "Expectancy", ""), ("exposure", "Exposure", "%"), ("fees", "Fees", ""))


def export_html(result: BacktestResult, path: str | Path) -> Path:
    """ONE self-contained HTML file: figures, stats and the trade table. Works offline."""
    figs = figures(result)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), include_mathjax=False,
                         config={"displaylogo": False, "responsive": True})
             for i, fig in enumerate(figs.values())]
    stats = result.stats
    cells = "".join(f"<div>{label}<b>{_fmt(stats.get(key))}{unit if stats.get(key) is not None else ''}</b></div>"
                    for key, label, unit in _LABELS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(_fmt(v)))}</td>" for v in (
            t["side"], t["entryTime"], t["exitTime"], t["entryPrice"], t["exitPrice"], t["amount"], t["pnl"],
            t["returnPct"], t["exitReason"])) + "</tr>"
        for t in (trade_json(x) for x in result.trades))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(result.strategy.name)} backtest</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1100px;padding:0 1rem;color:#222}}
.figures{{display:flex;flex-wrap:wrap;gap:1.2rem}}.figures div{{min-width:8rem}}.figures b{{display:block;font-size:1.3rem}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}td,th{{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>{html.escape(result.strategy.name)}</h1>
<p>{len(result.candles)} candles. Signals fill at the next candle's open; percent figures are percent.</p>
<div class="figures">{cells}</div>
{"".join(f"<section>{p}</section>" for p in parts)}
<table><thead><tr><th>Side</th><th>Entry</th><th>Exit</th><th>Entry price</th><th>Exit price</th><th>Amount</th>
<th>P&amp;L</th><th>Return %</th><th>Exit</th></tr></thead><tbody>{rows}</tbody></table></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def export_trades_csv(result: BacktestResult, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [trade_json(t) for t in result.trades]
    fields = ["entryTime", "exitTime", "side", "amount", "entryPrice", "exitPrice", "pnl", "returnPct", "fees",
              "exitReason"]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def export_equity_csv(result: BacktestResult, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "equity", "drawdownPct"])
        for t, e, d in zip(result.candles.timestamp_ms.tolist(), result.equity.tolist(),
                           (result.drawdown * 100).tolist(), strict=True):
            writer.writerow([t, round(e, 8), round(d, 6)])
    return out


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "—" if value is None else value
