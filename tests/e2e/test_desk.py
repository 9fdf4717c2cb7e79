"""The trading desk in headless Chromium against the real app and backend, at a phone's, a tablet's and a
desktop's size (390×844, 820×1180, 1440×900), one page per size: the chart follows every symbol and
timeframe picked; every order type is placed from the ticket and its line is on the chart; balances, equity,
the order book and recent trades show; screenshots of each screen go to tests/artifacts. Every wait is for a
condition."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser import painted, type_into
from tests.e2e.conftest import ARTIFACTS, open_app
from tests.e2e.test_trader_flows import row

pytestmark = pytest.mark.browser

SIZES = {"phone": (390, 844), "tablet": (820, 1180), "desktop": (1440, 900)}
NUM = r"\d[\d,]*(?:\.\d+)?"
CHART_LABEL = re.compile(rf"^(?P<symbol>\S+) (?P<tf>\S+) candlestick chart, (?P<n>\d+) candles, last open "
                         rf"(?P<o>{NUM}) high (?P<h>{NUM}) low (?P<l>{NUM}) close (?P<c>{NUM}), "
                         r"opened (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d) UTC")
CHART = '[flt-semantics-identifier="chart"]'


def number(text: str) -> float:
    return float(text.replace(",", ""))


def ident(page: Any, name: str) -> Any:
    return page.locator(f'[flt-semantics-identifier="{name}"]')


def chart_reads(page: Any, symbol: str, timeframe: str) -> re.Match[str]:
    """Wait until the chart's label names `symbol` and `timeframe` with candles, and return it parsed."""
    chart = page.locator(CHART)
    expect(chart).to_contain_text(re.compile(rf"^{re.escape(symbol)} {timeframe} candlestick chart, \d+ candles"),
                                  timeout=30_000)
    match = CHART_LABEL.match(chart.text_content() or "")
    assert match, chart.text_content()
    return match


def quote(page: Any, symbol: str) -> float:
    text = ident(page, f"quote-{symbol}").text_content() or ""
    found = re.search(rf"{re.escape(symbol)} ([\d,]+\.\d+)", text)
    assert found, text
    return number(found.group(1))


def free_balance(page: Any) -> float:
    balance = ident(page, "balance")
    expect(balance).to_have_text(re.compile(r"^[\d,]+\.\d+$"), timeout=20_000)
    return number(balance.text_content() or "")


def switch_symbols_and_timeframes(page: Any) -> None:
    """Every pick redraws the chart with the picked symbol's candles at the picked timeframe."""
    chart_reads(page, "BTC/USDT", "1m")
    for symbol, timeframe in (("ETH/USDT", "1m"), ("SOL/USDT", "1m"), ("SOL/USDT", "5m"), ("SOL/USDT", "4h"),
                              ("BTC/USDT", "4h"), ("BTC/USDT", "15m"), ("BTC/USDT", "1m")):
        if not (page.locator(CHART).text_content() or "").startswith(symbol + " "):
            ident(page, f"quote-{symbol}").click()
        else:
            page.get_by_role("button", name=timeframe, exact=True).first.click()
        reading = chart_reads(page, symbol, timeframe)
        # The candles are this symbol's: its last close is within 2% of the price the watchlist shows
        # (a symbol's candles drawn under another's name would be off by far more: BTC ~30x ETH).
        assert abs(number(reading["c"]) / quote(page, symbol) - 1) < 0.02, (symbol, reading.group(0))
        assert number(reading["l"]) <= number(reading["c"]) <= number(reading["h"])
        assert int(reading["n"]) >= 10


