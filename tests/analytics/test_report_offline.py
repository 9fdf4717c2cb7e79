"""The exported report opens in Chromium with every network request refused: plotly draws from the
bundle inside the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.analytics import analyse, export_html_report
from tests.analytics.orders import btc_round_trip

CHROMIUM = os.environ.get("SKEET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
def test_report_draws_its_charts_with_the_network_cut(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    report = export_html_report(analyse(btc_round_trip().values(), {"BTC/USDT": 130.0}, now_ms=10_000),
                                tmp_path / "report.html")
    refused: list[str] = []

    def no_network(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.route("**/*", no_network)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                                   timeout=20_000)
            plots = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            traces = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(p => p.data.length)")
        finally:
            browser.close()
    assert plots == 3
    assert traces == [3, 2, 1]  # P&L, realised, drawdown | realised, unrealised by symbol | fees
    assert errors == []
    assert refused == []  # it did not even try
