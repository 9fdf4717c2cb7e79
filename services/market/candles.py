"""Candles of any source as CSV: the command line others build on (backtests, analytics, a trader's sheet).

    python -m services.market.candles --source SOURCE --symbol SYMBOL --timeframe TF \\
        --since ISO --until ISO [--out FILE] [--store DIR]

SOURCE: `synthetic` (or `synthetic:SEED`), `replay:PATH` (a skeet-replay/1 recording, at its recorded times),
`csv:PATH` (a trader's candle file, aggregated up to TF), `ccxt:EXCHANGE` (`fetch_ohlcv`, paged), or
`loopback:HOST:PORT` (ccxt's binance against the loopback exchange). TF: 1m 5m 15m 1h 4h 1d.
`--since` / `--until`: ISO dates or date-times, UTC when no zone is given. The range is half-open: a bar is
written when since <= its open time < until (so `--until 2025-02-01` ends with January's last bar). The
synthetic market writes closed bars only (none still forming, none in the future).
Output: a header `timestamp,open,high,low,close,volume`, timestamp = the bar's open time in epoch ms, oldest
first, to FILE or stdout. `--store DIR` reads through the history store (fills its gaps from SOURCE first).
Exit codes: 0 written (possibly no rows); 2 a bad symbol, timeframe, source or range (one line on stderr);
1 the source failed (e.g. an exchange that cannot be reached).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from services.market.history import (
    CandleSource,
    CandleStore,
    CcxtSource,
    CsvSource,
    ReplaySource,
    SyntheticSource,
    parse_instant,
)
from services.market.markets import decimals
from services.market.synthetic import DEFAULT_SEED, OHLCV, ORIGIN_MS
from services.market.types import TIMEFRAME_MS, FeedUnavailable, MarketDataError, UnknownSymbol

HEADER = "timestamp,open,high,low,close,volume"


class UsageError(Exception):
    """Bad input: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m services.market.candles", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True)
    p.add_argument("--symbol", required=True)
    p.add_argument("--timeframe", required=True)
    p.add_argument("--since", required=True)
    p.add_argument("--until", required=True)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--store", type=Path, default=None)
    return p


def open_source(spec: str) -> tuple[CandleSource, dict[str, Any]]:
    """The source `spec` names, and what is known of its symbols' precision (for formatting)."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "synthetic":
        if rest and not rest.lstrip("-").isdigit():
            raise UsageError(f"source {spec!r}: the seed after synthetic: must be a whole number")
        source = SyntheticSource(int(rest) if rest else DEFAULT_SEED)
        return source, {s: source.market.market(s) for s in source.market.symbols}
    if kind == "replay" and rest:
        if not Path(rest).exists():
            raise UsageError(f"source {spec!r}: no recording at {rest}")
        replay = ReplaySource(Path(rest))
        return replay, dict(replay.recording.meta.markets)
    if kind == "csv" and rest:
        if not Path(rest).exists():
            raise UsageError(f"source {spec!r}: no file at {rest}")
        return CsvSource(Path(rest)), {}
    if kind == "ccxt" and rest:
        return CcxtSource(rest), {}
    if kind == "loopback" and rest:
        from services.market.loopback_exchange import binance_config

        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise UsageError(f"source {spec!r}: expected loopback:HOST:PORT")
        return CcxtSource("binance", config={**binance_config(host or "127.0.0.1", int(port)),
                                             "enableRateLimit": False}, label="loopback-binance"), {}
    raise UsageError(f"unknown source {spec!r}: use synthetic, replay:PATH, csv:PATH or ccxt:EXCHANGE")


def format_csv(bars: OHLCV, market: dict[str, Any] | None) -> str:
    """CSV text (header included) in one bulk formatting pass; prices and volume at the market's precision."""
    out = io.StringIO()
    out.write(HEADER + "\n")
    if not len(bars):
        return out.getvalue()
    if market:
        pd, vd = decimals(market["precision"]["price"]), decimals(market["precision"]["amount"])
        fmt = ["%d", *[f"%.{pd}f"] * 4, f"%.{vd}f"]
        np.savetxt(out, bars, fmt=fmt, delimiter=",")
    else:
        cols = [bars[:, 0].astype(np.int64).astype(str)] + [np.char.mod("%.15g", bars[:, i]) for i in range(1, 6)]
        lines = cols[0]
        for c in cols[1:]:
            lines = np.char.add(np.char.add(lines, ","), c)
        out.write("\n".join(lines.tolist()) + "\n")
    return out.getvalue()


async def _fetch(source: CandleSource, symbol: str, timeframe: str, since: int, until: int,
                 store: Path | None) -> OHLCV:
    if isinstance(source, CcxtSource):
        try:
            await source.check(symbol)
        except UnknownSymbol as exc:
            raise UsageError(str(exc)) from exc
    if store is not None:
        return await CandleStore(store).candles(source, symbol, timeframe, since, until)
    pages = [page async for page in source.pages(symbol, timeframe, since, until)]
    return np.concatenate(pages) if pages else np.empty((0, 6))


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.timeframe not in TIMEFRAME_MS:
        raise UsageError(f"timeframe {args.timeframe!r} is not one of {', '.join(TIMEFRAME_MS)}")
    try:
        since, until = parse_instant(args.since), parse_instant(args.until)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if since >= until:
        raise UsageError(f"--since ({args.since}) must be before --until ({args.until})")
    if "/" not in args.symbol:
        raise UsageError(f"symbol {args.symbol!r} is not a market such as BTC/USDT")
    source, markets = open_source(args.source)
    if isinstance(source, SyntheticSource):
        try:
            source.market.market(args.symbol)
        except UnknownSymbol as exc:
            raise UsageError(str(exc)) from exc
        if until <= ORIGIN_MS:
            raise UsageError("the synthetic market starts on 2024-01-01 (UTC): ask for a later range")
    if isinstance(source, ReplaySource) and args.symbol not in source.recording.series:
        raise UsageError(f"{args.symbol} is not in the recording; available: {', '.join(source.recording.symbols)}")

    async def go() -> OHLCV:
        try:
            return await _fetch(source, args.symbol, args.timeframe, since, until, args.store)
        finally:
            if isinstance(source, CcxtSource):
                await source.aclose()

    bars = asyncio.run(go())
    text = format_csv(bars, markets.get(args.symbol))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (UsageError, UnknownSymbol, ValueError) as exc:
        return _fail(exc, 2)
    except FeedUnavailable as exc:  # the source failed, not the request: worth retrying later
        return _fail(exc, 1)
    except MarketDataError as exc:  # a source that cannot serve this request (unreadable file, no exchange)
        return _fail(exc, 2)
    except (OSError, ImportError) as exc:
        return _fail(exc, 1)


def _fail(exc: BaseException, code: int) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"candles: {message}", file=sys.stderr)  # one line, whatever the message held
    return code


if __name__ == "__main__":
    sys.exit(main())
