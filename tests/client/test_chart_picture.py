"""The chart's base layer as a picture (`ChartView` captures it once it stands still): in real Chromium, the
captured chart looks the same as the chart drawn from its shapes, before and after the candles change (the
new candles, never the old picture under them).

The app here is a page with the chart alone, served by Flet in a child process (this file, run as a script):
`/shapes` never captures, `/picture` does; `/…?symbol=ETH/USDT` starts on another symbol, and the
"Next symbol" button switches to ETH/USDT. A text says whether the browser now draws the picture alone."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.browser import painted
from tests.support import ROOT, free_port, stop, wait_http

CHROMIUM = os.environ.get("SKEET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOT = '[flt-semantics-identifier="chart"]'


def serve(port: int) -> None:
    import asyncio

    import flet as ft

    from tests.client.test_chart import make_state
    from views.chart import ChartView
    from views.common import Intents

    async def main(page: ft.Page) -> None:
        route = page.route or "/"
        variant = route.split("?")[0].strip("/")
        state = make_state()
        if "symbol=ETH" in route:
            state.select("ETH/USDT")
        tasks: set[asyncio.Task[Any]] = set()  # the session's task owner, as far as the chart needs one

        def spawn(coro: Any) -> asyncio.Task[Any]:
            task = asyncio.get_running_loop().create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return task

        chart = ChartView(Intents(spawn=spawn))
        if variant == "shapes":
            # The reference: drawn from its shapes, never captured.
            chart._capture_later = lambda: None  # type: ignore[method-assign]
        status = ft.Text("")

        def next_symbol(_e: Any) -> None:
            state.select("ETH/USDT")
            chart.render(state)
            chart.control.update()

        page.add(ft.Semantics(identifier="status", content=status),
                 ft.Button("Next symbol", on_click=next_symbol),
                 ft.Container(chart.control, width=800, height=500))
        chart.render(state)
        page.update()
        while True:  # what the browser is drawing the base layer from, for the test to wait on
            shown = f"{state.selected} {'picture' if chart._captured and not chart.base.shapes else 'shapes'}"
            if status.value != shown:
                status.value = shown
                status.update()
            await asyncio.sleep(0.1)

    ft.run(main, view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port, no_cdn=True)


@pytest.fixture(scope="module")
def app_url() -> Any:
    port = free_port()
    env = {**os.environ, "FLET_FORCE_WEB_SERVER": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, __file__, str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def open_chart(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.goto(url)
    page.wait_for_selector("flt-semantics-placeholder", state="attached", timeout=90_000)
    page.evaluate("document.querySelector('flt-semantics-placeholder').click()")
    page.locator(PLOT).wait_for(state="attached", timeout=90_000)
    return page


def wait_status(page: Any, text: str, timeout_s: float = 60.0) -> None:
    """Until the page's status text starts with `text`."""
    status = page.locator('[flt-semantics-identifier="status"]')
    deadline = time.monotonic() + timeout_s
    while not (shown := status.text_content() or "").startswith(text):
        assert time.monotonic() < deadline, f"the chart page says {shown!r}, not {text!r}"
        time.sleep(0.1)


def plot_pixels(page: Any, timeout_s: float = 60.0) -> np.ndarray:
    """The plot's pixels as the screen shows them once they stand still (the page draws nothing moving), and
    show candles: the semantics tree runs ahead of the canvas, which on a fresh page still shows Flet's
    "Working..." loader for a while."""
    painted(page)
    box = page.locator(PLOT).bounding_box()
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB"), dtype=np.int16)
        drawn = float((np.abs(shot - shot[0, 0]).max(axis=2) > 40).mean()) > 0.02  # candles, not a blank plot
        if drawn and last is not None and np.array_equal(shot, last):
            return shot
        assert time.monotonic() < deadline, "the chart's plot never stood still with candles on it"
        last = shot
        time.sleep(0.3)


def differs(a: np.ndarray, b: np.ndarray) -> float:
    """The share of pixels that differ visibly (by more than 8 levels in any channel)."""
    assert a.shape == b.shape
    return float((np.abs(a - b).max(axis=2) > 8).mean())


def test_the_captured_chart_looks_the_same_as_the_drawn_one_before_and_after_a_symbol_switch(
        app_url: str, browser: Any) -> None:
    references = {}
    for symbol in ("BTC/USDT", "ETH/USDT"):
        page = open_chart(browser, f"{app_url}/shapes?symbol={symbol}")
        wait_status(page, f"{symbol} shapes")
        references[symbol] = plot_pixels(page)
        page.close()
    assert differs(references["BTC/USDT"], references["ETH/USDT"]) > 0.01  # the comparison can tell them apart

    page = open_chart(browser, f"{app_url}/picture")
    wait_status(page, "BTC/USDT picture")  # the browser draws the picture alone
    assert differs(plot_pixels(page), references["BTC/USDT"]) < 0.002
    page.get_by_role("button", name="Next symbol").click()
    wait_status(page, "ETH/USDT")  # drawn from shapes on the other canvas, or captured again already
    assert differs(plot_pixels(page), references["ETH/USDT"]) < 0.002  # no BTC picture left under ETH's candles
    wait_status(page, "ETH/USDT picture")  # and captured again once it stands still
    assert differs(plot_pixels(page), references["ETH/USDT"]) < 0.002
    page.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    serve(int(sys.argv[1]))
