"""The end-to-end flow in the mobile dependency profile: a Python venv holding only what a phone build
installs (`.ci/mobile-profile.sh` builds it and points `SKEET_MOBILE_PYTHON` at it) gets live prices through
the backend's market gateway from the loopback Binance, places a paper order, and receives its fill through
a real Firestore listener on the emulator, signed in on the Auth emulator.

Without `SKEET_MOBILE_PYTHON` the test skips and says how to run it (building the venv takes a minute and
the package index). What it cannot prove: the Android/iOS runtime itself (see mobile/README.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend_stub.settings import Settings
from mobile.profile import flet_wheels
from services.market.loopback_exchange import LoopbackExchange
from services.market.replay import ReplayFeed
from services.market.sources import open_feed
from tests.backend.conftest import serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.emulator


async def test_a_phone_profile_client_sees_live_prices_orders_and_gets_its_fill_through_firestore(
    emulators: Any, firestore_host: str, sign_up: Any, tmp_path: Path
) -> None:
    python = os.environ.get("SKEET_MOBILE_PYTHON")
    if not python:
        pytest.skip("needs the mobile-profile venv: run `bash .ci/mobile-profile.sh` (sets SKEET_MOBILE_PYTHON)")
    alice = sign_up("phone@example.com")
    settings = replace(Settings(data_dir=tmp_path, rate_per_s=1000, rate_burst=1000),
                       auth="firebase", state="firestore")
    async with LoopbackExchange(ReplayFeed(), push_interval_s=0.02) as exchange:
        feed = open_feed(f"loopback:127.0.0.1:{exchange.port}")  # real ccxt, in the backend only
        try:
            async with serve(settings, feed) as backend:
                env = {**os.environ, "PYTHONPATH": str(ROOT), "SKEET_E2E_TOKEN": alice.id_token}
                proc = await asyncio.create_subprocess_exec(
                    python, "-m", "mobile.e2e_client", "--backend", backend.base_url, "--uid", alice.uid,
                    "--firestore", firestore_host, "--project", emulators.project,
                    cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            await feed.aclose()
    assert proc.returncode == 0, err.decode()[-3000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    print(f"\n[mobile profile] {json.dumps(seen)}", file=sys.stderr)
    assert seen["badge"].startswith("Live via gateway · Live · binance")
    assert seen["freshness"] == "live" and len(seen["trades"]) == 3
    assert seen["fill"]["filled"] == 0.01 and seen["fill"]["average"] > 0
    assert seen["ccxt_importable"] is False
    wheels = flet_wheels()
    for name in ("grpcio", "protobuf", "websockets", "cryptography"):
        assert seen["versions"][name] in wheels[name], (name, seen["versions"][name])
    assert seen["versions"]["google-cloud-firestore"] == "2.27.0"
