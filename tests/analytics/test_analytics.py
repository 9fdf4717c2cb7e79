"""Analytics math against cases computed by hand: average cost, partial fills, fees in every currency,
shorts, drawdown, and the offline HTML report."""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import Any

from services.analytics import (
    analyse,
    drawdown,
    equity_curve,
    fees_by_symbol,
    fills_from_orders,
    pnl_by_symbol,
)
from tests.analytics.orders import btc_round_trip, order, trade


def test_partial_fills_and_fees_average_cost_by_hand() -> None:
    result = analyse(btc_round_trip().values(), {"BTC/USDT": 130.0}, now_ms=10_000)
    btc = result.by_symbol[0]
    assert btc.amount == D("0.5")
    assert btc.realised == D("22.1625")  # 180 - 0.18 - 0.75 × 210.21
    assert btc.unrealised == D("12.4475")  # 0.5 × 130 - 52.5525
    assert btc.fees == D("0.39")
    assert btc.fills == 3
    # The same total by cash: paid 210.21, received 179.82, hold 0.5 × 130.
    assert result.pnl == D("179.82") + D("65") - D("210.21") == D("34.61")
    assert result.fees == D("0.39")


def test_equity_curve_marks_each_point_at_the_last_known_price() -> None:
    curve = equity_curve(btc_round_trip().values(), {"BTC/USDT": 130.0}, now_ms=10_000)
    assert [p.timestamp_ms for p in curve] == [1_000, 2_000, 3_000, 10_000]
    assert [p.pnl for p in curve] == [D("-0.1"), D("9.79"), D("29.61"), D("34.61")]
    assert [p.realised for p in curve] == [0, 0, D("22.1625"), D("22.1625")]
    assert [p.fees for p in curve] == [D("0.1"), D("0.21"), D("0.39"), D("0.39")]


def test_drawdown_from_the_running_peak_starting_at_zero() -> None:
    assert drawdown([D(-1), D(5), D(3), D(7), D(2), D(8)]) == [D(-1), 0, D(-2), 0, D(-5), 0]
    assert drawdown([]) == []


def test_losing_symbol_and_max_drawdown() -> None:
    orders = {**btc_round_trip(),
              "e1": order("e1", "ETH/USDT", "buy", 1.0, [trade(50, 1.0, 0.0, 4_000)]),
              "e2": order("e2", "ETH/USDT", "sell", 1.0, [trade(20, 1.0, 0.0, 5_000)])}
    result = analyse(orders.values(), {"BTC/USDT": 120.0, "ETH/USDT": 25.0}, now_ms=6_000)
    by = pnl_by_symbol(orders.values(), {"BTC/USDT": 120.0})
    assert by["ETH/USDT"].realised == D(-30) and by["ETH/USDT"].amount == 0
    # P&L: -0.1, 9.79, 29.61, 29.61 (ETH bought at its price), -0.39, -0.39: the trough is 30 below the peak.
    assert [p.pnl for p in result.equity] == [D("-0.1"), D("9.79"), D("29.61"), D("29.61"), D("-0.39"),
                                              D("-0.39")]
    assert result.max_drawdown == D(-30)
    assert fees_by_symbol(orders.values()) == {"BTC/USDT": D("0.39"), "ETH/USDT": 0}


def test_open_order_counts_only_what_filled() -> None:
    partly = order("p1", "SOL/USDT", "buy", 10.0, [trade(20, 4.0, 0.08, 1_000)])
    assert partly["status"] == "open"
    unfilled = order("p2", "SOL/USDT", "buy", 5.0, [])
    result = analyse([partly, unfilled], {"SOL/USDT": 21.0}, now_ms=2_000)
    sol = result.by_symbol[0]
    assert (sol.amount, sol.fills, sol.fees) == (D(4), 1, D("0.08"))
    assert sol.unrealised == D(84) - D("80.08")


def test_fee_in_base_is_converted_and_third_currency_fee_kept_apart() -> None:
    in_base = order("b1", "BTC/USDT", "buy", 1.0, [trade(100, 1.0, 0.001, 1_000, currency="BTC")])
    in_bnb = order("b2", "BTC/USDT", "buy", 1.0, [trade(100, 1.0, 0.05, 2_000, currency="BNB")])
    result = analyse([in_base, in_bnb], {"BTC/USDT": 100.0}, now_ms=3_000)
    assert result.fees == D("0.1")  # 0.001 BTC at the fill price
    assert result.fees_other == {"BNB": D("0.05")}
    assert result.unrealised == D(200) - D("200.1")


def test_order_without_trades_list_counts_as_one_fill_at_its_average() -> None:
    bare = {"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 2, "filled": 2, "average": 105,
            "price": None, "timestamp": 1_000, "fee": {"cost": 0.21, "currency": "USDT"}}
    fills = fills_from_orders([bare])
    assert [(f.amount, f.price, f.fee) for f in fills] == [(D(2), D(105), D("0.21"))]


def test_short_and_a_fill_crossing_zero() -> None:
    short = [order("s1", "BTC/USDT", "sell", 1.0, [trade(100, 1.0, 0.1, 1_000)]),
             order("s2", "BTC/USDT", "buy", 1.0, [trade(90, 1.0, 0.09, 2_000)])]
    assert analyse(short, {}, now_ms=3_000).realised == D("9.81")  # 100 - 0.1 - 90 - 0.09
    cross = [order("c1", "ETH/USDT", "buy", 1.0, [trade(100, 1.0, 0.0, 1_000)]),
             order("c2", "ETH/USDT", "sell", 3.0, [trade(110, 3.0, 0.3, 2_000)])]
    eth = analyse(cross, {"ETH/USDT": 105.0}, now_ms=3_000).by_symbol[0]
    assert eth.realised == D("9.9")  # the closing third of the fill carries a third of its fee
    assert eth.amount == D(-2)
    assert eth.unrealised == D(-210) + D("219.8")


def test_garbage_is_ignored_not_fatal() -> None:
    junk: list[dict[str, Any]] = [{"id": "j", "symbol": "BTC/USDT", "side": "buy", "trades": [{"price": "nan", "amount": 1},
                                                                        {"price": 1, "amount": None}]},
            {"id": "k", "side": "sell"}]
    result = analyse(junk, {"BTC/USDT": float("inf")}, now_ms=1)
    assert result.fills == 0 and result.equity == () and result.pnl == 0


def test_html_report_is_one_offline_file_with_the_plotly_bundle(tmp_path) -> None:
    import plotly

    from services.analytics import export_html_report

    result = analyse(btc_round_trip().values(), {"BTC/USDT": 130.0}, now_ms=10_000)
    path = export_html_report(result, tmp_path / "reports" / "report.html")  # a fresh install: no folder yet
    text = path.read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*\bsrc\s*=", text, flags=re.I) == []  # nothing fetched, no CDN
    assert "cdn.plot.ly" not in " ".join(re.findall(r"<script[^>]*>", text))
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in text  # the bundle's own banner
    assert len(text) > 3_000_000  # plotly.min.js is inlined, once
    assert text.count("plotly.js v") == 1
    assert text.count("Plotly.newPlot") == 3  # equity + drawdown, P&L by symbol, fees
    assert "34.61" in text and "22.16" in text and "0.39" in text
