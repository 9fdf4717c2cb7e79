"""Trading analytics from the user's orders: P&L over time (equity curve), drawdown, P&L and fees by
symbol, and an interactive HTML report that works offline (plotly with its JavaScript bundled in).

Everything here is a pure function of ccxt unified orders (each with a `trades` list of fills: price,
amount, fee) and current prices; money is `Decimal`. Accounting is the one ledger's, as the paper broker's
(`services.ledger`): a buy adds cost and fee to the cost basis, a reducing fill realises
`proceeds - fee - basis of the amount closed`, unrealised P&L is `amount × mark - cost basis` (entry
fees are in it, the exit fee is not paid yet). Shorts (a sell beyond the amount held) use the same
rules with a negative amount.

Past points of the equity curve are marked at the last price known at that moment: with a price history
(`history`, the history store's candles: `store_prices`), at each candle's close between the fills, so the
curve shows what an open position was worth hour by hour; without one, at the user's own fill prices (the
only past prices an order history holds). The last point is marked at the current prices. Fees charged in the quote currency are counted as they are, fees in the base currency at the
fill price; fees in any other currency (e.g. BNB) are reported apart and not in P&L. Order histories come
from exchanges: a field that is not a number counts as nothing (`dec_or_zero`), so one bad trade does not
hide the rest of the report.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.ledger import ZERO, Fill, Position, dec_or_zero, split_symbol

Prices = Mapping[str, float | Decimal | None]
# (symbol, since_ms, until_ms) → (close time ms, close) of the candles that closed in that range, oldest first
PriceHistory = Callable[[str, int, int], Sequence[tuple[int, float]]]


# -- fills --------------------------------------------------------------------------------------------
def _quote_fee(fee: Any, symbol: str, price: Decimal) -> tuple[Decimal, tuple[str, Decimal] | None]:
    if not isinstance(fee, Mapping):
        return ZERO, None
    cost = dec_or_zero(fee.get("cost"))
    currency = fee.get("currency")
    base, quote = split_symbol(symbol)
    if not cost or currency in (None, quote):
        return cost, None
    if currency == base:
        return cost * price, None
    return ZERO, (str(currency), cost)


def fills_from_orders(orders: Iterable[Mapping[str, Any]]) -> list[Fill]:
    """Every fill of `orders`, oldest first. An order that reports `filled` but carries no `trades`
    (some exchanges) counts as one fill at its `average` price (else `price`) with its order fee."""
    fills: list[Fill] = []
    for order in orders:
        symbol, side = order.get("symbol"), order.get("side")
        if not symbol or side not in ("buy", "sell"):
            continue
        order_id = str(order.get("id") or "")
        trades = order.get("trades") or []
        if not trades and dec_or_zero(order.get("filled")) > 0:
            trades = [{"price": order.get("average") or order.get("price"), "amount": order.get("filled"),
                       "fee": order.get("fee"),
                       "timestamp": order.get("lastTradeTimestamp") or order.get("timestamp")}]
        for trade in trades:
            amount, price = dec_or_zero(trade.get("amount")), dec_or_zero(trade.get("price"))
            if amount <= 0 or price <= 0:
                continue
            fee, other = _quote_fee(trade.get("fee"), symbol, price)
            fills.append(Fill(trade.get("side") or side, amount, price, fee,
                              int(trade.get("timestamp") or order.get("timestamp") or 0),
                              symbol=symbol, order_id=order_id, fee_other=other))
    fills.sort(key=lambda f: (f.timestamp_ms, f.order_id))  # stable: an order's own fills keep their order
    return fills


# -- results (booked by services.ledger) ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EquityPoint:
    """P&L of the whole account at `timestamp_ms`, net of fees (realised + unrealised)."""

    timestamp_ms: int
    realised: Decimal
    unrealised: Decimal
    fees: Decimal  # fees paid so far (already inside realised/unrealised; shown for reference)

    @property
    def pnl(self) -> Decimal:
        return self.realised + self.unrealised


@dataclass(frozen=True, slots=True)
class SymbolPnl:
    symbol: str
    amount: Decimal  # held now (negative: short)
    realised: Decimal
    unrealised: Decimal
    fees: Decimal
    fills: int
    mark: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.realised + self.unrealised


@dataclass(frozen=True, slots=True)
class Analytics:
    """The whole picture, computed in one pass over the fills (`analyse`)."""

    equity: tuple[EquityPoint, ...]
    by_symbol: tuple[SymbolPnl, ...]
    fees_other: dict[str, Decimal] = field(default_factory=dict)  # fees in third currencies, not in P&L

    @property
    def realised(self) -> Decimal:
        return sum((s.realised for s in self.by_symbol), ZERO)

    @property
    def unrealised(self) -> Decimal:
        return sum((s.unrealised for s in self.by_symbol), ZERO)

    @property
    def pnl(self) -> Decimal:
        return self.realised + self.unrealised

    @property
    def fees(self) -> Decimal:
        return sum((s.fees for s in self.by_symbol), ZERO)

    @property
    def fees_by_symbol(self) -> dict[str, Decimal]:
        return {s.symbol: s.fees for s in self.by_symbol}

    @property
    def fills(self) -> int:
        return sum(s.fills for s in self.by_symbol)

    @property
    def drawdown(self) -> list[Decimal]:
        return drawdown([p.pnl for p in self.equity])

    @property
    def max_drawdown(self) -> Decimal:
        return min(self.drawdown, default=ZERO)


def _mark(prices: Prices, symbol: str) -> Decimal | None:
    value = prices.get(symbol)
    if value is None:
        return None
    mark = dec_or_zero(value)
    return mark if mark > 0 else None


def analyse(orders: Iterable[Mapping[str, Any]], prices: Prices, *, now_ms: int | None = None,
            history: PriceHistory | None = None) -> Analytics:
    """Equity curve (one point per fill, one per candle close of `history` while a position is open, then
    one at `now_ms` marked at `prices`), P&L and fees by symbol. O((fills + candles) × symbols held) for
    the curve: each point re-marks the open positions."""
    positions: dict[str, Position] = {}
    counts: dict[str, int] = {}
    other: dict[str, Decimal] = {}
    curve: list[EquityPoint] = []
    realised = fees = ZERO
    fills = fills_from_orders(orders)
    now = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    marks: dict[str, Decimal] = {}
    closes = _closes(history, fills, now)
    at = 0
    for fill in fills:
        while at < len(closes) and closes[at][0] < fill.timestamp_ms:  # candles closed before this fill
            ts, symbol, close = closes[at]
            at += 1
            marks[symbol] = close
            if positions.get(symbol) is not None and positions[symbol].amount:
                unrealised = sum((p.unrealised(marks.get(s)) for s, p in positions.items()), ZERO)
                curve.append(EquityPoint(ts, realised, unrealised, fees))
        marks.pop(fill.symbol, None)  # the fill's own price is the newer mark
        position = positions.setdefault(fill.symbol, Position())
        before = position.realised
        position.apply(fill)
        realised += position.realised - before
        fees += fill.fee
        counts[fill.symbol] = counts.get(fill.symbol, 0) + 1
        if fill.fee_other:
            currency, cost = fill.fee_other
            other[currency] = other.get(currency, ZERO) + cost
        unrealised = sum((p.unrealised(marks.get(s)) for s, p in positions.items()), ZERO)
        curve.append(EquityPoint(fill.timestamp_ms, realised, unrealised, fees))
    for ts, symbol, close in closes[at:]:  # after the last fill, up to now
        marks[symbol] = close
        if positions.get(symbol) is not None and positions[symbol].amount:
            curve.append(EquityPoint(ts, realised, sum((p.unrealised(marks.get(s)) for s, p in positions.items()),
                                                       ZERO), fees))
    by_symbol = tuple(
        SymbolPnl(symbol, p.amount, p.realised, p.unrealised(_mark(prices, symbol)), p.fees, counts[symbol],
                  _mark(prices, symbol) or p.mark)
        for symbol, p in sorted(positions.items())
    )
    if curve:
        curve.append(EquityPoint(max(now, curve[-1].timestamp_ms), realised,
                                 sum((s.unrealised for s in by_symbol), ZERO), fees))
    return Analytics(tuple(curve), by_symbol, other)


def _closes(history: PriceHistory | None, fills: Sequence[Fill], now_ms: int) -> list[tuple[int, str, Decimal]]:
    """(close time, symbol, close) of every candle of `history` from each symbol's first fill to now, in
    time order."""
    if history is None or not fills:
        return []
    first: dict[str, int] = {}
    for fill in fills:
        first.setdefault(fill.symbol, fill.timestamp_ms)
    out = [(int(ts), symbol, dec_or_zero(close)) for symbol, since in first.items()
           for ts, close in history(symbol, since, now_ms) if dec_or_zero(close) > 0]
    out.sort(key=lambda row: row[0])
    return out


def store_prices(store: Any, source: str, timeframe: str = "1h") -> PriceHistory:
    """A `PriceHistory` over the history store (`services.market.history.CandleStore`): the closes of the
    stored `timeframe` candles, each at its close time. Reads only what is stored (no fetch)."""
    from services.market.types import TIMEFRAME_MS

    step = TIMEFRAME_MS[timeframe]

    def closes(symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, float]]:
        bars = store.read(source, symbol, timeframe, since_ms - since_ms % step, until_ms)
        return [(int(t) + step, float(c)) for t, c in zip(bars[:, 0], bars[:, 4], strict=True) if t + step <= until_ms]

    return closes


def equity_curve(orders: Iterable[Mapping[str, Any]], prices: Prices, *,
                 now_ms: int | None = None) -> list[EquityPoint]:
    return list(analyse(orders, prices, now_ms=now_ms).equity)


def pnl_by_symbol(orders: Iterable[Mapping[str, Any]], prices: Prices) -> dict[str, SymbolPnl]:
    return {s.symbol: s for s in analyse(orders, prices).by_symbol}


def fees_by_symbol(orders: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Fees paid per symbol, in quote currency (third-currency fees: `analyse(...).fees_other`)."""
    out: dict[str, Decimal] = {}
    for fill in fills_from_orders(orders):
        out[fill.symbol] = out.get(fill.symbol, ZERO) + fill.fee
    return out


