"""Signing in with Firebase Auth (its real emulator): the app's identity service, and the whole app in
Chromium with the backend verifying the ID tokens through firebase-admin."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from services.auth.firebase import FirebaseIdentity, SignInError
from tests.browser import switch_on_semantics, type_into
from tests.support import ROOT, free_port, start_backend, stop, wait_http


async def test_sign_in_refresh_and_resume(auth_host: str, sign_up) -> None:  # type: ignore[no-untyped-def]
    account = sign_up("ada@example.com", "correct-horse-1")
    remembered: list[str | None] = []

    async def remember(token: str | None) -> None:
        remembered.append(token)

    identity = FirebaseIdentity(api_key="fake-api-key", emulator_host=auth_host, remember=remember)
    try:
        with pytest.raises(SignInError, match="Wrong email or password"):
            await identity.sign_in("ada@example.com", "wrong")
        assert await identity.sign_in("ada@example.com", "correct-horse-1") == account.uid
        assert identity.label == "ada@example.com (Auth emulator)"
        first_refresh = remembered[-1]
        identity._expires_at = 0  # as if an hour had passed: the next call refreshes over securetoken
        assert await identity.token() and identity.uid == account.uid
        assert remembered and remembered[-1]
    finally:
        await identity.aclose()

    again = FirebaseIdentity(api_key="fake-api-key", emulator_host=auth_host)
    try:
        assert await again.resume(str(first_refresh)) == account.uid  # a new session, no password
        assert await again.token()
    finally:
        await again.aclose()
    with pytest.raises(SignInError, match="session expired|Sign-in failed"):
        bad = FirebaseIdentity(api_key="fake-api-key", emulator_host=auth_host)
        try:
            await bad.resume("not-a-refresh-token")
        finally:
            await bad.aclose()


@pytest.mark.browser
@pytest.mark.parametrize("state", ["sqlite", "firestore"])
def test_sign_in_then_trade_in_the_browser(emulators, auth_host: str, sign_up, tmp_path, state: str,  # type: ignore[no-untyped-def]
                                           request) -> None:
    """Sign in, trade, and see the order filled through the live listener: the backend's stream, or
    Firestore listeners on the emulator with the backend writing through firebase-admin."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS

    sign_up("trader@example.com", "correct-horse-1")
    env = {
        "SKEET_DATA_DIR": str(tmp_path),
        "SKEET_AUTH": "firebase",
        "FIREBASE_AUTH_EMULATOR_HOST": auth_host,
        "GOOGLE_CLOUD_PROJECT": emulators.project,
        "SKEET_FIREBASE_API_KEY": "fake-api-key",
        "SKEET_DEV_KEY": "unused-in-firebase-mode",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "SKEET_STATE": state,
    }
    if state == "firestore":
        env["FIRESTORE_EMULATOR_HOST"] = request.getfixturevalue("firestore_host")
    port = free_port()
    backend = start_backend(env, port, tmp_path / "backend.log")
    web_port = free_port()
    with (tmp_path / "client.log").open("wb") as out:
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "client",
                "--web",
                "--port",
                str(web_port),
                "--backend-url",
                f"http://127.0.0.1:{port}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        wait_http(f"http://127.0.0.1:{web_port}", client)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            page.goto(f"http://127.0.0.1:{web_port}")
            switch_on_semantics(page)
            sign_in = page.locator('[flt-semantics-identifier="sign-in"]')
            sign_in.wait_for(state="attached", timeout=30_000)
            email = page.get_by_role("textbox", name="Email")
            type_into(email, "trader@example.com")
            password = page.get_by_role("textbox", name="Password")
            type_into(password, "wrong-password")
            page.get_by_role("button", name="Sign in").click()
            expect(sign_in).to_have_attribute(
                "aria-label", re.compile("Wrong email or password"), timeout=20_000
            )
            type_into(password, "correct-horse-1")
            page.get_by_role("button", name="Sign in").click()
            badge = page.locator('[flt-semantics-identifier="mode-badge"]')
            expect(badge).to_contain_text("trader@example.com (Auth emulator)", timeout=30_000)
            expect(badge).to_contain_text(re.compile("connected"), timeout=30_000)
            if state == "firestore":
                expect(badge).to_contain_text("Firestore (emulator)")
            page.screenshot(path=str(ARTIFACTS / f"phone-signed-in-{state}.png"))
            page.get_by_role("button", name="Trade BTC/USDT").click()
            amount = page.locator('[flt-semantics-identifier="order-ticket"]').get_by_role(
                "textbox", name=re.compile("Amount")
            )
            type_into(amount, "0.01")
            page.get_by_role("button", name="Buy BTC/USDT").click()
            expect(
                page.get_by_text(re.compile(r"Buy 0\.01 BTC/USDT market order sent")).first
            ).to_be_attached(timeout=20_000)
            # The fill reaches the orders list through the listener (stream or Firestore), not the HTTP reply.
            orders = page.locator('[flt-semantics-identifier="orders"]')
            expect(orders.get_by_text(re.compile(r"buy 0\.01 BTC.USDT market order, Filled")).first).to_be_attached(
                timeout=20_000)
            browser.close()
    finally:
        stop(client)
        stop(backend)
