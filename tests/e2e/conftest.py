"""End-to-end harness: the real backend and the real web app as processes on free loopback ports,
driven by Debian's Chromium through Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser import renderer_watchdog, switch_on_semantics
from tests.support import free_port, start_backend, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
READY_MS = 30_000  # a new page's wait for its first price and a connected listener
OPEN_S = 120.0  # a new page not ready by then has stopped answering (ready in 5-40 s under CI's load)
WEB_APP_START_S = 180.0  # a deadline for the web app's first answer, met in seconds on a quiet machine
CHROMIUM = os.environ.get("SKEET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def skeet_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("skeet-data")
    return {**os.environ, "SKEET_DATA_DIR": str(data), "SKEET_DEV_KEY": "e2e-dev-key-not-a-secret-long-enough",
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def backend(skeet_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = start_backend(skeet_env, port, ARTIFACTS / "backend.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="session")
def web_app(backend: str, skeet_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    with (ARTIFACTS / "client.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "client", "--web", "--port", str(port), "--backend-url", backend],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=skeet_env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # The web client imports Flet, the market and the signal engine before it answers: at a load of 26
        # on 2 cores it printed nothing in 60 s (an error, not a failure of what the tests check).
        wait_http(url, process, timeout_s=WEB_APP_START_S)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread
    # while it is open, and every asyncio test collected after it would then fail to start.
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_app(browser, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    """A fresh page at `width`×`height`, with Flutter's semantics tree switched on, ready when the selected
    market has a price and the live listener is connected, as a trader sees it.

    Once a CI run's new page stopped answering while it started (Chromium's renderer, 2 cores under load):
    every wait on it, bounded or not, then waited for ever (pytest's timeout ended the run). So the opening
    runs under `renderer_watchdog`: a page not ready `OPEN_S` after it was opened has its renderer killed,
    and is opened once more in a fresh context. A page that answers but does not get ready fails at once."""
    for attempt in (1, 2):
        context = browser.new_context(viewport={"width": width, "height": height})
        with renderer_watchdog(OPEN_S) as stalled:
            try:
                page = context.new_page()
                page.goto(url)
                switch_on_semantics(page)
                ready(page)
                return page
            except (AssertionError, PlaywrightError) as exc:
                if attempt == 2 or not stalled.is_set():
                    raise
                print(f"open_app: the page at {width}x{height} stopped answering ({type(exc).__name__}); its "
                      "renderer was killed; once more, in a fresh context")
        with contextlib.suppress(PlaywrightError):
            context.close()
    raise AssertionError("unreachable")


def ready(page, timeout_ms: float = READY_MS) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    expect(page.locator('[flt-semantics-identifier="mode-badge"]')).to_contain_text("connected", timeout=timeout_ms)
    expect(page.locator('[flt-semantics-identifier="quote-BTC/USDT"]')).to_contain_text(
        re.compile(r"\d+\.\d+"), timeout=timeout_ms)
