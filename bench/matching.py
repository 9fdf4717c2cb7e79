"""Benchmark: the paper broker's matching cost per market trade with a big resting book, against the old
sort-everything matcher in the same run.

    python bench/matching.py                 # 10,000 orders over 1,000 traders, 2,000 trades (~40 s)
    python bench/matching.py --orders 2000 --trades 500

The real `PaperBroker` (SQLite store in a temporary directory, on /dev/shm when there is one so seeding
is quick; matching itself never touches the store unless something fills) is seeded through
`create_order` with `--orders` resting orders over `--users` traders, all on BTC/USDT (the worst case:
one book): buy limits below the market, buy stop-markets and buy trailing stops above it. Then
`--trades` market trades wandering ±0.4% around the price, none reaching an order (the idle case: a
book that waits), are fed to `broker.on_tick`, timed with `time.process_time`.

Baseline: the previous `PaperBroker.on_tick` loop, kept here verbatim in spirit: on every trade sort the
whole book by age, then for each resting order take its trader's lock, await the per-order match and
convert its prices to Decimal to see whether the trade reaches it. It runs over the same order documents.

CPU share of a core at a trade rate = CPU seconds per trade × trades per second: at the replay's own rate
(counted from the shipped recording, all symbols, speed 1) and at 50 trades/s. Targets: ≤ 2 % and ≤ 10 %.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend_stub.brokers.base import OrderRequest  # noqa: E402
from backend_stub.brokers.paper import PaperBroker  # noqa: E402
from backend_stub.money import dec, floor_to  # noqa: E402
from backend_stub.store.sqlite import SqliteStore  # noqa: E402
from services.market.markets import spot_market  # noqa: E402
from services.market.types import Candle, Tick  # noqa: E402

SYMBOL = "BTC/USDT"
PRICE = 50_000.0


class StillFeed:
    """A `MarketFeed` that only answers the last price (the bench calls `on_tick` itself)."""

    mode = "Bench · still"

    def __init__(self) -> None:
        self._market = spot_market(SYMBOL, price_tick=0.01, amount_step=0.0001, min_amount=0.0001, max_amount=100)

    async def markets(self) -> dict[str, dict[str, Any]]:
        return {SYMBOL: dict(self._market)}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol, "last": PRICE, "close": PRICE, "timestamp": 0}

    async def candles(self, symbol: str, timeframe: str = "1m", **_: Any) -> list[Candle]:
        return []

    def ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:  # never asked: the broker is not started
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class SortEverything:
    """The old matcher's hot loop (before services.ledger.book): sort all, await each."""

    def __init__(self, docs: list[tuple[str, dict[str, Any]]], amount_step: Decimal) -> None:
        self._resting = {(uid, doc["id"]): doc for uid, doc in docs}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._step = amount_step

    async def on_tick(self, tick: Tick) -> None:
        book = self._resting
        price, available = dec(tick.price), dec(tick.amount)
        for uid, order_id in sorted(book, key=lambda key: (book[key]["timestamp"], key[1])):
            async with self._locks[uid]:
                order = book.get((uid, order_id))
                if order is None:
                    continue
                available = await self._match_one(order, price, available)

    async def _match_one(self, order: dict[str, Any], price: Decimal, available: Decimal) -> Decimal:
        side = order["side"]
        if order["type"] != "limit" and not order["info"].get("triggered"):
            stop = dec(order["stopPrice"])
            if not (price >= stop if side == "buy" else price <= stop):
                return available
            raise AssertionError("bench trades never reach a stop")
        limit = dec(order["price"])
        amount = floor_to(min(dec(order["remaining"]), available), self._step)
        if not (price <= limit if side == "buy" else price >= limit) or amount <= 0:
            return available
        raise AssertionError("bench trades never reach a limit")


async def replay_trade_rate() -> float:
    """Trades per second of the shipped recording at speed 1, all symbols."""
    from services.market.replay import ReplayFeed

    feed = ReplayFeed()
    markets = await feed.markets()
    now = int(time.time() * 1000)
    window = 600_000
    return sum(len(feed.trades_between(s, now - window, now)) for s in markets) / (window / 1000)


