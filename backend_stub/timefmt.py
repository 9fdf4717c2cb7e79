"""ccxt's `datetime` fields: ISO 8601 UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(timestamp_ms: int) -> str:
    """1700000000123 → "2023-11-14T22:13:20.123Z"."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
