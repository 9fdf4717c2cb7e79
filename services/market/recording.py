"""The replay format `skeet-replay/1`: gzip JSON Lines, one meta line, then ccxt unified trades in time order.

The simulator and the recorder of real ccxt data both write it; `load_recording` reads it into flat per-symbol
arrays (offsets, prices, amounts) so a feed can bisect by time and aggregate a range in O(log n + block).
"""

from __future__ import annotations

import gzip
import io
import json
import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.market.types import FeedUnavailable

FORMAT = "skeet-replay/1"
_BLOCK = 32  # trades per block of the min/max index: a range query scans at most 2 blocks + n/_BLOCK maxima


@dataclass(frozen=True, slots=True)
class RecordingMeta:
    """The first line of a recording. `source` is "simulated" or "ccxt"; times are ms since the epoch."""

    source: str
    exchange: str
    symbols: tuple[str, ...]
    markets: Mapping[str, dict[str, Any]]
    start_ms: int
    end_ms: int
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "meta",
            "format": FORMAT,
            "source": self.source,
            "exchange": self.exchange,
            "seed": self.seed,
            "symbols": list(self.symbols),
            "markets": {s: self.markets[s] for s in self.symbols},
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            **dict(self.extra),
        }


@dataclass(frozen=True, slots=True)
class TradeSeries:
    """One symbol's trades as parallel arrays; `offsets_ms[i]` is the trade's time minus the recording start.

    Range statistics use prefix sums (volume, quote volume) and per-block extremes, built once at load.
    """

    offsets_ms: array
    prices: array
    amounts: array
    sides: bytes  # b"b" buy, b"s" sell, b"?" unknown (taker side)
    ids: tuple[str, ...]
    _cum_amount: array = field(repr=False)
    _cum_quote: array = field(repr=False)
    _block_high: array = field(repr=False)
    _block_low: array = field(repr=False)

    @classmethod
    def build(
        cls, offsets: array, prices: array, amounts: array, sides: bytes, ids: tuple[str, ...]
    ) -> TradeSeries:
        cum_amount = array("d", [0.0])
        cum_quote = array("d", [0.0])
        a = q = 0.0
        for p, x in zip(prices, amounts, strict=True):
            a += x
            q += p * x
            cum_amount.append(a)
            cum_quote.append(q)
        highs = array("d", (max(prices[i : i + _BLOCK]) for i in range(0, len(prices), _BLOCK)))
        lows = array("d", (min(prices[i : i + _BLOCK]) for i in range(0, len(prices), _BLOCK)))
        return cls(offsets, prices, amounts, sides, ids, cum_amount, cum_quote, highs, lows)

    def __len__(self) -> int:
        return len(self.offsets_ms)

    def side(self, i: int) -> str | None:
        return {98: "buy", 115: "sell"}.get(self.sides[i])

    def first_at_or_after(self, offset_ms: int) -> int:
        return bisect_left(self.offsets_ms, offset_ms)

    def stats(self, lo: int, hi: int) -> tuple[float, float, float, float]:
        """(high, low, base volume, quote volume) of trades lo..hi-1 (hi > lo)."""
        prices = self.prices
        high, low = -math.inf, math.inf
        b_lo, b_hi = -(-lo // _BLOCK), hi // _BLOCK
        if b_lo >= b_hi:
            segment = prices[lo:hi]
            high, low = max(segment), min(segment)
        else:
            high = max(self._block_high[b_lo:b_hi])
            low = min(self._block_low[b_lo:b_hi])
            for part in (prices[lo : b_lo * _BLOCK], prices[b_hi * _BLOCK : hi]):
                if part:
                    high, low = max(high, max(part)), min(low, min(part))
        volume = self._cum_amount[hi] - self._cum_amount[lo]
        quote = self._cum_quote[hi] - self._cum_quote[lo]
        return high, low, volume, quote


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path | None
    meta: RecordingMeta
    series: Mapping[str, TradeSeries]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols with at least one trade (a recorder may catch none for an illiquid market)."""
        return tuple(s for s in self.meta.symbols if s in self.series)


def parse_meta(obj: Any) -> RecordingMeta:
    if not isinstance(obj, dict) or obj.get("type") != "meta":
        raise ValueError("the first line is not a meta line")
    if obj.get("format") != FORMAT:
        raise ValueError(f"format {obj.get('format')!r} is not {FORMAT!r}")
    known = {"type", "format", "source", "exchange", "seed", "symbols", "markets", "start_ms", "end_ms"}
    symbols = tuple(str(s) for s in obj["symbols"])
    markets = obj["markets"]
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise ValueError(f"no market structure for {', '.join(missing)}")
    start_ms, end_ms = int(obj["start_ms"]), int(obj["end_ms"])
    if end_ms <= start_ms:
        raise ValueError("end_ms must be after start_ms")
    seed = obj.get("seed")
    return RecordingMeta(
        source=str(obj["source"]),
        exchange=str(obj["exchange"]),
        symbols=symbols,
        markets=markets,
        start_ms=start_ms,
        end_ms=end_ms,
        seed=None if seed is None else int(seed),
        extra={k: v for k, v in obj.items() if k not in known},
    )


def load_recording(path: Path) -> Recording:
    """Read and index a recording; a missing, unreadable or malformed file raises `FeedUnavailable`."""
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            meta = parse_meta(json.loads(lines.readline() or "null"))
            columns: dict[str, tuple[array, array, array, bytearray, list[str]]] = {
                s: (array("q"), array("d"), array("d"), bytearray(), []) for s in meta.symbols
            }
            for number, line in enumerate(lines, start=2):
                if not line.strip():
                    continue
                t = json.loads(line)
                if t.get("type") != "trade":
                    continue  # later format revisions may add other line types (books, candles)
                col = columns.get(t["symbol"])
                if col is None:
                    raise ValueError(
                        f"line {number}: symbol {t['symbol']!r} is not declared in the meta line"
                    )
                offset = int(t["timestamp"]) - meta.start_ms
                price, amount = float(t["price"]), float(t["amount"])
                if not 0 <= offset < meta.duration_ms:
                    raise ValueError(f"line {number}: timestamp outside start_ms..end_ms")
                if col[0] and offset < col[0][-1]:
                    raise ValueError(f"line {number}: trades of {t['symbol']} are not in time order")
                if not (math.isfinite(price) and price > 0 and math.isfinite(amount) and amount >= 0):
                    raise ValueError(f"line {number}: price and amount must be finite and positive")
                col[0].append(offset)
                col[1].append(price)
                col[2].append(amount)
                col[3].append({"buy": 98, "sell": 115}.get(t.get("side"), 63))
                col[4].append(str(t.get("id")))
    except FileNotFoundError:
        raise FeedUnavailable(f"Replay recording not found: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FeedUnavailable(f"Replay recording {path} cannot be read: {exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FeedUnavailable(f"Replay recording {path} is corrupt: {exc}") from exc
    series = {
        s: TradeSeries.build(o, p, a, bytes(sd), tuple(ids)) for s, (o, p, a, sd, ids) in columns.items() if o
    }
    if not series:
        raise FeedUnavailable(f"Replay recording {path} holds no trades")
    return Recording(path, meta, series)


def write_recording(path: Path, meta: RecordingMeta, trades: Iterable[Mapping[str, Any]]) -> int:
    """Write `meta` and ccxt trades (sorted here by timestamp) to `path`; returns the number of trades.

    The gzip header carries no mtime, so the same inputs give byte-identical files.
    """
    rows = sorted(trades, key=lambda t: (t["timestamp"], meta.symbols.index(t["symbol"])))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        text.write(json.dumps(meta.to_json(), separators=(",", ":")) + "\n")
        for t in rows:
            line = {
                "type": "trade",
                "symbol": t["symbol"],
                "timestamp": int(t["timestamp"]),
                "price": t["price"],
                "amount": t["amount"],
                "side": t.get("side"),
                "id": None if t.get("id") is None else str(t["id"]),
            }
            text.write(json.dumps(line, separators=(",", ":")) + "\n")
        text.flush()
        text.detach()
    return len(rows)
