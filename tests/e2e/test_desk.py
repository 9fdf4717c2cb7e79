"""The trading desk in headless Chromium against the real app and backend: the chart follows the symbol and
timeframe picked, the ticket places each order type, the balance shows. Every wait is for a condition."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, open_app

pytestmark = pytest.mark.browser

CHART_LABEL = re.compile(r"^(?P<symbol>\S+) (?P<tf>\S+) candlestick chart, (?P<n>\d+) candles, last open "
                         r"(?P<o>[\d,.]+) high (?P<h>[\d,.]+) low (?P<l>[\d,.]+) close (?P<c>[\d,.]+)")


def number(text: str) -> float:
    return float(text.replace(",", ""))


def chart_reads(page, symbol: str, timeframe: str) -> re.Match[str]:  # type: ignore[no-untyped-def]
    """Wait until the chart's label names `symbol` and `timeframe` with candles, and return it parsed."""
    chart = page.locator('[flt-semantics-identifier="chart"]')
    expect(chart).to_contain_text(re.compile(rf"^{re.escape(symbol)} {timeframe} candlestick chart, \d+ candles"),
                                  timeout=30_000)
    match = CHART_LABEL.match(chart.text_content() or "")
    assert match, chart.text_content()
    return match


def quote(page, symbol: str) -> float:  # type: ignore[no-untyped-def]
    text = page.locator(f'[flt-semantics-identifier="quote-{symbol}"]').text_content() or ""
    found = re.search(rf"{re.escape(symbol)} ([\d,]+\.\d+)", text)
    assert found, text
    return number(found.group(1))


def test_switching_symbols_and_timeframes_keeps_the_chart_right(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    chart_reads(page, "BTC/USDT", "1m")
    for symbol, timeframe in (("ETH/USDT", "1m"), ("SOL/USDT", "1m"), ("SOL/USDT", "5m"), ("BTC/USDT", "5m"),
                              ("BTC/USDT", "1m")):
        if not page.locator('[flt-semantics-identifier="chart"]').text_content().startswith(symbol + " "):
            page.locator(f'[flt-semantics-identifier="quote-{symbol}"]').click()
        else:
            page.locator('[flt-semantics-identifier="chart"]').locator("..").get_by_role(
                "button", name=timeframe, exact=True).first.click()
        reading = chart_reads(page, symbol, timeframe)
        # The candles are this symbol's: its last close is within 2% of the price the watchlist shows
        # (a symbol's candles drawn under another's name would be off by far more: BTC ~30x ETH).
        assert abs(number(reading["c"]) / quote(page, symbol) - 1) < 0.02, (symbol, reading.group(0))
        assert number(reading["l"]) <= number(reading["c"]) <= number(reading["h"])
        assert int(reading["n"]) >= 10
    page.screenshot(path=str(ARTIFACTS / "desk-chart-switched.png"))
