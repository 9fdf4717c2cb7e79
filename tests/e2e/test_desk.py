"""The trading desk in headless Chromium against the real app and backend: the chart follows the symbol and
timeframe picked, the ticket places each order type, the balance shows. Every wait is for a condition."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import type_into
from tests.e2e.conftest import ARTIFACTS, open_app
from tests.e2e.test_trader_flows import row

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


def free_balance(page) -> float:  # type: ignore[no-untyped-def]
    balance = page.locator('[flt-semantics-identifier="balance"]')
    expect(balance).to_have_text(re.compile(r"^[\d,]+\.\d+$"), timeout=20_000)
    return number(balance.text_content() or "")


def pick_type(ticket, label: str) -> None:  # type: ignore[no-untyped-def]
    """Order types are chips: Flutter exposes each as a checkbox named by its label."""
    chip = ticket.get_by_role("checkbox", name=label, exact=True)
    chip.click()
    expect(chip).to_have_attribute("aria-checked", "true", timeout=10_000)


def test_order_types_from_the_ticket_on_a_desktop(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    orders = page.locator('[flt-semantics-identifier="orders"]')
    chart = page.locator('[flt-semantics-identifier="chart"]')
    before = free_balance(page)
    assert before > 0

    # A stop 3% above the market: it waits for its trigger, and its line is on the chart.
    pick_type(ticket, "Stop")
    type_into(ticket.get_by_role("textbox", name=re.compile("Amount")), "0.01")
    trigger = f"{quote(page, 'BTC/USDT') * 1.03:.2f}"
    type_into(ticket.get_by_role("textbox", name=re.compile(r"Stop \(trigger\) price")), trigger)
    page.get_by_role("button", name="Buy BTC/USDT").click()
    expect(row(orders, r"buy 0\.01 BTC/USDT stop order, Open")).to_be_attached(timeout=20_000)
    expect(chart).to_contain_text(re.compile(rf"Buy stop 0\.01 trigger at {float(trigger):,.2f}"), timeout=20_000)

    # A buy limit at a tenth of the market asks first; "Cancel" sends nothing, "Buy" sends it.
    pick_type(ticket, "Limit")
    type_into(ticket.get_by_role("textbox", name=re.compile("Limit price")), "10000")
    page.get_by_role("button", name="Buy BTC/USDT").click()
    expect(page.get_by_text(re.compile(r"Limit price 10,000\.00 is [\d,.]+% below the market"))).to_be_attached(
        timeout=10_000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text(re.compile("Place this order"))).not_to_be_attached(timeout=10_000)
    page.get_by_role("button", name="Buy BTC/USDT").click()
    expect(page.get_by_text(re.compile("Place this order"))).to_be_attached(timeout=10_000)
    page.get_by_role("button", name="Buy BTC/USDT").last.click()
    expect(row(orders, r"buy 0\.01 BTC/USDT limit order, Open")).to_be_attached(timeout=20_000)
    # The cash the resting orders hold is locked: the stop's 0.01 x trigger and the limit's 100 USDT leave
    # the free balance (a fee's reserve on top may lock a little more, never less).
    locked = 0.01 * float(trigger) + 0.01 * 10_000
    page.wait_for_function(
        """([before, locked]) => { const e = document.querySelector('[flt-semantics-identifier="balance"]');
                        return e && parseFloat(e.textContent.replace(/,/g, '')) <= before - locked + 0.01; }""",
        arg=[before, locked], timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "desk-ticket-desktop.png"))
    for kind in ("limit", "stop"):
        row(orders, rf"buy 0\.01 BTC/USDT {kind} order, Open").get_by_role(
            "button", name=re.compile("Cancel order")).click()
        expect(row(orders, rf"buy 0\.01 BTC/USDT {kind} order, Canceled")).to_be_attached(timeout=20_000)

def test_order_types_from_the_ticket_on_a_phone(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 390, 844)
    above = quote(page, "BTC/USDT") * 1.03  # read before the sheet covers the watchlist
    page.get_by_role("button", name="Trade BTC/USDT").click()
    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    expect(ticket).to_be_attached(timeout=10_000)
    free_balance(page)
    pick_type(ticket, "Stop limit")
    type_into(ticket.get_by_role("textbox", name=re.compile("Amount")), "0.002")
    type_into(ticket.get_by_role("textbox", name=re.compile(r"Stop \(trigger\) price")), f"{above:.2f}")
    type_into(ticket.get_by_role("textbox", name=re.compile("Limit price")), f"{above * 1.002:.2f}")
    page.screenshot(path=str(ARTIFACTS / "desk-ticket-phone.png"))
    page.get_by_role("button", name="Buy BTC/USDT").click()
    expect(page.get_by_text(re.compile(r"Buy 0\.002 BTC/USDT stop limit order sent")).first).to_be_attached(
        timeout=20_000)
    orders = page.locator('[flt-semantics-identifier="orders"]')
    expect(row(orders, r"buy 0\.002 BTC/USDT stop limit order, Open")).to_be_attached(
        timeout=20_000)
