"""Every route but /healthz wants a valid bearer token; the stream closes with 4401; local dev tokens are
only served on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend_stub.settings import Settings, SettingsError
from services.auth import devtoken
from tests.backend.conftest import TEST_KEY, Running, token

ROUTES = [
    ("GET", "/v1/markets"),
    ("GET", "/v1/orders"),
    ("GET", "/v1/orders?status=open"),
    ("POST", "/v1/orders"),
    ("GET", "/v1/orders/some-id"),
    ("DELETE", "/v1/orders/some-id"),
    ("GET", "/v1/positions"),
    ("GET", "/v1/balance"),
    ("GET", "/v1/alerts"),
    ("POST", "/v1/alerts"),
    ("DELETE", "/v1/alerts/some-id"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/insights"),
    ("POST", "/v1/insights"),
    ("GET", "/no-such-route"),
]

BAD_HEADERS = {
    "missing": {},
    "empty": {"Authorization": ""},
    "not bearer": {"Authorization": f"Basic {token('alice')}"},
    "bearer without token": {"Authorization": "Bearer"},
    "garbage": {"Authorization": "Bearer not.a.token"},
    "wrong key": {"Authorization": f"Bearer {devtoken.mint('alice', key=b'other-key')}"},
    "expired": {"Authorization": f"Bearer {token('alice', ttl_s=10, now=time.time() - 60)}"},
    "tampered": {"Authorization": f"Bearer {token('alice')[:-2]}xx"},
}


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_401_on_every_route(backend: Running, method: str, path: str) -> None:
    for name, headers in BAD_HEADERS.items():
        # A malformed body must not get past the gate before the token is checked.
        r = await backend.http.request(
            method, path, headers={**headers, "Content-Type": "application/json"}, content="{not json"
        )
        assert r.status_code == 401, (name, r.text)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        body = r.json()
        assert set(body) == {"error"} and body["error"], name
        assert "token" in body["error"] or "Authorization" in body["error"], (name, body)


async def test_expired_token_says_so(backend: Running) -> None:
    r = await backend.http.get("/v1/orders", headers=BAD_HEADERS["expired"])
    assert r.json() == {"error": "invalid token: token expired"}


async def test_healthz_needs_no_token(backend: Running) -> None:
    r = await backend.http.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_valid_token_passes(backend: Running) -> None:
    r = await backend.get("alice", "/v1/markets")
    assert r.status_code == 200 and "BTC/USDT" in r.json()


@pytest.mark.parametrize("name", ["missing", "garbage", "wrong key", "expired"])
async def test_stream_closes_with_4401(backend: Running, name: str) -> None:
    headers = BAD_HEADERS[name]
    async with connect(backend.ws_url, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4401
    assert ws.close_reason


async def test_stream_rejects_a_bad_query_token(backend: Running) -> None:
    async with connect(f"{backend.ws_url}?token=nope") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4401 and "malformed" in (ws.close_reason or "")


def test_local_auth_refuses_a_public_bind() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        Settings(host=host).check_bind()
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(SettingsError, match="loopback"):
            Settings(host=host).check_bind()
        Settings(host=host, auth="firebase").check_bind()


def test_server_refuses_to_start_on_a_public_interface(tmp_path: Path) -> None:
    env = {**os.environ, "HOST": "0.0.0.0", "PORT": "0", "SKEET_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "backend_stub"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "SKEET_AUTH=local" in done.stderr and "loopback" in done.stderr


def test_token_command_prints_a_token_the_server_accepts(tmp_path: Path) -> None:
    env = {**os.environ, "SKEET_DATA_DIR": str(tmp_path)}
    env.pop("SKEET_DEV_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "backend_stub", "token", "carol"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    key = (tmp_path / "dev-key").read_bytes().strip()
    assert devtoken.verify(printed, key=key) == "carol"
    with_key = subprocess.run(
        [sys.executable, "-m", "backend_stub", "token", "dave"],
        env={**env, "SKEET_DEV_KEY": TEST_KEY.decode()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert devtoken.verify(with_key.stdout.strip(), key=TEST_KEY) == "dave"
    bad = subprocess.run(
        [sys.executable, "-m", "backend_stub", "token", "a/b"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "error" in bad.stderr
    assert json.dumps(printed)  # one line, printable
