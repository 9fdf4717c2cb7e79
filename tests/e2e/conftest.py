"""End-to-end harness: the real backend and the real web app as processes on free loopback ports,
driven by Debian's Chromium through Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import switch_on_semantics
from tests.support import free_port, start_backend, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
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
    """A fresh page at `width`×`height`, with Flutter's semantics tree switched on."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(url)
    switch_on_semantics(page)
    page.locator('[flt-semantics-identifier="mode-badge"]').wait_for(state="attached", timeout=30_000)
    # Ready when the selected market has a price and the live listener is connected, as a trader sees it.
    page.wait_for_function(
        r"""() => {
            const q = document.querySelector('[flt-semantics-identifier="quote-BTC/USDT"]');
            const b = document.querySelector('[flt-semantics-identifier="mode-badge"]');
            return q && /\d+\.\d+/.test(q.textContent) && b && /connected/.test(b.textContent);
        }""",
        timeout=30_000,
    )
    return page
