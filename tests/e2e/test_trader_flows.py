"""What a trader does in a day, clicked through in headless Chromium against the real app and backend."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import type_into, type_until_seen
from tests.e2e.conftest import ARTIFACTS, open_app

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _close_pages(browser):  # type: ignore[no-untyped-def]
    """Each test's page is closed after it, passed or failed: a live Flutter page keeps drawing and repainting,
    and with the earlier tests' pages still open a loaded machine could not load the next within 30 s."""
    yield
    for context in browser.contexts:
        context.close()


def go(page, section: str) -> None:  # type: ignore[no-untyped-def]
    """Open a section from the NavigationRail (wide) or the bottom NavigationBar (phone)."""
    name = re.compile(f"^{section}( Tab|$)")
    page.get_by_role("button", name=name).or_(page.get_by_role("tab", name=name)).first.click()


def row(panel, pattern: str):  # type: ignore[no-untyped-def]
    """A row by its accessible label: Flutter merges a row with a button into a named group."""
    label = re.compile(pattern.replace("/", r"\/"))  # Playwright reads an unescaped / as the end
    return (panel.get_by_role("group", name=label).or_(panel.get_by_role("textbox", name=label))
            .or_(panel.get_by_text(label)).first)


def test_limit_order_rests_then_is_cancelled(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    ticket.get_by_role("checkbox", name="Limit", exact=True).click()  # order types are chips
    amount = ticket.get_by_role("textbox", name=re.compile("Amount"))
    type_into(amount, "0.01")
    price = ticket.get_by_role("textbox", name=re.compile("Limit price"))
    type_into(price, "1000")  # far below the market: it rests
    page.get_by_role("button", name="Buy BTC/USDT").click()
    # More than 5% from the market: the ticket asks first, and the dialog's button sends it.
    expect(page.get_by_text(re.compile("Place this order"))).to_be_attached(timeout=10_000)
    page.get_by_role("button", name="Buy BTC/USDT").last.click()
    orders = page.locator('[flt-semantics-identifier="orders"]')
    expect(row(orders, r"buy 0\.01 BTC/USDT limit order, Open")).to_be_attached(timeout=20_000)
    orders.get_by_role("button", name=re.compile("Cancel order")).first.click()
    expect(row(orders, r"buy 0\.01 BTC/USDT limit order, Canceled")).to_be_attached(timeout=20_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "desktop-cancelled.png"))


def test_add_a_symbol_from_settings(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 820, 1180)
    go(page, "Settings")
    search = page.get_by_role("textbox", name=re.compile("Add a symbol"))
    type_into(search, "DOGE")
    page.get_by_role("button", name="DOGE/USDT").click()
    go(page, "Markets")
    quote = page.locator('[flt-semantics-identifier="quote-DOGE/USDT"]')
    expect(quote).to_contain_text(re.compile(r"DOGE/USDT \d+\.\d+"), timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "tablet-added-symbol.png"))


def test_create_a_rule_and_see_it_fire(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    go(page, "Signals")
    rules = page.locator('[flt-semantics-identifier="rules"]')
    name = rules.get_by_role("textbox", name="Rule name")
    type_into(name, "Any trade above zero")
    threshold = rules.get_by_role("textbox", name=re.compile("indicator or number"))
    type_into(threshold, "0")
    rules.get_by_role("button", name="is", exact=True).click()
    rules.get_by_role("button", name="Add rule").click()
    expect(row(rules, "Rule Any trade above zero, enabled")).to_be_attached(timeout=10_000)
    log = page.locator('[flt-semantics-identifier="signal-log"]')
    expect(row(log, "signal on .*: Any trade above zero")).to_be_attached(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "desktop-rule-fired.png"))
    # Deleted again: the other tests share this trader, and a rule firing on every trade of every symbol
    # floods their screens with signals.
    rules.get_by_role("button", name="Delete rule Any trade above zero").first.click()
    expect(row(rules, "Rule Any trade above zero, enabled")).not_to_be_attached(timeout=10_000)


def test_ask_for_an_insight_on_a_phone(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 390, 844)
    go(page, "Insights")
    page.get_by_role("button", name=re.compile("^Ask")).click()
    insights = page.locator('[flt-semantics-identifier="insights"]')
    expect(row(insights, "Answered by Local analyst")).to_be_attached(timeout=20_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "phone-insight.png"))


def test_phone_trades_from_the_bottom_sheet(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 390, 844)
    page.get_by_role("button", name="Trade BTC/USDT").click()
    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    amount = ticket.get_by_role("textbox", name=re.compile("Amount"))
    type_into(amount, "0.003")
    # The trader sees what the order will cost before sending it: the app has the amount.
    expect(ticket).to_have_attribute("aria-label", re.compile(r"≈ [\d,.]+ USDT"), timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "phone-ticket-sheet.png"))
    page.get_by_role("button", name="Buy BTC/USDT").click()
    # The confirmation is shown and announced to screen readers (an aria-live region): both count.
    expect(page.get_by_text(re.compile(r"Buy 0\.003 BTC/USDT market order sent")).first).to_be_attached(
        timeout=20_000)


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1440, 900)])
def test_set_a_price_alert_and_delete_it(browser, web_app, width: int, height: int) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, width, height)
    go(page, "Signals")
    alerts = page.locator('[flt-semantics-identifier="alerts"]')
    price = alerts.get_by_role("textbox", name=re.compile("Alert price"))
    price.scroll_into_view_if_needed()
    # What the alert will do is said before it is set
    # (a line of its own, or merged by Flutter into the panel's own label when the panel flows on a phone).
    preview = r"Fires when it rises to 1,000,000\.00"
    type_until_seen(price, "1000000", lambda: expect(  # far above the market: it waits
        row(alerts, preview).or_(page.get_by_role("group", name=re.compile(preview))).first).to_be_attached(
        timeout=15_000))
    alerts.get_by_role("button", name="Set alert").click()
    active = row(alerts, r"Alert BTC/USDT rises to 1,000,000\.00, active")
    expect(active).to_be_attached(timeout=20_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"alerts-{width}.png"))
    alerts.get_by_role("button", name=re.compile(r"Delete alert BTC\/USDT rises to 1,000,000\.00")).first.click()
    expect(active).not_to_be_attached(timeout=20_000)


def test_export_the_analytics_report_as_a_browser_download(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    type_into(ticket.get_by_role("textbox", name=re.compile("Amount")), "0.002")
    page.get_by_role("button", name="Buy BTC/USDT").click()
    orders = page.locator('[flt-semantics-identifier="orders"]')
    expect(row(orders, r"buy 0\.002 BTC/USDT market order, Filled")).to_be_attached(timeout=20_000)
    go(page, "Portfolio")
    with page.expect_download(timeout=60_000) as download_info:
        page.get_by_role("button", name=re.compile("Export report")).click()
    download = download_info.value
    assert re.fullmatch(r"skeet-report-\d{8}-\d{6}\.html", download.suggested_filename)
    saved = ARTIFACTS / download.suggested_filename
    download.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    # Interactive and offline: plotly's JS is inside the file, nothing is fetched from a CDN.
    assert html.count("Plotly.newPlot") == 3  # equity and drawdown, P&L by symbol, fees
    assert re.findall(r"<script[^>]*\bsrc\s*=", html, flags=re.I) == []  # nothing fetched, no CDN
    expect(page.get_by_text(re.compile(r"Report downloaded: skeet-report-")).first).to_be_attached(timeout=10_000)
