"""A trader opens Skeet in a browser, sees moving prices, places a market order by clicking, and
watches it arrive as filled through the live-state listener; at phone, tablet and desktop widths."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import painted, type_into
from tests.e2e.conftest import ARTIFACTS, open_app

pytestmark = pytest.mark.browser

SIZES = {"phone": (390, 844), "tablet": (820, 1180), "desktop": (1440, 900)}


def test_place_market_order_and_see_it_filled(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, *SIZES["desktop"])
    badge = page.locator('[flt-semantics-identifier="mode-badge"]')
    for mode in ("Simulated market", "Paper trading", "Local state", "Local user"):
        expect(badge).to_contain_text(mode)

    # Prices move: the selected symbol's quote changes within a few seconds.
    quote = page.locator('[flt-semantics-identifier="quote-BTC/USDT"]')
    expect(quote).to_contain_text(re.compile(r"BTC/USDT [\d,]+\.\d+"), timeout=20_000)
    first = quote.text_content()
    expect(quote).not_to_have_text(first or "", timeout=20_000)

    ticket = page.locator('[flt-semantics-identifier="order-ticket"]')
    amount = ticket.get_by_role("textbox", name=re.compile("Amount"))
    type_into(amount, "0.01")
    page.get_by_role("button", name="Buy BTC/USDT").click()

    orders = page.locator('[flt-semantics-identifier="orders"]')
    expect(orders.get_by_text(re.compile(r"buy 0\.01 BTC/USDT market order, Filled"))).to_be_attached(
        timeout=20_000
    )
    expect(ticket.get_by_role("button", name="Buy BTC/USDT")).to_be_enabled()
    painted(page)  # the canvas paints a frame after the semantics tree updates
    page.screenshot(path=str(ARTIFACTS / "desktop-after-order.png"))
    page.context.close()  # each open page keeps a WebGL canvas: a later page's could go stale


@pytest.mark.parametrize("size", list(SIZES))
def test_each_layout_is_usable(browser, web_app, size: str) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, *SIZES[size])
    for identifier in ("watchlist", "mode-badge", "chart"):
        expect(page.locator(f'[flt-semantics-identifier="{identifier}"]')).to_be_attached(timeout=20_000)
    # The picture is of the app, not Flet's "Working..." loader: the chart has drawn its candles, the
    # account its equity, and the browser has painted that since.
    chart = page.locator('[flt-semantics-identifier="chart"]')
    expect(chart).to_contain_text(re.compile(r"candlestick chart, \d+ candles"), timeout=30_000)
    expect(page.locator('[flt-semantics-identifier="equity"]')).to_have_text(re.compile(r"\d"), timeout=30_000)
    painted(page)
    page.screenshot(path=str(ARTIFACTS / f"{size}.png"))
    page.context.close()
