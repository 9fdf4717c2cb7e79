"""A real backend on loopback with the market gateway, fed by trades the test pushes (`ListFeed`)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.backend.conftest import Running, make_settings, serve, token
from tests.backend.listfeed import ListFeed


def stream_url(running: Running, symbols: str, **params: str) -> str:
    query = "&".join(f"{k}={quote(v)}" for k, v in {"symbols": symbols, **params}.items())
    return running.base_url.replace("http://", "ws://") + "/v1/market/stream?" + query


async def open_stream(
    running: Running, uid: str, symbols: str, *, slow_reader: bool = False, **params: str
) -> ClientConnection:
    """A stream for `uid`. `slow_reader`: a client that stops reading at once, with a tiny receive buffer
    (so the server's writes back up after a few kilobytes rather than the kernel's megabytes)."""
    url = stream_url(running, symbols, **params)
    headers = {"Authorization": f"Bearer {token(uid)}"}
    if not slow_reader:
        return await connect(url, additional_headers=headers, open_timeout=10)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = running.base_url.removeprefix("http://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await connect(url, sock=sock, additional_headers=headers, open_timeout=10, max_queue=1)


async def frame(ws: ClientConnection, *, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def frames_until(ws: ClientConnection, done: Any, *, timeout: float = 10.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Frames until `done(frame)` holds (that frame included), within `timeout` seconds."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            out.append(json.loads(await ws.recv()))
            if done(out[-1]):
                return out


@pytest.fixture
async def feed() -> ListFeed:
    return ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})


@pytest.fixture
async def gateway_backend(
    tmp_path: Path, feed: ListFeed, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Running]:
    monkeypatch.setenv("SKEET_GATEWAY_MAX_STREAMS", "2")
    monkeypatch.setenv("SKEET_GATEWAY_REPLAY_FRAMES", "50")
    if "flush_s" in request.fixturenames:  # a test that needs a longer gathering of frames says so
        monkeypatch.setenv("SKEET_GATEWAY_FLUSH_S", request.getfixturevalue("flush_s"))
    async with serve(make_settings(tmp_path), feed) as running:
        await feed.until_consumers(1)  # the paper broker
        yield running
