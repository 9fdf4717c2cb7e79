"""Abuse at the HTTP edge, over real sockets on loopback: oversized and slow request heads, oversized,
chunked and stalled bodies, malformed signed tokens, characters that rewrite text, weak keys, Firebase
without credentials, and the state files' permissions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend_stub.app import create_app
from backend_stub.settings import Settings, SettingsError
from services.auth import devtoken
from tests.backend.conftest import TEST_KEY, Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Running]:
    """A backend with short timeouts so the slow-client tests finish quickly."""
    settings = make_settings(
        tmp_path, header_timeout_s=0.5, read_timeout_s=0.5, max_body_bytes=8 * 1024, max_header_bytes=8 * 1024
    )
    async with serve(settings, ListFeed({"BTC/USDT": 50_000.0})) as running:
        yield running


async def open_raw(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(running.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of one response; the connection is read to its end (closed)."""
    raw = await asyncio.wait_for(reader.read(), 10)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


async def send_until_answered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: Any, limit: int
) -> tuple[int, tuple[int, dict[str, str], dict[str, Any]]]:
    """Write `chunks` (up to `limit` bytes) while reading the answer, as a client does; stops writing
    once the answer is in. Returns the bytes written and the answer."""
    answer = asyncio.create_task(read_response(reader))
    sent = 0
    try:
        for chunk in chunks:
            if answer.done() or sent >= limit:
                break
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    except (ConnectionResetError, BrokenPipeError):
        pass
    return sent, await answer


