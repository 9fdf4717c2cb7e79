"""Settings from the environment, and the token verifiers behind the auth gate."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import firebase_admin
import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend_stub.app import create_app
from backend_stub.auth import AuthUnavailable, FirebaseVerifier, _anonymous_credential
from backend_stub.settings import Settings, SettingsError
from tests.backend.conftest import make_settings, serve, token
from tests.backend.listfeed import ListFeed


def test_from_env_defaults_and_overrides(tmp_path: Path) -> None:
    s = Settings.from_env({"SKEET_DATA_DIR": str(tmp_path)})
    assert (s.host, s.port, s.auth, s.state, s.feed, s.broker) == (
        "127.0.0.1",
        8080,
        "local",
        "sqlite",
        "synthetic",
        "paper",
    )
    assert s.data_dir == tmp_path and s.replay_speed == 1.0 and s.starting_balance == Decimal(100000)
    assert (s.change_log_keep, s.change_log_days) == (10_000, 7)
    s = Settings.from_env(
        {
            "HOST": "::1",
            "PORT": "9000",
            "SKEET_AUTH": "firebase",
            "SKEET_STATE": "firestore",
            "SKEET_REPLAY_SPEED": "10",
            "SKEET_RATE_PER_S": "5",
            "SKEET_RATE_BURST": "7",
            "SKEET_PAPER_TAKER_FEE": "0.002",
            "SKEET_CHANGE_LOG_KEEP": "500",
            "SKEET_CHANGE_LOG_DAYS": "2",
            "SKEET_FEED": "ccxt:kraken",
            "SKEET_LIVE_SYNC_S": "0",
        }
    )
    assert s.feed == "ccxt:kraken" and s.live_sync_s == 0
    assert (s.change_log_keep, s.change_log_days) == (500, 2)
    assert (s.host, s.port, s.auth, s.state, s.replay_speed, s.rate_per_s, s.rate_burst, s.taker_fee) == (
        "::1",
        9000,
        "firebase",
        "firestore",
        10.0,
        5.0,
        7,
        Decimal("0.002"),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be an integer"),
        ({"SKEET_AUTH": "none"}, "SKEET_AUTH must be one of local, firebase"),
        ({"SKEET_STATE": "redis"}, "SKEET_STATE must be one of sqlite, firestore"),
        ({"SKEET_REPLAY_SPEED": "fast"}, "SKEET_REPLAY_SPEED must be a number"),
        ({"SKEET_REPLAY_SPEED": "-1"}, "SKEET_REPLAY_SPEED must be a finite number >= 0"),
        ({"SKEET_PAPER_SLIPPAGE": "NaN"}, "SKEET_PAPER_SLIPPAGE must be a finite number"),
        ({"SKEET_CHANGE_LOG_KEEP": "0"}, "SKEET_CHANGE_LOG_KEEP must be at least 1"),
        ({"SKEET_FEED": "kraken"}, "SKEET_FEED must be synthetic, synthetic:SEED, replay, replay:PATH, ccxt:EXCHANGE or loopback"),
        ({"SKEET_FEED": "ccxt:"}, "SKEET_FEED must be synthetic"),
        ({"SKEET_FEED": "synthetic:lucky"}, "SKEET_FEED synthetic:SEED needs a whole-number seed"),
        ({"SKEET_CHANGE_LOG_DAYS": "a week"}, "SKEET_CHANGE_LOG_DAYS must be an integer"),
    ],
)
def test_bad_env_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_dev_key_is_not_in_repr() -> None:
    assert "secret" not in repr(Settings(dev_key=b"secret"))


def test_auth_emulator_only_on_loopback() -> None:
    Settings(host="127.0.0.1", auth="firebase", auth_emulator="127.0.0.1:9099").check_bind()
    with pytest.raises(SettingsError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        Settings(host="0.0.0.0", auth="firebase", auth_emulator="127.0.0.1:9099").check_bind()


@pytest.fixture
def firebase_app():
    app = firebase_admin.initialize_app(
        _anonymous_credential(AnonymousCredentials()), {"projectId": "demo-skeet"}, name="backend-tests"
    )
    yield app
    firebase_admin.delete_app(app)


async def test_firebase_mode_refuses_non_firebase_tokens(tmp_path: Path, firebase_app) -> None:
    settings = make_settings(tmp_path, auth="firebase")
    app = create_app(settings, feed=ListFeed({"BTC/USDT": 1.0}), verifier=FirebaseVerifier(app=firebase_app))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for bad in ("garbage", token("alice")):  # a dev token means nothing in firebase mode
            r = await client.get("/v1/orders", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401
            assert r.json() == {"error": "invalid token: not a valid Firebase ID token"}


class UnreachableVerifier:
    """A verifier whose key source is down (what FirebaseVerifier does when certificates can't be fetched)."""

    async def verify(self, token: str) -> str:
        raise AuthUnavailable("cannot verify the token right now; try again shortly")


async def test_verifier_outage_is_503_not_401(tmp_path: Path) -> None:
    feed = ListFeed({"BTC/USDT": 50_000.0})
    async with serve(make_settings(tmp_path), feed, verifier=UnreachableVerifier()) as backend:
        r = await backend.http.get("/v1/orders", headers={"Authorization": "Bearer x"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        async with connect(backend.ws_url, additional_headers={"Authorization": "Bearer x"}) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1013


async def test_a_remembered_dev_token_is_still_refused_once_expired() -> None:
    """The local verifier remembers tokens it checked (each request would check the same one again); a
    remembered token stops working at its expiry all the same, and a forged one is never remembered."""
    from backend_stub.auth import AuthError, LocalVerifier
    from services.auth import devtoken

    key = b"verifier-cache-test-key-of-32-bytes+"
    now = [1_800_000_000.0]
    verifier = LocalVerifier(key=key, clock=lambda: now[0], cache_size=2)
    alice = devtoken.mint("alice", key=key, ttl_s=60, now=now[0])
    assert await verifier.verify(alice) == "alice"
    assert await verifier.verify(alice) == "alice"  # remembered
    now[0] += 61
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(alice)
    forged = devtoken.mint("mallory", key=b"another-key-of-at-least-32-bytes++", now=now[0])
    for _ in range(2):
        with pytest.raises(AuthError, match="signature"):
            await verifier.verify(forged)
    # Bounded: a third user pushes out the oldest, who is checked again (and still passes).
    users = [devtoken.mint(u, key=key, now=now[0]) for u in ("bob", "carol", "dave")]
    assert [await verifier.verify(t) for t in users + users[:1]] == ["bob", "carol", "dave", "bob"]
