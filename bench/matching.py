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
`--server` also measures the whole server, as a trader's book would load it: `python -m backend_stub` on
the replay (all symbols, speed 1, then at the speed that makes 50 trades/s), its CPU (all threads, from
/proc) over `--idle-s` seconds first with no orders, then again after `--orders` resting orders over
`--users` traders were placed through `POST /v1/orders` (buy limits at half the price, buy stops at twice
it: never reached). The baseline is the same server with an empty book, so the difference is what the
book costs; the targets apply to the whole process.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


async def server_idle_cpu(args: argparse.Namespace, speed: float) -> dict[str, float]:
    """Server CPU % of a core, idle, empty book then `--orders` resting ones (replay at `speed`)."""
    import httpx
    from ui_latency import cpu_seconds  # this folder's /proc reader

    from services.auth import devtoken
    from services.market.replay import ReplayFeed
    from tests.support import free_port, start_backend, stop

    key = "bench-matching-dev-key-0123456789abcdef"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "SKEET_DATA_DIR": tmp, "SKEET_DEV_KEY": key, "SKEET_FEED": "replay",
            "SKEET_REPLAY_SPEED": f"{speed:.4f}", "SKEET_RATE_PER_S": "1000000", "SKEET_RATE_BURST": "1000000",
            "SKEET_PAPER_BALANCE": "1000000000", "SKEET_MAX_OPEN_ORDERS": "100000",
        }
        server = await asyncio.to_thread(start_backend, env, port, Path(tmp) / "server.log")
        try:
            async def idle() -> float:
                await asyncio.sleep(2)  # let start-up and the last writes settle
                before, t0 = cpu_seconds(server.pid), time.monotonic()
                await asyncio.sleep(args.idle_s)
                return (cpu_seconds(server.pid) - before) / (time.monotonic() - t0) * 100

            empty = await idle()
            headers = {u: {"Authorization": f"Bearer {devtoken.mint(u, key=key.encode())}"}
                       for u in (f"trader-{i}" for i in range(args.users))}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                markets = (await http.get("/v1/markets", headers=headers["trader-0"])).json()
                symbols = sorted(markets)
                replay = ReplayFeed()  # the server replays the same recording in step with the clock
                lasts = {symbol: dec((await replay.ticker(symbol))["last"]) for symbol in symbols}
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(args.orders):
                    queue.put_nowait(i)

                async def worker() -> None:
                    while not queue.empty():
                        i = queue.get_nowait()
                        symbol = symbols[i % len(symbols)]
                        body = _far_order(i, symbol, lasts[symbol], markets[symbol])
                        r = await http.post("/v1/orders", json=body, headers=headers[f"trader-{i % args.users}"])
                        assert r.status_code == 201, r.text

                await asyncio.gather(*(worker() for _ in range(8)))
            full = await idle()
        finally:
            await asyncio.to_thread(stop, server)
    return {"empty_pct": empty, "full_pct": full}


def _far_order(i: int, symbol: str, last: Decimal, market: dict[str, Any]) -> dict[str, Any]:
    tick = Decimal(str(market["precision"]["price"]))
    step = Decimal(str(market["precision"]["amount"]))
    low = floor_to(last / 2, tick)
    high = floor_to(last * 2, tick)
    amount = max(floor_to(Decimal(20) / low, step) + step, Decimal(str(market["limits"]["amount"]["min"] or step)))
    body: dict[str, Any] = {"symbol": symbol, "side": "buy", "amount": str(amount), "clientOrderId": f"m-{i}"}
    if i % 2:
        body |= {"type": "limit", "price": str(low - tick * (i % 50))}
    else:
        body |= {"type": "stop_market", "stopPrice": str(high + tick * (i % 50))}
    return body


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
    if args.server:
        for label, speed in (("replay", 1.0), ("50_per_s", 50 / rate)):
            figures = await server_idle_cpu(args, speed)
            result[f"server_cpu_pct_empty_at_{label}"] = round(figures["empty_pct"], 2)
            result[f"server_cpu_pct_{args.orders}_orders_at_{label}"] = round(figures["full_pct"], 2)
            print(f"server at {label} ({speed:.2f}× replay): {figures['empty_pct']:.2f} % of a core with no orders, "
                  f"{figures['full_pct']:.2f} % with {args.orders:,}")
        result["server_targets_met"] = (
            result[f"server_cpu_pct_{args.orders}_orders_at_replay"] <= 2
            and result[f"server_cpu_pct_{args.orders}_orders_at_50_per_s"] <= 10
        )
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
    parser.add_argument("--server", action="store_true", help="also measure the whole server's idle CPU")
    parser.add_argument("--idle-s", type=float, default=20.0)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    print(json.dumps(asyncio.run(main(parser.parse_args(), shm))))
