"""The backend's Firebase ID-token check (`SKEET_AUTH=firebase`) against the Auth emulator's real tokens:
`FirebaseVerifier` alone, then through the API's gate.

The emulator signs nothing (its tokens are `alg: none`, which firebase-admin accepts only in emulator
mode), so what these tests can prove is the claim checks: audience, issuer, expiry, subject, and the
revocation and disabled-account lookups that go to the Auth server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import firebase_admin
import pytest
from firebase_admin import auth
from google.auth.credentials import AnonymousCredentials

from backend_stub.auth import AuthError, FirebaseVerifier, _anonymous_credential
from backend_stub.settings import Settings
from tests.backend.conftest import serve
from tests.backend.listfeed import ListFeed

pytestmark = pytest.mark.emulator

# firebase-admin 7.7 checks no time claim in emulator mode (`verify_id_token` returns an emulator token's
# payload without looking at `exp` or `iat`); `FirebaseVerifier` checks both itself, as production does.


@pytest.fixture(scope="module")
def admin_app(emulators: Any) -> Iterator[Any]:
    emulators.need_auth()
    app = firebase_admin.initialize_app(
        _anonymous_credential(AnonymousCredentials()), {"projectId": emulators.project}, name="emulator-tests"
    )
    yield app
    firebase_admin.delete_app(app)


def forge(token: str, **claims: Any) -> str:
    """The emulator token with some claims replaced (it is unsigned, so this is all a forger needs)."""
    header, payload, _ = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}."


async def test_a_real_id_token_names_its_user(admin_app: Any, sign_up: Any) -> None:
    alice = sign_up("alice@example.com")
    assert await FirebaseVerifier(app=admin_app).verify(alice.id_token) == alice.uid


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-elses-project"}, "not a valid Firebase ID token"),
        ({"iss": "https://securetoken.google.com/someone-elses-project"}, "not a valid Firebase ID token"),
        ({"sub": ""}, "not a valid Firebase ID token"),
        ({"exp": int(time.time()) - 60, "iat": int(time.time()) - 3700}, "token expired"),
        ({"iat": int(time.time()) + 3600}, "not a valid Firebase ID token"),
    ],
    ids=["other-audience", "other-issuer", "no-subject", "expired", "issued-in-future"],
)
async def test_tokens_with_wrong_claims_are_refused(
    admin_app: Any, sign_up: Any, claims: dict[str, Any], reason: str
) -> None:
    alice = sign_up("alice@example.com")
    with pytest.raises(AuthError, match=reason):
        await FirebaseVerifier(app=admin_app).verify(forge(alice.id_token, **claims))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Bearer x"])
async def test_garbage_is_refused(admin_app: Any, token: str) -> None:
    with pytest.raises(AuthError):
        await FirebaseVerifier(app=admin_app).verify(token)


async def test_revoked_sessions_and_disabled_accounts_are_refused_when_checked(
    admin_app: Any, sign_up: Any
) -> None:
    alice, bob = sign_up("alice@example.com"), sign_up("bob@example.com")
    checking = FirebaseVerifier(app=admin_app, check_revoked=True)
    assert await checking.verify(alice.id_token) == alice.uid

    await asyncio.sleep(1.1)  # revocation is to the second: the token must be older than it
    await asyncio.to_thread(auth.revoke_refresh_tokens, alice.uid, app=admin_app)
    with pytest.raises(AuthError, match="token revoked"):
        await checking.verify(alice.id_token)
    assert await FirebaseVerifier(app=admin_app).verify(alice.id_token) == alice.uid  # unchecked: still valid

    await asyncio.to_thread(auth.update_user, bob.uid, disabled=True, app=admin_app)
    with pytest.raises(AuthError, match="disabled"):
        await checking.verify(bob.id_token)


async def test_the_api_gate_with_firebase_tokens(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    alice = sign_up("alice@example.com")
    settings = replace(Settings(data_dir=tmp_path), auth="firebase", state="firestore")
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:

        async def status(token: str) -> tuple[int, Any]:
            r = await backend.http.get("/v1/orders", headers={"Authorization": f"Bearer {token}"})
            return r.status_code, r.json()

        assert await status(alice.id_token) == (200, [])
        assert await status(forge(alice.id_token, aud="someone-elses-project")) == (
            401,
            {"error": "invalid token: not a valid Firebase ID token"},
        )
        # A dev token (the embedded default's identity) means nothing to a Firebase-configured backend.
        from services.auth import devtoken

        assert (await status(devtoken.mint(alice.uid, key=b"k")))[0] == 401


async def test_the_api_gate_refuses_an_expired_firebase_token(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    alice = sign_up("alice@example.com")
    settings = replace(Settings(data_dir=tmp_path), auth="firebase", state="firestore")
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as backend:
        expired = forge(alice.id_token, exp=int(time.time()) - 60, iat=int(time.time()) - 3700)
        r = await backend.http.get("/v1/orders", headers={"Authorization": f"Bearer {expired}"})
        assert (r.status_code, r.json()) == (401, {"error": "invalid token: token expired"})
