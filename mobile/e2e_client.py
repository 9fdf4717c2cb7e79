"""The phone's side of the end-to-end flow, run with a Python whose packages are the mobile profile's only.

Live prices through the backend's market gateway (`GatewayFeed`), a paper market order through the API
(`SkeetApi`), and its fill arriving through a Firestore listener (`FirestoreLive`, the emulator). Imports
nothing a phone build lacks: were it to need ccxt, fastapi or a newer protobuf, it would fail here. Prints one
JSON line (what it saw, and the versions it ran with); exit status 0 when every step held.

    SKEET_E2E_TOKEN=... python -m mobile.e2e_client --backend URL --uid UID --firestore HOST --project P
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

from services.api.client import SkeetApi
from services.live.firestore import FirestoreLive
from services.market import Tick
from services.market.gateway_feed import GatewayFeed

PROFILE_PACKAGES = ("grpcio", "protobuf", "websockets", "google-cloud-firestore", "cryptography", "httpx", "flet")


async def run(backend: str, uid: str, token: str, firestore_host: str, project: str, symbol: str) -> dict[str, Any]:
    async def provide() -> str:
        return token

    seen: dict[str, Any] = {}
    async with (
        GatewayFeed(backend, token=provide) as feed,
        SkeetApi(base_url=backend, token=provide) as api,
    ):
        live = FirestoreLive(uid, provide, project=project, emulator_host=firestore_host)
        changes = live.changes()
        try:
            async with asyncio.timeout(60):
                # an async generator (the protocol types it as an iterator): closing it ends the stream
                ticks = cast("AsyncGenerator[Tick, None]", feed.ticks([symbol]))
                trades = [await anext(ticks) for _ in range(3)]
                await ticks.aclose()
                seen["trades"] = [[t.timestamp_ms, t.price, t.amount] for t in trades]
                seen["badge"] = feed.mode
                seen["freshness"] = feed.status(symbol)
                order = await api.place_order(symbol=symbol, side="buy", type="market", amount="0.01")
                seen["order_id"] = order["id"]
                placed = time.perf_counter()
                async for change in changes:
                    doc = change.doc or {}
                    if change.collection == "orders" and change.doc_id == order["id"] and doc.get("status") == "closed":
                        seen["fill"] = {"filled": doc.get("filled"), "average": doc.get("average"),
                                        "listener_ms": round((time.perf_counter() - placed) * 1000)}
                        break
                seen["live_mode"] = live.mode
        finally:
            await live.aclose()
            with contextlib.suppress(Exception):
                await changes.aclose()  # type: ignore[attr-defined]
    seen["python"] = sys.version.split()[0]
    seen["versions"] = {name: importlib.metadata.version(name) for name in PROFILE_PACKAGES}
    seen["ccxt_importable"] = importlib.util.find_spec("ccxt") is not None
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobile.e2e_client")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--uid", required=True)
    parser.add_argument("--firestore", required=True, help="the Firestore emulator, host:port")
    parser.add_argument("--project", required=True)
    parser.add_argument("--symbol", default="BTC/USDT")
    args = parser.parse_args(argv)
    token = os.environ["SKEET_E2E_TOKEN"]  # not an argument: a command line is visible to every process
    seen = asyncio.run(run(args.backend, args.uid, token, args.firestore, args.project, args.symbol))
    print(json.dumps(seen))
    return 0 if "fill" in seen and len(seen.get("trades", ())) == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
