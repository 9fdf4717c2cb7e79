"""Record real public trades from a ccxt exchange into the replay format (`"source": "ccxt"`).

    python -m services.market.record --exchange binance --symbols BTC/USDT,ETH/USDT --minutes 30
    python -m services.market.record --exchange binance --symbols BTC/USDT --minutes 1 \\
        --urls-from-loopback 127.0.0.1:8765      # against `python -m services.market.loopback_exchange`

Trades come from `CcxtFeed`, so a dropped socket during the recording is reconnected and its gap filled.
A recording of real data does not end at its start price: a looped replay of it jumps at the seam.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.market.ccxt_feed import CcxtFeed
from services.market.recording import RecordingMeta, write_recording


async def record(
    feed: CcxtFeed, symbols: list[str], seconds: float, *, clock: Callable[[], float] = time.time
) -> tuple[RecordingMeta, list[dict[str, Any]]]:
    """Trades of `symbols` from now for `seconds`, with the meta line describing them."""
    markets = await feed.markets()
    start_ms = int(clock() * 1000)
    end_ms = start_ms + int(seconds * 1000)
    trades: list[dict[str, Any]] = []

    async def collect() -> None:
        async with contextlib.aclosing(feed.identified_ticks(symbols)) as stream:
            async for trade_id, tick in stream:
                if start_ms <= tick.timestamp_ms < end_ms:
                    trades.append(
                        {
                            "symbol": tick.symbol,
                            "timestamp": tick.timestamp_ms,
                            "price": tick.price,
                            "amount": tick.amount,
                            "side": tick.side,
                            "id": trade_id,
                        }
                    )

    # Wait out the window, then a little more so trades stamped just before its end can arrive.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout=max(0.0, end_ms / 1000 - clock()) + 1.0)
    meta = RecordingMeta(
        source="ccxt",
        exchange=feed.exchange_id,
        seed=None,
        symbols=tuple(symbols),
        markets={s: _jsonable(markets[s]) for s in symbols},
        start_ms=start_ms,
        end_ms=end_ms,
        extra={"note": f"Public trades recorded from {feed.exchange_id} through ccxt."},
    )
    return meta, trades


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if not args.urls_from_loopback:
        return {}
    if args.exchange != "binance":
        raise SystemExit("--urls-from-loopback speaks Binance's wire format: use --exchange binance")
    from services.market.loopback_exchange import binance_config

    host, _, port = args.urls_from_loopback.rpartition(":")
    return binance_config(host or "127.0.0.1", int(port))


async def _main(args: argparse.Namespace) -> None:
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    out = args.out or Path("assets/replay") / f"{args.exchange}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl.gz"
    async with CcxtFeed(args.exchange, config=_config(args)) as feed:
        print(f"recording {', '.join(symbols)} from {args.exchange} for {args.minutes:g} min …")
        meta, trades = await record(feed, symbols, args.minutes * 60)
    count = write_recording(out, meta, trades)
    print(
        f"wrote {count} trades to {out} ({feed.reconnects} reconnects, {feed.filled_trades} trades gap-filled)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binance")
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--urls-from-loopback", metavar="HOST:PORT", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    main()
