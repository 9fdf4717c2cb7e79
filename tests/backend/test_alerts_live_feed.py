"""With `SKEET_FEED=loopback:…` (or `ccxt:EXCHANGE`) price alerts follow the exchange through ccxt, not
the replay: a real ccxt feed against the loopback Binance, fired by a price the exchange is about to print."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

from websockets.asyncio.client import connect

from services.market import ReplayFeed
from services.market.loopback_exchange import LoopbackExchange
from tests.backend.conftest import auth, make_settings, serve
from tests.backend.test_stream import until_synced


async def test_an_alert_fires_on_the_exchanges_prices(tmp_path: Path) -> None:
    def exchange_clock() -> float:  # the exchange runs half an hour ahead of the shipped replay
        return time.time() + 1_800

    async with LoopbackExchange(clock=exchange_clock) as exchange:
        settings = replace(make_settings(tmp_path), feed=f"loopback:127.0.0.1:{exchange.port}")
        async with serve(settings, None) as backend:  # the app opens the feed itself, as in production
            ws = await connect(backend.ws_url, additional_headers=auth("alice"))
            await until_synced(ws)
            # The exchange replays a known recording in step with the clock (read just before the alert is made,
            # so a slow start on a loaded machine does not eat the window): pick a level it will trade
            # at within the next few seconds, above the price now (or below it, where the market only
            # falls over those seconds).
            script = ReplayFeed(clock=exchange_clock)
            now_ms = int(exchange_clock() * 1000)
            choices = []
            for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT"):
                coming = [t.price for t in script.trades_between(symbol, now_ms + 1_500, now_ms + 6_000)]
                last = (await script.ticker(symbol))["last"]
                if coming and max(coming) > last:
                    choices.append((symbol, "above", max(coming)))
                elif coming and min(coming) < last:
                    choices.append((symbol, "below", min(coming)))
            assert choices, "the replay is flat everywhere over the next seconds"
            symbol, condition, level = choices[0]
            r = await backend.alert("alice", symbol=symbol, price=str(level))
            assert r.status_code == 201, r.text
            assert r.json()["condition"] == condition
            # Judged against the exchange's price, not the replay's at this moment.
            at_creation = r.json()["priceAtCreation"]
            assert abs(at_creation - (await script.ticker(symbol))["last"]) < abs(
                at_creation - (await ReplayFeed().ticker(symbol))["last"])
            async with ws, asyncio.timeout(20):  # the listener hears it fire
                async for raw in ws:
                    fired = json.loads(raw).get("doc") or {}
                    if fired.get("status") == "triggered":
                        break
            assert fired["triggerPrice"] >= level if condition == "above" else fired["triggerPrice"] <= level
