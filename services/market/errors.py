"""ccxt's exceptions turned into `MarketDataError`s with a message a trader can act on.

Transient failures (network, timeouts, rate limits, an exchange's "unknown error") are worth retrying;
the rest (a symbol the exchange does not list, a rejected request) are not.
"""

from __future__ import annotations

import ccxt

from services.market.types import FeedUnavailable, MarketDataError, UnknownSymbol


class RateLimited(FeedUnavailable):
    """The exchange refuses requests for now (HTTP 429/418); retried with backoff before this is raised."""


class ExchangeRejected(MarketDataError):
    """The exchange answered with an error that retrying will not fix."""


class NotOffered(MarketDataError):
    """The exchange does not offer this data (no such endpoint or stream in ccxt)."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ccxt.OperationFailed)


def translate(exc: BaseException, exchange_id: str, what: str) -> MarketDataError:
    """A `MarketDataError` for `exc`, raised while getting `what` (e.g. "BTC/USDT trades") from `exchange_id`."""
    detail = str(exc).removeprefix(f"{exchange_id} ").strip() or type(exc).__name__
    if isinstance(exc, MarketDataError):
        return exc
    if isinstance(exc, ccxt.BadSymbol):
        return UnknownSymbol(f"{exchange_id} does not list the market for {what}.")
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimited(
            f"{exchange_id} is rate-limiting requests for {what}; try again shortly ({detail})."
        )
    if isinstance(exc, ccxt.NetworkError):
        return FeedUnavailable(
            f"{exchange_id} cannot be reached for {what} ({type(exc).__name__}: {detail})."
        )
    if isinstance(exc, ccxt.NotSupported):
        return NotOffered(f"{exchange_id} does not offer {what} ({detail}).")
    if isinstance(exc, ccxt.OperationFailed):
        return FeedUnavailable(f"{exchange_id} failed to answer for {what}: {detail}")
    if isinstance(exc, ccxt.BaseError):
        return ExchangeRejected(f"{exchange_id} rejected the request for {what}: {detail}")
    return MarketDataError(f"Unexpected error getting {what} from {exchange_id}: {type(exc).__name__}: {exc}")
