"""Candle history for a backtest: the signal engine's `Candles` columns, read from a CSV file (the CLI's
contract) or built in code.

CSV: a header naming `timestamp,open,high,low,close,volume` (any order, any case, other columns ignored);
`timestamp` is epoch milliseconds or an ISO 8601 date or date-time (UTC when no zone is given). Rows may come
in any order (they are sorted by time); two rows with one timestamp, a price that is not a positive number,
or a high below the low / an open or close outside the high-low range are refused with the line number.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.market.types import TIMEFRAME_MS
from services.signals.candles import Candles

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_EPOCH_MS = re.compile(r"^[+-]?\d+(\.0*)?$")


class CandleError(ValueError):
    """The candle file cannot be used; the message names the line and the mistake."""


def timeframe_ms(candles: Candles) -> int:
    """The candles' spacing: the most common gap between two timestamps (0 for one candle)."""
    if len(candles) < 2:
        return 0
    gaps = np.diff(candles.timestamp_ms)
    if bool((gaps == gaps[0]).all()):  # the usual case, without np.unique's sort
        return int(gaps[0])
    values, counts = np.unique(gaps, return_counts=True)
    return int(values[np.argmax(counts)])


def timeframe_name(candles: Candles) -> str | None:
    """"1m" ... "1d" when the candles' spacing is one of the timeframes, else None."""
    ms = timeframe_ms(candles)
    return next((name for name, value in TIMEFRAME_MS.items() if value == ms), None)


def make_candles(timestamp_ms: npt.ArrayLike, open: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike,
                 close: npt.ArrayLike, volume: npt.ArrayLike | None = None) -> Candles:
    """Candles from columns (volume 0 when not given)."""
    ts = np.asarray(timestamp_ms, dtype=np.int64)
    vol = np.zeros(ts.shape[0]) if volume is None else volume
    try:
        return Candles(ts, np.asarray(open), np.asarray(high), np.asarray(low), np.asarray(close), np.asarray(vol))
    except ValueError as exc:
        raise CandleError(str(exc)) from None


def parse_timestamp(text: str) -> int:
    """Epoch ms from "1700000000000", "2024-01-31", "2024-01-31T12:00:00", "...Z" or "...+02:00"."""
    text = text.strip()
    if _EPOCH_MS.match(text):
        return int(float(text)) if "." in text else int(text)
    try:
        if len(text) == 10 and text[4] == "-":
            d = date.fromisoformat(text)
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither epoch milliseconds nor an ISO 8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1000))


def iso(timestamp_ms: int) -> str:
    """ISO 8601 in UTC with a Z, milliseconds only when there are some."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    ms = timestamp_ms % 1000
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def read_candles_csv(path: str | Path) -> Candles:
    """Read and check a candle CSV (see the module docstring). O(n log n) for the sort."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise CandleError(f"candle file {path} does not exist") from None
    except OSError as exc:
        raise CandleError(f"candle file {path} cannot be read ({exc.strerror})") from None
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CandleError(f"candle file {path} is empty")
            names = [h.strip().lower() for h in header]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise CandleError(f"candle file {path} has no {', '.join(missing)} column"
                                  f"{'s' if len(missing) > 1 else ''} (the header must name {','.join(COLUMNS)})")
            index = [names.index(c) for c in COLUMNS]
            width = max(index) + 1
            ts: list[int] = []
            rows: list[tuple[float, float, float, float, float]] = []
            for line_no, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < width:
                    raise CandleError(f"line {line_no}: expected {len(names)} values, found {len(row)}")
                ts.append(_timestamp(row[index[0]], line_no))
                rows.append(_prices(row, index, line_no))
        except UnicodeDecodeError:
            raise CandleError(f"candle file {path} is not a UTF-8 text file") from None
        except csv.Error as exc:
            raise CandleError(f"candle file {path} is not a valid CSV ({exc})") from None
    if not ts:
        raise CandleError(f"candle file {path} has a header but no candles")
    stamps = np.asarray(ts, dtype=np.int64)
    values = np.asarray(rows, dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    stamps, values = stamps[order], values[order]
    dup = np.flatnonzero(np.diff(stamps) == 0)
    if dup.size:
        first = int(order[dup[0] + 1]) + 2
        raise CandleError(f"line {first}: a second candle at {iso(int(stamps[dup[0]]))}")
    return Candles(stamps, *(np.ascontiguousarray(values[:, k]) for k in range(5)))  # type: ignore[arg-type]


def _timestamp(cell: str, line_no: int) -> int:
    try:
        return parse_timestamp(cell)
    except (ValueError, OverflowError, OSError) as exc:
        raise CandleError(f"line {line_no}: {exc}") from None


def _prices(row: list[str], index: list[int], line_no: int) -> tuple[float, float, float, float, float]:
    out: list[float] = []
    for name, k in zip(COLUMNS[1:], index[1:], strict=True):
        cell = row[k].strip()
        try:
            value = float(cell)
        except ValueError:
            raise CandleError(f"line {line_no}: {name} {cell!r} is not a number") from None
        if not math.isfinite(value) or (value <= 0 if name != "volume" else value < 0):
            kind = "a positive number" if name != "volume" else "a number of at least 0"
            raise CandleError(f"line {line_no}: {name} {cell!r} must be {kind}")
        out.append(value)
    o, h, low, c, v = out
    if h < low:
        raise CandleError(f"line {line_no}: high {row[index[2]].strip()} is below low {row[index[3]].strip()}")
    for name, value in (("open", o), ("close", c)):
        if not low <= value <= h:
            raise CandleError(f"line {line_no}: {name} {value:g} is outside the candle's low-high range "
                              f"{low:g}-{h:g}")
    return o, h, low, c, v