def drag_back_through_history(page: Any) -> None:
    """Mouse drags to the right pan the chart back past the 500 candles loaded: the store's older ones show,
    and they are the synthetic market's own candles for that minute (the app's default market, seed 7)."""
    from services.market.synthetic import SyntheticMarket

    start = chart_reads(page, "BTC/USDT", "1m")
    newest = datetime.strptime(start["at"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    box = page.locator(CHART).bounding_box()
    y = box["y"] + box["height"] / 2
    reading = start
    for _ in range(40):  # ~85 bars a drag on a desktop; stops once past the held window
        at = datetime.strptime(reading["at"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        if (newest - at).total_seconds() > 600 * 60:
            break
        page.mouse.move(box["x"] + 40, y)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + 40 + step * 60, y)
        page.mouse.up()
        # The label moves to an older bar; at the held edge it stays until the older page has arrived and
        # the next drag goes on (the loop's bound and the assertion below decide).
        with contextlib.suppress(AssertionError):
            expect(page.locator(CHART)).not_to_contain_text(f"opened {reading['at']} UTC", timeout=10_000)
        reading = chart_reads(page, "BTC/USDT", "1m")
    at = datetime.strptime(reading["at"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert (newest - at).total_seconds() > 600 * 60, reading.group(0)  # past the 500 minutes loaded
    ts = int(at.timestamp() * 1000)
    bar = SyntheticMarket(7).candles("BTC/USDT", "1m", ts, ts + 60_000)[0]
    assert [number(reading[k]) for k in "ohlc"] == [round(float(v), 2) for v in bar[1:5]], (reading.group(0), bar)
    to_top(page)  # (also moves the mouse off the chart)
    page.get_by_role("button", name="1h", exact=True).first.click()  # another timeframe: back at the live edge
    chart_reads(page, "BTC/USDT", "1h")
    page.get_by_role("button", name="1m", exact=True).first.click()
    assert chart_reads(page, "BTC/USDT", "1m")["at"] >= start["at"]


def account_shows(page: Any) -> float:
    """Balance (a number), equity, the order book's levels and recent trades; returns the free balance."""
    for name in ("equity", "order-book", "trades"):
        ident(page, name).scroll_into_view_if_needed()
        expect(ident(page, name)).to_be_attached(timeout=20_000)
    expect(ident(page, "equity")).to_have_text(re.compile(r"^[\d,]+\.\d{2}$"), timeout=20_000)
    expect(ident(page, "order-book")).to_contain_text(re.compile(r"\d+\.\d+"), timeout=20_000)
    expect(ident(page, "trades")).to_contain_text(re.compile(r"\d+\.\d+"), timeout=20_000)
    return number(ident(page, "equity").text_content() or "")


class Desk:
    """The ticket at one size: inline on a tablet or a desktop, a bottom sheet opened per order on a phone."""

    def __init__(self, page: Any, size: str) -> None:
        self.page, self.size = page, size
        self.ticket = ident(page, "order-ticket")

    def open(self) -> None:
        if self.size == "phone":
            self.page.get_by_role("button", name="Trade BTC/USDT").click()
        expect(self.ticket).to_be_attached(timeout=10_000)

    def pick(self, label: str) -> None:
        """Order types are chips: Flutter exposes each as a checkbox named by its label."""
        chip = self.ticket.get_by_role("checkbox", name=label, exact=True)
        chip.click()
        expect(chip).to_have_attribute("aria-checked", "true", timeout=10_000)

    def side(self, side: str) -> None:
        self.ticket.get_by_role("button", name=side.title(), exact=True).click()
        expect(self.page.get_by_role("button", name=f"{side.title()} BTC/USDT")).to_be_attached(timeout=10_000)

    def field(self, label: str, text: str) -> None:
        type_into(self.ticket.get_by_role("textbox", name=re.compile(label)), text)

    def send(self, side: str, done: str) -> None:
        """Press Buy/Sell; wait until the backend took the order: a phone's sheet closes then, and a wider
        ticket says "Sent <time> · <what the notice said>". Not the notice itself: it is a snack bar that any
        later notice replaces at once (a tablet run once missed it, the order placed)."""
        sent = ident(self.page, "ticket-sent")
        before = sent.text_content() if self.size != "phone" and sent.count() else None
        self.page.get_by_role("button", name=f"{side.title()} BTC/USDT").click()
        if self.size == "phone":
            expect(self.ticket).not_to_be_attached(timeout=20_000)
            return
        if before:
            expect(sent).not_to_have_text(before, timeout=20_000)
        expect(sent).to_contain_text(re.compile(done), timeout=20_000)


def chart_has(page: Any, pattern: str) -> None:
    expect(page.locator(CHART)).to_contain_text(re.compile(pattern), timeout=20_000)


def place_every_order_type(page: Any, size: str, amount: str) -> None:
    """Market, bracket (take-profit / stop-loss), limit, stop, stop-limit, OCO and trailing stop, each seen on
    the chart: its price line (or the position's entry), named by side, type, amount and price."""
    desk = Desk(page, size)
    half = f"{float(amount) / 2:g}"
    last = quote(page, "BTC/USDT")

    desk.open()  # a market buy: the position's entry line
    desk.pick("Market")
    desk.field("Amount", amount)
    desk.send("buy", rf"Buy {amount} BTC/USDT market order sent")
    chart_has(page, r"Entry at [\d,.]+")

    desk.open()  # the same with take-profit and stop-loss: its exit is an OCO, both legs on the chart
    desk.pick("Market")
    desk.field("Amount", amount)
    bracket = desk.ticket.get_by_role("checkbox", name="Take-profit / stop-loss")
    if bracket.get_attribute("aria-checked") != "true":
        bracket.click()
    tp, sl = f"{last * 1.04:.2f}", f"{last * 0.96:.2f}"
    desk.field(r"^Take-profit \(", tp)
    desk.field(r"^Stop-loss \(", sl)
    desk.send("buy", rf"Buy {amount} BTC/USDT market order sent")
    chart_has(page, rf"Sell oco {amount} at {float(tp):,.2f}")
    chart_has(page, rf"Sell oco {amount} trigger at {float(sl):,.2f}")

    for label, fields, line in (
        ("Limit", {"Limit price": f"{last * 0.97:.2f}"}, "Buy limit {a} at {p0}"),
        ("Stop", {r"Stop \(trigger\) price": f"{last * 1.03:.2f}"}, "Buy stop {a} trigger at {p0}"),
        ("Stop limit", {r"Stop \(trigger\) price": f"{last * 1.03:.2f}", "Limit price": f"{last * 1.032:.2f}"},
         "Buy stop limit {a} at {p1}"),
    ):
        desk.open()
        desk.side("buy")
        desk.pick(label)
        desk.field("Amount", amount)
        bracket = desk.ticket.get_by_role("checkbox", name="Take-profit / stop-loss")
        if bracket.get_attribute("aria-checked") == "true":
            bracket.click()  # an entry without exits this time
        prices = list(fields.values())
        for name, value in fields.items():
            desk.field(name, value)
        desk.send("buy", rf"Buy {amount} BTC/USDT {label.lower()} order sent")
        chart_has(page, re.escape(line.format(a=amount, p0=f"{float(prices[0]):,.2f}",
                                              p1=f"{float(prices[-1]):,.2f}")))
        expect(row(ident(page, "orders"), rf"buy {amount} BTC/USDT {label.lower()} order, Open")).to_be_attached(
            timeout=20_000)

    desk.open()  # an OCO exit for half the first buy: take-profit above, stop-loss below
    desk.side("sell")
    desk.pick("OCO")
    desk.field("Amount", half)
    tp, sl = f"{last * 1.045:.2f}", f"{last * 0.955:.2f}"
    desk.field(r"Take-profit \(limit\) price", tp)
    desk.field(r"Stop-loss \(trigger\) price", sl)
    desk.send("sell", rf"Sell {half} BTC/USDT oco order sent")
    chart_has(page, rf"Sell oco {half} at {float(tp):,.2f}")
    chart_has(page, rf"Sell oco {half} trigger at {float(sl):,.2f}")

    desk.open()  # a trailing stop for the other half: its trigger follows the best price
    desk.side("sell")
    desk.pick("Trailing")
    desk.field("Amount", half)
    desk.field(r"Trailing distance", "2")
    desk.send("sell", rf"Sell {half} BTC/USDT trailing order sent")
    chart_has(page, rf"Sell trailing stop {half} trigger at [\d,.]+")
    # Cancelled from the orders list: the order says so and its line leaves the chart.
    limit_line = re.compile(rf"Buy limit {re.escape(amount)} at")
    row(ident(page, "orders"), rf"buy {amount} BTC/USDT limit order, Open").get_by_role(
        "button", name=re.compile("Cancel order")).click()
    expect(row(ident(page, "orders"), rf"buy {amount} BTC/USDT limit order, Canceled")).to_be_attached(timeout=20_000)
    expect(page.locator(CHART)).not_to_contain_text(limit_line, timeout=20_000)
    desk.open()
    desk.side("buy")  # the ticket back on buying: its balance is the quote currency's
    if size == "phone":
        page.keyboard.press("Escape")
        expect(desk.ticket).not_to_be_attached(timeout=10_000)


def far_price_asks_first(page: Any) -> None:
    """A limit more than 5% from the market asks before it is sent; "Cancel" sends nothing."""
    desk = Desk(page, "desktop")
    desk.side("buy")
    desk.pick("Limit")
    desk.field("Amount", "0.01")
    desk.field("Limit price", "10000")
    page.get_by_role("button", name="Buy BTC/USDT").click()
    expect(page.get_by_text(re.compile(r"Limit price 10,000\.00 is [\d,.]+% below the market"))).to_be_attached(
        timeout=10_000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text(re.compile("Place this order"))).not_to_be_attached(timeout=10_000)
    expect(page.locator(CHART)).not_to_contain_text("Buy limit 0.01 at 10,000.00")
    desk.pick("Market")


def go(page: Any, section: str) -> None:
    """A phone's navigation bar shows tabs; a wider screen's rail, buttons ("Signals, Tab 3 of 5")."""
    page.get_by_role("tab", name=section, exact=True).or_(
        page.get_by_role("button", name=re.compile(rf"^{section}\b"))).first.click()


def bring_up(page: Any, identifier: str) -> None:
    """Wheel the page down until the panel's top is in the upper part of the screen (or the page ends)."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    page.mouse.move(width * 0.6, height * 0.6)
    for _ in range(30):
        box = ident(page, identifier).bounding_box()
        if box is not None and box["y"] < height * 0.35:
            break
        before = box["y"] if box else None
        page.mouse.wheel(0, 250)
        try:  # the wheel's scroll has landed; if nothing moves, the page is at its end
            page.wait_for_function(
                """([id, before]) => { const e = document.querySelector(`[flt-semantics-identifier="${id}"]`);
                                       return !e || before === null || e.getBoundingClientRect().top !== before; }""",
                arg=[identifier, before], timeout=3_000)
        except PlaywrightTimeout:
            break
    page.mouse.move(2, 2)


def to_top(page: Any) -> None:
    """Scroll the page back to its top, as a thumb does (Flutter keeps no semantics for what is off-screen)."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    for x in (0.2, 0.5, 0.85):  # each column scrolls on its own on a wider screen
        page.mouse.move(width * x, height / 2)
        page.mouse.wheel(0, -20_000)
    page.mouse.move(2, 2)  # off the chart and every row: no crosshair or hover in the picture
    expect(page.locator(CHART)).to_be_in_viewport(timeout=10_000)


# Each position row's box and the panel's, [top, bottom] in px (Flutter's semantics tree holds the geometry).
POSITION_BOXES = """() => { const box = e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; };
    const panel = document.querySelector('[flt-semantics-identifier="positions"]');
    return [box(panel), [...panel.querySelectorAll('[flt-semantics-identifier^="position-"]')].map(box)]; }"""


def positions_fit(page: Any) -> None:
    """The Portfolio screen's positions panel is as tall as its rows: each row within it, and no more than a
    row's height of it empty below the last one (it was a fixed 260 px box)."""
    expect(ident(page, "positions").locator('[flt-semantics-identifier^="position-"]').first).to_be_attached(
        timeout=20_000)
    (top, bottom), rows = page.evaluate(POSITION_BOXES)
    assert rows and all(top <= r_top and r_bottom <= bottom + 1 for r_top, r_bottom in rows), (top, bottom, rows)
    assert bottom - max(r_bottom for _, r_bottom in rows) < 44 + 12, (top, bottom, rows)


def screenshots(page: Any, size: str) -> None:
    """Each screen as a trader sees it, for a person to look at (tests/artifacts/desk-<size>-*.png)."""
    # The notices are gone (a snack bar lasts 4 s); the ticket's "Sent <time> · ..." line stays.
    expect(page.get_by_text(re.compile(r"^(Buy|Sell) .* order sent|^Order canceled"))).to_have_count(
        0, timeout=20_000)
    to_top(page)
    painted(page)
    page.screenshot(path=str(ARTIFACTS / f"desk-{size}-dashboard.png"))
    if size == "phone":
        page.get_by_role("button", name="Full-screen chart").click()
        expect(page.get_by_role("button", name="Leave full screen")).to_be_attached(timeout=10_000)
        chart_reads(page, "BTC/USDT", "1m")
        painted(page)
        page.screenshot(path=str(ARTIFACTS / "desk-phone-chart-full.png"))
        page.get_by_role("button", name="Leave full screen").click()
        expect(page.get_by_role("button", name="Trade BTC/USDT")).to_be_attached(timeout=10_000)
        page.get_by_role("button", name="Trade BTC/USDT").click()
    desk = Desk(page, "tablet")  # the ticket, shown (a phone's sheet is open now)
    desk.pick("Stop limit")
    expect(desk.ticket.get_by_role("textbox", name=re.compile("Limit price"))).to_be_attached(timeout=10_000)
    painted(page)
    page.screenshot(path=str(ARTIFACTS / f"desk-{size}-ticket.png"))
    desk.pick("Market")
    if size == "phone":
        page.keyboard.press("Escape")
        expect(desk.ticket).not_to_be_attached(timeout=10_000)
    for section, identifier in (("Signals", "strategies"), ("Portfolio", "order-history")):
        go(page, section)
        expect(ident(page, identifier)).to_be_attached(timeout=20_000)
        name = "strategies" if section == "Signals" else "portfolio"
        if section == "Portfolio":
            positions_fit(page)
        bring_up(page, identifier)
        painted(page)
        page.screenshot(path=str(ARTIFACTS / f"desk-{size}-{name}.png"))
    go(page, "Markets")
    chart_reads(page, "BTC/USDT", "1m")


@pytest.mark.parametrize("size", list(SIZES))
def test_the_desk_at_each_size(browser: Any, web_app: str, size: str) -> None:
    width, height = SIZES[size]
    page = open_app(browser, web_app, width, height)
    switch_symbols_and_timeframes(page)
    assert free_balance(page) > 0 if size != "phone" else True  # a phone's balance is in the ticket sheet
    equity = account_shows(page)
    assert equity > 0
    # A distinct amount per size: the lines this page's orders draw are told apart from earlier pages'.
    place_every_order_type(page, size, {"phone": "0.002", "tablet": "0.004", "desktop": "0.006"}[size])
    if size != "phone":
        # The cash the resting orders hold is locked: free is below the total by at least the stop's value.
        account = ident(page, "account")
        usdt = re.compile(r"USDT\s+[\d,]+\.\d+\s+free ([\d,]+\.\d+) · in orders ([\d,]+\.\d+)")
        expect(account).to_have_attribute("aria-label", usdt, timeout=20_000)
        # The account and the ticket show the same free cash. Read again while an order still settles: a fill
        # or a cancel between the two reads moves it (both panels repaint from one state, in one message).
        deadline = time.monotonic() + 20
        while True:
            label = account.get_attribute("aria-label", timeout=20_000) or ""
            found = usdt.search(label)
            ticket_free = free_balance(page)
            if found and number(found.group(2)) > 0 and ticket_free == pytest.approx(number(found.group(1)), abs=0.01):
                break
            assert time.monotonic() < deadline, f"the account says {label!r}, the ticket {ticket_free}"
            time.sleep(0.25)
    if size == "desktop":
        far_price_asks_first(page)
        drag_back_through_history(page)
    screenshots(page, size)
    page.context.close()
