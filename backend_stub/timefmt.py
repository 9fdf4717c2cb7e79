"""ccxt's `datetime` fields: ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import time


def iso(timestamp_ms: int) -> str:
    """1700000000123 → "2023-11-14T22:13:20.123Z" (three a paper order; half the cost of datetime's)."""
    seconds, ms = divmod(int(timestamp_ms), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{ms:03d}Z"