def drawdown(equity: Sequence[Decimal]) -> list[Decimal]:
    """Distance below the running peak at each point (0 at a new high, negative below it). The peak
    starts at 0: the account's P&L before its first trade. O(n)."""
    peak, out = ZERO, []
    for value in equity:
        peak = max(peak, value)
        out.append(value - peak)
    return out


# -- the HTML report ---------------------------------------------------------------------------------
def export_html_report(analytics: Analytics, path: str | Path, *, title: str = "Skeet — trading report",
                       currency: str = "USDT") -> Path:
    """Write ONE self-contained HTML file (plotly.js inlined, no CDN, works offline) with the equity
    curve, drawdown, P&L by symbol and fees. CPU-bound (~0.5 s with plotly's import): call it off the UI
    loop, e.g. `await asyncio.to_thread(export_html_report, ...)`. Returns the path written."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    times = [datetime.fromtimestamp(p.timestamp_ms / 1000, tz=UTC) for p in analytics.equity]
    curve = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06,
                          subplot_titles=(f"P&L over time ({currency}, net of fees)", f"Drawdown ({currency})"))
    curve.add_trace(go.Scatter(x=times, y=[float(p.pnl) for p in analytics.equity], mode="lines+markers",
                               name="P&L", line={"shape": "hv"}), row=1, col=1)
    curve.add_trace(go.Scatter(x=times, y=[float(p.realised) for p in analytics.equity], mode="lines",
                               name="Realised", line={"shape": "hv", "dash": "dot"}), row=1, col=1)
    curve.add_trace(go.Scatter(x=times, y=[float(d) for d in analytics.drawdown], fill="tozeroy", mode="lines",
                               name="Drawdown", line={"shape": "hv", "color": "#d62728"}), row=2, col=1)
    curve.update_layout(height=560, margin={"t": 40, "l": 60, "r": 20, "b": 40}, hovermode="x unified")

    symbols = [s.symbol for s in analytics.by_symbol]
    by_symbol = go.Figure([
        go.Bar(x=symbols, y=[float(s.realised) for s in analytics.by_symbol], name="Realised"),
        go.Bar(x=symbols, y=[float(s.unrealised) for s in analytics.by_symbol], name="Unrealised"),
    ])
    by_symbol.update_layout(barmode="relative", title=f"P&L by symbol ({currency})", height=380,
                            margin={"t": 50, "l": 60, "r": 20, "b": 40})
    fee_chart = go.Figure([go.Bar(x=symbols, y=[float(s.fees) for s in analytics.by_symbol], name="Fees",
                                  marker_color="#ff7f0e")])
    fee_chart.update_layout(title=f"Fees by symbol ({currency})", height=320,
                            margin={"t": 50, "l": 60, "r": 20, "b": 40})

    figures = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), include_mathjax=False,
                           config={"displaylogo": False, "responsive": True})
               for i, fig in enumerate((curve, by_symbol, fee_chart))]
    rows = "".join(
        f"<tr><td>{html.escape(s.symbol)}</td><td>{s.amount.normalize():f}</td><td>{_money(s.realised)}</td>"
        f"<td>{_money(s.unrealised)}</td><td>{_money(s.fees)}</td><td>{_money(s.total)}</td></tr>"
        for s in analytics.by_symbol
    )
    other = "".join(f"<li>{html.escape(c)}: {v.normalize():f}</li>" for c, v in analytics.fees_other.items())
    figures_html = "\n".join(f"<section>{f}</section>" for f in figures)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1100px;padding:0 1rem;color:#222}}
.figures{{display:flex;flex-wrap:wrap;gap:1.5rem}}.figures div{{min-width:9rem}}.figures b{{display:block;font-size:1.4rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1><p>Generated {generated} from {analytics.fills} fills. Amounts in {currency};
P&amp;L is net of fees, open positions marked at the current price.</p>
<div class="figures">
<div>P&amp;L<b>{_money(analytics.pnl)}</b></div><div>Realised<b>{_money(analytics.realised)}</b></div>
<div>Unrealised<b>{_money(analytics.unrealised)}</b></div><div>Fees<b>{_money(analytics.fees)}</b></div>
<div>Max drawdown<b>{_money(analytics.max_drawdown)}</b></div></div>
{f"<p>Fees in other currencies, not in P&amp;L:</p><ul>{other}</ul>" if other else ""}
{figures_html}
<table><thead><tr><th>Symbol</th><th>Held</th><th>Realised</th><th>Unrealised</th><th>Fees</th><th>Total</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)  # the first report of a fresh install makes its folder
    out.write_text(page, encoding="utf-8")
    return out


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"
