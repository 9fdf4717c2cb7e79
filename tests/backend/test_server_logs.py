"""`python -m backend_stub` logs each request without tokens, headers or query strings."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.backend.conftest import token
from tests.backend.test_durability import free_port, server_process


async def test_request_log_has_no_secrets(tmp_path: Path) -> None:
    port = free_port()
    secret = token("alice")
    async with server_process(tmp_path, port) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            r = await http.get("/v1/orders?status=open", headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 200
            await http.get("/v1/balance", headers={"Authorization": f"Bearer {secret}x"})  # 401
            await http.post(
                "/v1/orders",
                headers={"Authorization": f"Bearer {secret}"},
                json={"symbol": "BTC/USDT", "amount": secret},
            )
        async with connect(f"ws://127.0.0.1:{port}/v1/stream?since=0&token={secret}") as ws:
            assert "synced" in await ws.recv()
        async with connect(f"ws://127.0.0.1:{port}/v1/stream?token=bad{secret}") as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
        await asyncio.sleep(0.2)
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    log = (tmp_path / f"server-{port}.log").read_text()
    assert "GET /v1/orders 200" in log
    assert "GET /v1/balance 401" in log
    assert "WS /v1/stream" in log
    sig = secret.split(".")[2]
    assert secret not in log and sig not in log
    assert "token=" not in log and "Bearer" not in log