async def seed(broker: PaperBroker, orders: int, users: int) -> None:
    kinds = ("limit", "stop_market", "trailing_stop")
    for i in range(orders):
        kind = kinds[i % 3]
        offset = Decimal(250 + (i % 4000))  # 0.5 % .. 8.5 % away from the price
        request = OrderRequest(
            symbol=SYMBOL,
            side="buy",
            type=kind,  # type: ignore[arg-type]
            amount=Decimal("0.001"),
            client_order_id=f"bench-{i}",
            price=Decimal(PRICE) - offset if kind == "limit" else None,
            stop_price=Decimal(PRICE) + offset if kind == "stop_market" else None,
            trailing_percent=Decimal(1) + Decimal(i % 5) if kind == "trailing_stop" else None,
        )
        await broker.create_order(f"trader-{i % users}", request)


def trades(count: int) -> list[Tick]:
    # A slow wave ±0.4 %: inside every order's distance, so the book waits (the idle case).
    out = []
    for k in range(count):
        wiggle = ((k * 37) % 400 - 200) / 100_000
        out.append(Tick(symbol=SYMBOL, timestamp_ms=1_700_000_000_000 + k, price=round(PRICE * (1 + wiggle), 2),
                        amount=0.01))
    return out


async def per_trade_cpu(on_tick: Any, ticks: list[Tick]) -> float:
    start = time.process_time()
    for tick in ticks:
        await on_tick(tick)
    return (time.process_time() - start) / len(ticks)


async def main(args: argparse.Namespace, base: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        async with SqliteStore(Path(tmp) / "state.db") as store:
            broker = PaperBroker(store=store, feed=StillFeed(), starting_balance=Decimal("1e9"))
            t0 = time.perf_counter()
            await seed(broker, args.orders, args.users)
            seeded_s = time.perf_counter() - t0
            docs = [(uid, doc) for uid, by_id in broker._open.items() for doc in by_id.values()]
            assert len(docs) == args.orders, len(docs)
            old = SortEverything(docs, Decimal("0.0001"))
            ticks = trades(args.trades)
            rounds: dict[str, list[float]] = {"book": [], "sort_everything": []}
            for _ in range(args.rounds):  # interleaved, so machine load hits both alike
                rounds["book"].append(await per_trade_cpu(broker.on_tick, ticks))
                rounds["sort_everything"].append(await per_trade_cpu(old.on_tick, ticks[: max(20, len(ticks) // 20)]))
            assert all(o["status"] == "open" for _, o in docs)  # nothing filled: the idle case
    book_s, old_s = min(rounds["book"]), min(rounds["sort_everything"])
    rate = await replay_trade_rate()
    result = {
        "orders": args.orders,
        "users": args.users,
        "trades": args.trades,
        "seed_s": round(seeded_s, 1),
        "book_us_per_trade": round(book_s * 1e6, 1),
        "sort_everything_us_per_trade": round(old_s * 1e6, 1),
        "speedup": round(old_s / book_s, 1),
        "replay_trades_per_s": round(rate, 1),
        "book_cpu_pct_at_replay_rate": round(book_s * rate * 100, 3),
        "book_cpu_pct_at_50_per_s": round(book_s * 50 * 100, 3),
        "sort_everything_cpu_pct_at_replay_rate": round(old_s * rate * 100, 1),
        "sort_everything_cpu_pct_at_50_per_s": round(old_s * 50 * 100, 1),
        "targets_met": book_s * rate <= 0.02 and book_s * 50 <= 0.10,
    }
    print(f"{args.orders:,} resting orders over {args.users:,} traders on {SYMBOL}; idle trades (none reaches an order)")
    print(f"{'matcher':<18}{'µs/trade':>10}{'% core @ replay ' + format(rate, '.1f') + '/s':>26}{'% core @ 50/s':>16}")
    for name, seconds in (("book", book_s), ("sort_everything", old_s)):
        print(f"{name:<18}{seconds * 1e6:>10.1f}{seconds * rate * 100:>26.3f}{seconds * 50 * 100:>16.3f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--trades", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    print(json.dumps(asyncio.run(main(parser.parse_args(), shm))))
