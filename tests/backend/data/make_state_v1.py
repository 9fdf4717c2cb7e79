"""Writes `state_v1.sql`: a `state.db` as the schema-version-1 store (main at 6d1ce3b) wrote it, dumped as SQL.

Run from a checkout of that commit, so the old code writes the file (`test_migration.py` reads it):

    git archive 6d1ce3b | tar -x -C /tmp/v1 && cd /tmp/v1 && \
        PYTHONPATH=$PWD python /path/to/tests/backend/data/make_state_v1.py /path/to/tests/backend/data/state_v1.sql

Alice: a market buy, a limit buy partly filled then filled, a resting limit buy, a canceled one, a sell,
an alert; Bob: a market buy. The change log keeps 8 entries per user, so Alice's oldest are pruned.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path

from backend_stub.store.sqlite import SqliteStore
from tests.backend.conftest import auth, make_settings, serve
from tests.backend.listfeed import ListFeed


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        feed = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
        async with SqliteStore(data / "state.db", keep_changes=8) as store:
            async with serve(make_settings(data), feed, store=store) as backend:
                await feed.until_consumers(1)
                ok = [
                    await backend.order("alice", symbol="BTC/USDT", side="buy", type="market", amount="0.1",
                                        clientOrderId="alice-market-1"),
                    await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.2",
                                        price="49000", clientOrderId="alice-limit-fills"),
                    await backend.order("alice", symbol="BTC/USDT", side="buy", type="limit", amount="0.1",
                                        price="40000", clientOrderId="alice-limit-rests"),
                    await backend.order("alice", symbol="ETH/USDT", side="buy", type="limit", amount="1",
                                        price="2000", clientOrderId="alice-limit-canceled"),
                    await backend.order("bob", symbol="BTC/USDT", side="buy", type="market", amount="0.01",
                                        clientOrderId="bob-market-1"),
                    await backend.alert("alice", symbol="BTC/USDT", price="60000", clientAlertId="alice-alert-1"),
                ]
                assert all(r.status_code == 201 for r in ok), [r.text for r in ok]
                await feed.trade("BTC/USDT", 49_000.0, 0.05)  # the 49,000 buy: part filled
                await feed.trade("BTC/USDT", 48_900.0, 10.0)  # then filled
                canceled = ok[3].json()["id"]
                assert (await backend.http.delete(f"/v1/orders/{canceled}", headers=auth("alice"))).status_code == 200
                sold = await backend.order("alice", symbol="BTC/USDT", side="sell", type="market", amount="0.05",
                                           clientOrderId="alice-sell-1")
                assert sold.status_code == 201, sold.text
        await asyncio.to_thread(dump, data / "state.db", out)


def dump(path: Path, out: Path) -> None:
    db = sqlite3.connect(path)
    out.write_text("\n".join(db.iterdump()) + "\n")
    db.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
