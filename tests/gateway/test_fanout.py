"""The gateway's shared fan-out over real websockets: a flush is framed once per group of clients that asked
for the same symbols the same way, and every client, whatever compression it negotiated and whenever it
joined, reads exactly its own symbols' frames in seq order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.backend.conftest import Running, token
from tests.backend.listfeed import ListFeed
from tests.gateway.conftest import stream_url


async def _open(running: Running, uid: str, symbols: str, *, lines: bool = True, **options: Any) -> ClientConnection:
    params = {"frames": "lines"} if lines else {}
    return await connect(stream_url(running, symbols, **params), additional_headers={
        "Authorization": f"Bearer {token(uid)}"}, open_timeout=10, **options)


async def _frames(ws: ClientConnection, until_price: float) -> list[dict[str, Any]]:
    """Every frame (one a message, or one a line) until the trade at `until_price`."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not out or out[-1].get("price") != until_price:
            out.extend(json.loads(line) for line in str(await ws.recv()).split("\n"))
    return out


def _check(frames: list[dict[str, Any]], start: dict[str, int], sent: dict[str, list[float]], *,
           first: dict[str, int]) -> None:
    """Only the symbols in `start`, each from its hello's start seq with no gap, and its trades' prices
    `sent[symbol]` from index `first[symbol]` on (to the end)."""
    assert {f["symbol"] for f in frames} == set(start)
    for symbol in start:
        own = [f for f in frames if f["symbol"] == symbol]
        assert [f["seq"] for f in own] == list(range(start[symbol] + 1, start[symbol] + 1 + len(own)))
        assert [f["price"] for f in own if f["type"] == "trade"] == sent[symbol][first[symbol]:]


async def test_each_client_of_a_shared_flush_reads_its_own_symbols_whatever_its_compression_and_join_time(
    gateway_backend: Running, feed: ListFeed
) -> None:
    clients = {
        "alice": await _open(gateway_backend, "alice", "BTC/USDT"),  # permessage-deflate, as GatewayFeed
        "bob": await _open(gateway_backend, "bob", "BTC/USDT", compression=None),
        # Each message compressed on its own, in a smaller window: its own framing of the same flush.
        "carol": await _open(gateway_backend, "carol", "BTC/USDT", compression=None, extensions=[
            ClientPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=10)]),
        "dave": await _open(gateway_backend, "dave", "BTC/USDT,ETH/USDT"),
        "erin": await _open(gateway_backend, "erin", "ETH/USDT", lines=False),
    }
    asked = {"alice": ["BTC/USDT"], "bob": ["BTC/USDT"], "carol": ["BTC/USDT"],
             "dave": ["BTC/USDT", "ETH/USDT"], "erin": ["ETH/USDT"]}
    starts = {uid: json.loads(await ws.recv())["seq"] for uid, ws in clients.items()}
    await feed.until_followed("BTC/USDT", 2)
    await feed.until_followed("ETH/USDT", 2)

    sent: dict[str, list[float]] = {"BTC/USDT": [], "ETH/USDT": []}

    async def trade(n: int) -> None:
        for i in range(n):  # well past a deflate window (4 kB) of frames for each group
            symbol = "BTC/USDT" if i % 3 else "ETH/USDT"
            price = 1000.0 + len(sent["BTC/USDT"]) * 2 + len(sent["ETH/USDT"]) * 2 + (i % 7) / 100
            sent[symbol].append(price)
            await feed.trade(symbol, price)

    def last_of(uid: str) -> float:  # every trade's last is BTC's: a client of BTC has all once it has that
        return sent["BTC/USDT" if "BTC/USDT" in asked[uid] else "ETH/USDT"][-1]

    await trade(180)
    got = {uid: await _frames(ws, last_of(uid)) for uid, ws in clients.items()}
    # A late joiner: its decoder's window holds its own hello, not the group's stream so far (> 4 kB).
    clients["frank"] = await _open(gateway_backend, "frank", "BTC/USDT")
    asked["frank"], got["frank"] = ["BTC/USDT"], []
    starts["frank"] = json.loads(await clients["frank"].recv())["seq"]
    joined = len(sent["BTC/USDT"])  # all flushed: alice had them all
    await trade(180)

    for uid, ws in clients.items():
        got[uid] += await _frames(ws, last_of(uid))
        first = dict.fromkeys(asked[uid], joined if uid == "frank" else 0)
        _check(got[uid], starts[uid], sent, first=first)
        await ws.close()
