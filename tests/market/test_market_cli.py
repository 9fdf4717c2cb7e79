"""The command lines: the loopback exchange as a process, and the recorder against it."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from pathlib import Path

import httpx

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]



async def test_loopback_exchange_process_serves_and_the_recorder_records_from_it(tmp_path):
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.market.loopback_exchange", "--port", str(port),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = (await asyncio.wait_for(server.stdout.readline(), 20)).decode()
        assert f"127.0.0.1:{port}" in banner and "Replay · simulated" in banner
        async with httpx.AsyncClient() as client:
            info = (await client.get(f"http://127.0.0.1:{port}/api/v3/exchangeInfo")).json()
        assert {s["symbol"] for s in info["symbols"]} >= {"BTCUSDT", "ETHUSDT"}

        out = tmp_path / "rec.jsonl.gz"
        recorder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.market.record", "--exchange", "binance",
            "--symbols", "BTC/USDT,ETH/USDT", "--minutes", "0.02",
            "--urls-from-loopback", f"127.0.0.1:{port}", "--out", str(out),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(recorder.communicate(), 40)
        assert recorder.returncode == 0, output.decode()
        with gzip.open(out, "rt") as f:
            meta = json.loads(f.readline())
            trades = [json.loads(line) for line in f]
        assert meta["source"] == "ccxt" and meta["exchange"] == "binance"
        assert trades and {t["symbol"] for t in trades} <= {"BTC/USDT", "ETH/USDT"}
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
