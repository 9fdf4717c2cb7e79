"""Issue 11 in the browser: a trader builds SMA 50/200 1h with TP 5% and SL 2% on the Strategies screen,
backtests it over two years (history store, progress bar), reads the figures, and saves it switched on
for paper: the backend's runner takes it and the saved list says so."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import type_until_seen
from tests.e2e.conftest import ARTIFACTS, open_app
from tests.e2e.test_trader_flows import go

pytestmark = pytest.mark.browser
# Every semantics node of the Strategies panel whose right edge is past the screen's: [left, right] each.
OVERFLOW = """(width) => [...document.querySelectorAll('[flt-semantics-identifier="strategies"] *')]
    .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.right > width + 1).map(r => [r.left, r.right])"""


def test_build_backtest_and_switch_on_a_strategy(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 1440, 900)
    go(page, "Signals")
    panel = page.locator('[flt-semantics-identifier="strategies"]')
    # what the trader reads before tapping Backtest: the form's strategy, named as the saved list will name it
    summary = page.locator('[flt-semantics-identifier="strategy-summary"]')
    type_until_seen(panel.get_by_role("textbox", name=re.compile("Take profit")), "5",
                    lambda: expect(summary).to_contain_text("TP 5%", timeout=15_000))
    type_until_seen(panel.get_by_role("textbox", name=re.compile("Stop loss")), "2",
                    lambda: expect(summary).to_contain_text("SL 2%", timeout=15_000))
    expect(summary).to_contain_text("SMA 50/200 1h, TP 5%, SL 2% on BTC/USDT", timeout=20_000)
    panel.get_by_role("button", name="Backtest").click()
    trades = page.locator('[flt-semantics-identifier="backtest-trades"]')
    expect(trades).to_contain_text(re.compile(r"%\s+(signal|takeProfit|stopLoss|end)"), timeout=90_000)
    expect(panel).to_contain_text("Done")
    page.screenshot(path=str(ARTIFACTS / "desktop-strategy-backtest.png"))
    panel.get_by_role("button", name="Save and trade on paper").click()
    saved = page.locator('[flt-semantics-identifier="saved-strategies"]')
    # Playwright reads an unescaped / in a pattern as its end.
    row = saved.get_by_role("group", name=re.compile(r"SMA 50\/200 1h, TP 5%, SL 2% on BTC\/USDT .*on paper"))
    expect(row).to_be_attached(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "desktop-strategy-on-paper.png"))
    # Switched off again: the backend is shared with the other browser tests, whose cash it must not spend.
    row.get_by_role("button", name="Switch off").click()
    off = saved.get_by_role("group", name=re.compile(r"SMA 50\/200 1h, TP 5%, SL 2% on BTC\/USDT BTC\/USDT · off"))
    expect(off).to_be_attached(timeout=20_000)


def test_the_strategy_form_fits_a_phone(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    """At 390 px the form's rows wrap: no control of the Strategies panel reaches past the screen's edge."""
    from tests.browser import painted
    from tests.e2e.test_desk import bring_up

    for width, height, size in ((390, 844, "phone"), (1440, 900, "desktop")):
        page = open_app(browser, web_app, width, height)
        go(page, "Signals")
        panel = page.locator('[flt-semantics-identifier="strategies"]')
        expect(panel.get_by_role("button", name="EMA cross + RSI filter")).to_be_attached(timeout=20_000)
        bring_up(page, "strategies")
        panel.get_by_role("button", name="EMA cross + RSI filter").click()
        # the preset's rows: EMA 12 crosses above EMA 26 and RSI 14 is above 50
        # (three rows of two operands: each has its parameters' box)
        expect(panel.get_by_role("textbox", name=re.compile("^(Period|Value)"))).to_have_count(6, timeout=20_000)
        painted(page)
        page.screenshot(path=str(ARTIFACTS / f"strategy-form-{size}.png"))
        overflow = page.evaluate(OVERFLOW, width)
        assert overflow == [], overflow
        bring_up(page, "strategy-exits")  # Flutter has no semantics for what is off-screen: look lower too
        painted(page)
        page.screenshot(path=str(ARTIFACTS / f"strategy-form-{size}-exits.png"))
        assert page.evaluate(OVERFLOW, width) == []
        page.context.close()
