"""Choosing a market feed from one setting, e.g. an environment variable or the settings screen.

synthetic                    the synthetic market, seed 7 (the offline default; `synthetic:SEED` for another)
replay                       the shipped simulated recording
replay:PATH                  another recording (skeet-replay/1)
ccxt:EXCHANGE                live public data from a ccxt exchange (binance, kraken, ...)
loopback:HOST:PORT           live mode offline: ccxt's binance client against the loopback exchange
gateway:URL                  the Skeet backend's market gateway at URL (httpx + websockets only: phones,
                             the hosted web app); needs `token`, the signed-in user's bearer token provider
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from services.market.replay import ReplayFeed
from services.market.streaming import StreamingFeed
from services.market.types import MarketDataError

# How long the app's in-process feeds (synthetic, replay) let due trades gather before one wake-up hands them
# over, when nobody asks sooner. A wake-up of an idle process costs ~100-250 µs of CPU on a small VM: at 5 ms
# (the pace until 2026-12-03) the feed's wake-ups alone were ~4-5 % of a core on a slow one. A session about to
# repaint asks for the due trades (`PacedFeed.hurry`, at most every `pacing.HURRY_LEAST_S`), so what a screen
# shows is as fresh as before; this pace is for the signals and sessions that are not repainting.
# The trades' content and order are the same either way.
FEED_BATCH_S = 0.025


def open_feed(
    spec: str = "synthetic", *, speed: float = 1.0, token: Callable[[], Awaitable[str]] | None = None,
    batch_s: float = 0.0,
) -> StreamingFeed:
    """The feed `spec` names (see the module doc); the caller owns it (`async with` or `aclose`).

    `speed` paces a replay; the synthetic market always runs on the wall clock (it has no recording to speed up).
    `token` is the signed-in trader's bearer token provider, which the gateway needs. `batch_s` (synthetic and
    replay): hand over due trades at most once per this long (0: each at its millisecond; the app uses
    `FEED_BATCH_S`).
    """
    kind, _, rest = spec.strip().partition(":")
    if kind == "synthetic":
        from services.market.synthetic_feed import SyntheticFeed

        if rest and not rest.strip().lstrip("-").isdigit():
            raise MarketDataError(f"Market source {spec!r}: expected synthetic or synthetic:SEED (a whole number).")
        return SyntheticFeed(int(rest) if rest else 7, batch_s=batch_s)
    if kind == "gateway":
        from services.market.gateway_feed import GatewayFeed

        if not rest.startswith(("http://", "https://")):
            raise MarketDataError(f"Market source {spec!r}: expected gateway:https://your-skeet-api.")
        if token is None:
            raise MarketDataError("Live prices through the gateway need you to be signed in.")
        return GatewayFeed(rest, token=token)
    if kind == "replay":
        return ReplayFeed(Path(rest) if rest else None, speed=speed, batch_s=batch_s)
    if kind == "ccxt" and rest:
        from services.market.ccxt_feed import CcxtFeed  # ccxt is imported only when a live feed is asked for

        return CcxtFeed(rest)
    if kind == "loopback" and rest:
        from services.market.ccxt_feed import CcxtFeed
        from services.market.loopback_exchange import binance_config

        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise MarketDataError(f"Market source {spec!r}: expected loopback:HOST:PORT.")
        config = binance_config(host or "127.0.0.1", int(port))
        return CcxtFeed("binance", config=config, label="Live · binance (loopback, simulated data)")
    raise MarketDataError(
        f"Unknown market source {spec!r}: use synthetic, synthetic:SEED, replay, replay:PATH, ccxt:EXCHANGE, "
        "loopback:HOST:PORT or gateway:URL."
    )


def exchange_ids() -> list[str]:
    """Exchanges a live feed can use (ccxt's list); empty where ccxt is not installed (phones)."""
    try:
        import ccxt
    except ImportError:
        return []
    return sorted(ccxt.exchanges)
