"""A real backend on loopback per test: uvicorn in-process on a free port, SQLite in tmp_path,
`ListFeed` prices, dev tokens signed with a test key."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from backend_stub.app import create_app
from backend_stub.server import uvicorn_config
from backend_stub.settings import Settings
from services.auth import devtoken
from services.market.types import MarketFeed
from tests.backend.listfeed import ListFeed

TEST_KEY = b"test-dev-key-long-enough-for-hmac-sha256"


def token(uid: str, **kwargs: Any) -> str:
    return devtoken.mint(uid, key=TEST_KEY, **kwargs)


def auth(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(uid)}"}


@dataclass
class Running:
    """A served app: `base_url`, `ws_url`, its settings and feed, and an httpx client per user."""

    base_url: str
    settings: Settings
    feed: Any
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/v1/stream"

    async def order(self, uid: str, **body: Any) -> httpx.Response:
        body.setdefault("clientOrderId", f"c-{id(body)}-{asyncio.get_running_loop().time()}")
        return await self.http.post("/v1/orders", json=body, headers=auth(uid))

    async def alert(self, uid: str, **body: Any) -> httpx.Response:
        body.setdefault("clientAlertId", f"a-{id(body)}-{asyncio.get_running_loop().time()}")
        return await self.http.post("/v1/alerts", json=body, headers=auth(uid))

    async def get(self, uid: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=auth(uid), **kwargs)


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, feed: MarketFeed, *, sockets: list[socket.socket] | None = None, **parts: Any
) -> AsyncIterator[Running]:
    """The app on a free loopback port, or on `sockets` (a listening socket the test configured)."""
    app = create_app(settings, feed=feed, **parts)
    # The production configuration (backend_stub/server.py: header limits), on a free loopback port.
    config = uvicorn_config(
        app, settings, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=sockets))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            yield Running(base_url=base_url, settings=settings, feed=feed, http=http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return replace(
        Settings(
            data_dir=data_dir, dev_key=TEST_KEY, rate_per_s=1000, rate_burst=1000,
            read_rate_per_s=1000, read_burst=1000,
        ),
        **overrides,
    )


@pytest.fixture
async def feed() -> ListFeed:
    return ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})


@pytest.fixture
async def backend(tmp_path: Path, feed: ListFeed) -> AsyncIterator[Running]:
    async with serve(make_settings(tmp_path), feed) as running:
        await feed.until_consumers(1)  # the paper broker (the alert watcher follows only alerted symbols)
        yield running
