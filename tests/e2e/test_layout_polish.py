"""What a trader sees of the layout, in headless Chromium against the real app and backend: the phone's
ticket sheet is as tall as the ticket (not a screen with its lower half empty) and leaves a strip to tap
it away on a short screen, and watchlist rows scrolled into view show live prices (the app repaints only
the rows on screen). Every wait is for a condition."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import painted
from tests.e2e.conftest import ARTIFACTS, open_app
from tests.e2e.test_desk import Desk, ident, quote

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _close_pages(browser):  # type: ignore[no-untyped-def]
    yield
    for context in browser.contexts:
        context.close()


def sheet_gap(page: Any) -> float:
    """px between the ticket's bottom and the screen's (the sheet's padding, or an empty band)."""
    box = ident(page, "order-ticket").bounding_box()
    assert box is not None
    return page.viewport_size["height"] - (box["y"] + box["height"])


def test_the_phone_ticket_sheet_is_as_tall_as_the_ticket(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    page = open_app(browser, web_app, 390, 844)
    desk = Desk(page, "phone")
    desk.open()
    desk.pick("Market")
    # The sheet takes the ticket's height once laid out: the ticket ends at the sheet's bottom padding
    # (24 px), not above a band of nothing (it was ~150 px on a 844 px phone).
    page.wait_for_function("""() => { const e = document.querySelector('[flt-semantics-identifier="order-ticket"]');
                                      const r = e && e.getBoundingClientRect();
                                      return r && window.innerHeight - r.bottom < 48; }""", timeout=20_000)
    market_top = ident(page, "order-ticket").bounding_box()["y"]
    painted(page)
    page.screenshot(path=str(ARTIFACTS / "phone-ticket-sheet-market.png"))
    desk.pick("Stop limit")  # two more price fields: the sheet grows with the ticket
    expect(desk.ticket.get_by_role("textbox", name=re.compile("Limit price"))).to_be_attached(timeout=10_000)
    page.wait_for_function("""(top) => { const e = document.querySelector('[flt-semantics-identifier="order-ticket"]');
                                         const r = e && e.getBoundingClientRect();
                                         return r && r.top < top - 40 && window.innerHeight - r.bottom < 48; }""",
                           arg=market_top, timeout=20_000)
    painted(page)
    page.screenshot(path=str(ARTIFACTS / "phone-ticket-sheet-stop-limit.png"))
    assert sheet_gap(page) < 48
    # The button that sends the order is on screen, whatever the order type.
    expect(page.get_by_role("button", name="Buy BTC/USDT")).to_be_in_viewport(timeout=10_000)
    page.keyboard.press("Escape")
    expect(desk.ticket).not_to_be_attached(timeout=10_000)


def test_a_short_phone_keeps_the_strip_that_closes_the_ticket_sheet(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    """A 480 px screen is shorter than the ticket: the sheet stops 64 px below the top (the ticket scrolls
    in it), and a tap in that strip closes it. The sheet used to be at least 560 px tall and cover the strip."""
    page = open_app(browser, web_app, 390, 480)
    desk = Desk(page, "phone")
    desk.open()
    top = settled_top(page, "order-ticket")  # the sheet has slid up and taken its height
    assert top >= 64 + 48 + 12, top  # the strip, the sheet's drag handle, its padding above the ticket
    painted(page)
    page.screenshot(path=str(ARTIFACTS / "phone-ticket-sheet-short-screen.png"))
    page.mouse.click(195, 60)
    expect(desk.ticket).not_to_be_attached(timeout=10_000)


def settled_top(page: Any, identifier: str, frames: int = 10) -> float:
    """The element's top once it has stayed put for `frames` animation frames in a row (a sheet slides in)."""
    top = page.evaluate("""([id, frames]) => new Promise(resolve => {
        let last = null, still = 0;
        const start = performance.now();
        const step = () => {
            const e = document.querySelector(`[flt-semantics-identifier="${id}"]`);
            const top = e ? e.getBoundingClientRect().top : null;
            still = top !== null && top === last ? still + 1 : 0;
            last = top;
            if (still >= frames) return resolve(top);
            if (performance.now() - start > 20000) return resolve(null);
            requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
    })""", [identifier, frames])
    assert top is not None, f"{identifier} never came to rest in 20 s"
    return float(top)


def test_watchlist_rows_scrolled_into_view_show_live_prices(browser, web_app) -> None:  # type: ignore[no-untyped-def]
    """A short phone screen: the last rows start below the fold; scrolled up into view, each shows a price
    and that price moves with the market (the rows off screen were not repainted)."""
    page = open_app(browser, web_app, 390, 320)
    last = ident(page, "quote-ADA/USDT")
    box = last.bounding_box()
    assert box is None or box["y"] > 320 - 10, box  # below the fold at first
    page.mouse.move(195, 200)
    for _ in range(20):  # a thumb's short swipes until the last row is in the screen's upper half (the
        box = last.bounding_box()  # navigation bar covers its lower part)
        if box is not None and 0 <= box["y"] < 160:
            break
        before = box["y"] if box else None
        page.mouse.wheel(0, 60)
        page.wait_for_function("""(before) => { const e = document.querySelector('[flt-semantics-identifier="quote-ADA/USDT"]');
                                                return before === null || (e && e.getBoundingClientRect().top !== before); }""",
                               arg=before, timeout=5_000)
    page.mouse.move(2, 2)
    for symbol in ("XRP/USDT", "ADA/USDT"):
        row = ident(page, f"quote-{symbol}")
        expect(row).to_be_in_viewport(timeout=10_000)
        expect(row).to_contain_text(re.compile(rf"{re.escape(symbol)} [\d,]+\.\d+"), timeout=20_000)
        before = row.text_content()
        expect(row).not_to_have_text(before or "", timeout=30_000)  # a live price: it changes on screen
        assert quote(page, symbol) > 0
    painted(page)
    page.screenshot(path=str(ARTIFACTS / "phone-watchlist-scrolled.png"))