async def test_a_huge_header_gets_431_and_is_not_read(guarded: Running) -> None:
    reader, writer = await open_raw(guarded)
    writer.write(b"GET /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
    probe = 64 * 1024 * 1024  # the 64 MB probe; the server must answer long before it is all sent
    chunk = b"a" * 65536
    sent, (status, headers, body) = await send_until_answered(reader, writer, iter(lambda: chunk, None), probe)
    assert sent < probe
    assert status == 431
    assert headers["connection"] == "close"
    assert body == {"error": "The request headers are too large"}
    writer.close()
    # the server goes on serving
    assert (await guarded.http.get("/healthz")).status_code == 200


async def test_headers_under_the_limit_with_a_body_in_the_same_packet_are_served(guarded: Running) -> None:
    reader, writer = await open_raw(guarded)
    body = json.dumps(
        {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "40000",
         "clientOrderId": "one-packet", "pad": "x" * 2000}
    ).encode()
    head = (
        f"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('alice')['Authorization']}\r\n"
        f"X-Pad: {'p' * 7000}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    assert len(head) < 8 * 1024 < len(head) + len(body)  # one write: the body follows the head at once
    writer.write(head + body)
    await writer.drain()
    status, _, _ = await read_response(reader)
    assert status in (201, 422)  # served by the route (422 if the order schema refuses `pad`), not 431
    writer.close()


async def test_slow_headers_get_408_and_idle_connections_are_closed(guarded: Running) -> None:
    async def slow_client() -> int:
        reader, writer = await open_raw(guarded)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(100):  # a header line every 50 ms, never the blank line that ends the head
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                if reader.at_eof() or len(reader._buffer):  # noqa: SLF001 (an answer arrived)
                    break
                await asyncio.sleep(0.05)
        except (ConnectionResetError, BrokenPipeError):
            pass
        status, _, body = await read_response(reader)
        assert body == {"error": "The request headers took too long to arrive"}
        writer.close()
        return status

    async def idle_client() -> bytes:
        reader, writer = await open_raw(guarded)
        data = await asyncio.wait_for(reader.read(), 10)  # returns when the server closes
        writer.close()
        return data

    statuses = await asyncio.gather(*(slow_client() for _ in range(30)))
    assert statuses == [408] * 30
    assert await asyncio.gather(*(idle_client() for _ in range(10))) == [b""] * 10
    assert (await guarded.http.get("/healthz")).status_code == 200


async def test_a_declared_huge_body_gets_413_before_it_is_sent(guarded: Running) -> None:
    reader, writer = await open_raw(guarded)
    writer.write(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 314572800\r\n" + f"Authorization: {auth('alice')['Authorization']}\r\n\r\n".encode()
    )
    await writer.drain()
    status, headers, body = await read_response(reader)  # answered with nothing of the body sent
    assert status == 413 and headers["connection"] == "close"
    assert body == {"error": "The request body is larger than 8 KB"}
    writer.close()


async def test_a_chunked_body_is_cut_off_with_413(guarded: Running) -> None:
    reader, writer = await open_raw(guarded)
    writer.write(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n" + f"Authorization: {auth('alice')['Authorization']}\r\n\r\n".encode()
    )
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    sent, (status, headers, body) = await send_until_answered(
        reader, writer, iter(lambda: chunk, None), 64 * 1024 * 1024
    )
    assert sent < 64 * 1024 * 1024
    assert status == 413 and headers["connection"] == "close"
    assert body == {"error": "The request body is larger than 8 KB"}
    writer.close()


async def test_a_stalled_body_gets_408(guarded: Running) -> None:
    reader, writer = await open_raw(guarded)
    writer.write(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        + f"Authorization: {auth('alice')['Authorization']}\r\n\r\n".encode()
        + b'{"symbol": '
    )
    await writer.drain()
    status, _, body = await read_response(reader)
    assert status == 408
    assert body == {"error": "The request body took too long to arrive"}
    writer.close()


def _signed(claims: Any, header: Any = None) -> str:
    def b64(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing_input = f"{b64(header or {'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    sig = hmac.new(TEST_KEY, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


async def test_no_signed_token_gets_a_500(backend: Running) -> None:
    tokens = [
        _signed({"sub": "alice", "exp": "tomorrow"}),
        _signed({"sub": "alice", "exp": [1]}),
        _signed({"sub": "alice", "exp": None}),
        _signed({"sub": "alice", "exp": True}),
        _signed({"sub": "alice"}),
        _signed({"sub": ["alice"], "exp": 4_000_000_000}),
        _signed(["alice"]),
        _signed({"sub": "alice", "exp": 4_000_000_000}, header=["HS256"]),
        "a.b.c",
        "\u202e.x.y",
        "." * 5000,
    ]
    for token in tokens:
        r = await backend.http.get("/v1/orders", headers={"Authorization": f"Bearer {token}".encode()})
        assert r.status_code == 401, (token[:40], r.text)
        assert r.json()["error"].startswith("invalid token")
    # and the NaN a JSON parser accepts
    nan = _signed({"sub": "alice", "exp": 1}).split(".")
    nan[1] = base64.urlsafe_b64encode(b'{"sub": "alice", "exp": NaN}').rstrip(b"=").decode()
    sig = hmac.new(TEST_KEY, f"{nan[0]}.{nan[1]}".encode(), hashlib.sha256).digest()
    nan[2] = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    r = await backend.http.get("/v1/orders", headers={"Authorization": f"Bearer {'.'.join(nan)}"})
    assert r.status_code == 401


async def test_errors_never_carry_control_or_bidi_characters(backend: Running) -> None:
    for raw in ("%E2%80%AEevil", "%1B%5B31mred", "a%0Ab", "%E2%81%A6x%E2%81%A9", "%E2%80%8Bzero"):
        r = await backend.get("alice", f"/v1/orders/{raw}")
        assert r.status_code == 404
        message = r.json()["error"]
        assert message.isprintable(), message
    r = await backend.get("alice", "/v1/alerts/%E2%80%AEabc")
    assert r.status_code in (404, 405)
    assert r.json()["error"].isprintable()


def test_a_weak_dev_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        Settings.from_env({"SKEET_DEV_KEY": "abcd", "SKEET_DATA_DIR": str(tmp_path)})
    env = {**os.environ, "SKEET_DEV_KEY": "abcd", "SKEET_DATA_DIR": str(tmp_path), "PORT": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "backend_stub"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "SKEET_DEV_KEY must be at least 32 bytes" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "backend_stub", "token", "alice"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2 and "at least 32 bytes" in run.stderr
    assert Settings.from_env({"SKEET_DEV_KEY": "k" * 32}).dev_key == b"k" * 32


def test_firebase_or_firestore_without_credentials_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "FIREBASE_AUTH_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT",
                 "GCLOUD_PROJECT", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default credentials file
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on Google's cloud: don't wait for its metadata server
    with pytest.raises(SettingsError, match="SKEET_AUTH=firebase needs Google credentials"):
        create_app(Settings(data_dir=tmp_path, auth="firebase"))
    with pytest.raises(SettingsError, match="SKEET_STATE=firestore needs Google credentials"):
        create_app(Settings(data_dir=tmp_path, state="firestore", dev_key=TEST_KEY))
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    with pytest.raises(SettingsError, match="GOOGLE_CLOUD_PROJECT"):
        create_app(Settings(data_dir=tmp_path, auth="firebase"))


async def test_state_files_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old_db = data / "state.db"
    old_db.touch()
    old_db.chmod(0o644)  # left by an older version
    async with serve(make_settings(data), ListFeed({"BTC/USDT": 50_000.0})) as running:
        r = await running.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.01", price="1000")
        assert r.status_code == 201
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        assert {"state.db", "state.db-wal", "state.db-shm"} <= set(files)
        assert set(files.values()) == {0o600}, files
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("SKEET_DATA_DIR", str(fresh))
    monkeypatch.delenv("SKEET_DEV_KEY", raising=False)
    assert len(devtoken.dev_key()) >= 32
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((fresh / "dev-key").stat().st_mode) == 0o600
