"""Binance spot wire shapes (REST bodies and websocket frames) built from replayed market data.

Only the loopback exchange uses these; the field names are Binance's, so ccxt's own parser reads them.
"""

from __future__ import annotations

import random
from typing import Any

from services.market.markets import decimals, round_to_step
from services.market.types import Candle, Tick

BOOK_LEVELS = 20


def num(value: float, step: float | None = None) -> str:
    """A decimal string as Binance sends it ("97250.01000000"); at least the step's digits, at most 8."""
    places = max(8, decimals(step)) if step else 8
    return f"{value:.{places}f}"


def symbol_info(market: dict[str, Any]) -> dict[str, Any]:
    """One `exchangeInfo.symbols[]` entry with the filters ccxt derives precision and limits from."""
    precision, limits = market["precision"], market["limits"]
    tick, step = precision["price"], precision["amount"]
    return {
        "symbol": market["id"],
        "status": "TRADING",
        "baseAsset": market["base"],
        "baseAssetPrecision": 8,
        "quoteAsset": market["quote"],
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(limits["price"]["min"] or tick),
                "maxPrice": num(limits["price"]["max"] or 1_000_000),
                "tickSize": num(tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": num(limits["amount"]["min"] or step),
                "maxQty": num(limits["amount"]["max"] or 9_000_000),
                "stepSize": num(step),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": num(limits["cost"]["min"] or 0.0),
                "applyMinToMarket": True,
                "maxNotional": num(limits["cost"]["max"] or 9_000_000),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def agg_trade(trade_id: int, tick: Tick) -> dict[str, Any]:
    """`GET /api/v3/aggTrades` row; `m` (buyer is maker) is true when the taker sold."""
    return {
        "a": trade_id,
        "p": num(tick.price),
        "q": num(tick.amount),
        "f": trade_id,
        "l": trade_id,
        "T": tick.timestamp_ms,
        "m": tick.side == "sell",
        "M": True,
    }


def recent_trade(trade_id: int, tick: Tick) -> dict[str, Any]:
    """`GET /api/v3/trades` row."""
    return {
        "id": trade_id,
        "price": num(tick.price),
        "qty": num(tick.amount),
        "quoteQty": num(tick.price * tick.amount),
        "time": tick.timestamp_ms,
        "isBuyerMaker": tick.side == "sell",
        "isBestMatch": True,
    }


def trade_frame(market_id: str, trade_id: int, tick: Tick, event_ms: int) -> dict[str, Any]:
    """`<symbol>@trade` stream event."""
    return {
        "e": "trade",
        "E": event_ms,
        "s": market_id,
        "t": trade_id,
        "p": num(tick.price),
        "q": num(tick.amount),
        "T": tick.timestamp_ms,
        "m": tick.side == "sell",
        "M": True,
    }


def kline_row(candle: Candle, frame_ms: int) -> list[Any]:
    return [
        candle.timestamp_ms,
        num(candle.open),
        num(candle.high),
        num(candle.low),
        num(candle.close),
        num(candle.volume),
        candle.timestamp_ms + frame_ms - 1,
        num(candle.volume * candle.close),
        0,
        "0",
        "0",
        "0",
    ]


def kline_frame(
    market_id: str, interval: str, candle: Candle, frame_ms: int, event_ms: int, *, closed: bool
) -> dict[str, Any]:
    """`<symbol>@kline_<interval>` stream event."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": market_id,
        "k": {
            "t": candle.timestamp_ms,
            "T": candle.timestamp_ms + frame_ms - 1,
            "s": market_id,
            "i": interval,
            "f": 0,
            "L": 0,
            "o": num(candle.open),
            "c": num(candle.close),
            "h": num(candle.high),
            "l": num(candle.low),
            "v": num(candle.volume),
            "n": 0,
            "x": closed,
            "q": num(candle.volume * candle.close),
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def ticker_24hr(market_id: str, ticker: dict[str, Any], book: Book) -> dict[str, Any]:
    """`GET /api/v3/ticker/24hr` body (the replay's window stands in for 24 h)."""
    now = ticker["timestamp"]
    return {
        "symbol": market_id,
        "priceChange": num(ticker["change"]),
        "priceChangePercent": f"{ticker['percentage']:.3f}",
        "weightedAvgPrice": num(ticker["vwap"] or ticker["last"]),
        "prevClosePrice": num(ticker["open"]),
        "lastPrice": num(ticker["last"]),
        "lastQty": "0",
        "bidPrice": num(book.bids[0][0]),
        "bidQty": num(book.bids[0][1]),
        "askPrice": num(book.asks[0][0]),
        "askQty": num(book.asks[0][1]),
        "openPrice": num(ticker["open"]),
        "highPrice": num(ticker["high"]),
        "lowPrice": num(ticker["low"]),
        "volume": num(ticker["baseVolume"]),
        "quoteVolume": num(ticker["quoteVolume"]),
        "openTime": now - ticker["info"]["window_ms"],
        "closeTime": now,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }


def ticker_frame(market_id: str, body: dict[str, Any], event_ms: int, *, mini: bool) -> dict[str, Any]:
    """`@miniTicker` or `@ticker` stream event from a `ticker_24hr` body."""
    frame = {
        "e": "24hrMiniTicker" if mini else "24hrTicker",
        "E": event_ms,
        "s": market_id,
        "c": body["lastPrice"],
        "o": body["openPrice"],
        "h": body["highPrice"],
        "l": body["lowPrice"],
        "v": body["volume"],
        "q": body["quoteVolume"],
    }
    if not mini:
        frame |= {
            "p": body["priceChange"],
            "P": body["priceChangePercent"],
            "w": body["weightedAvgPrice"],
            "b": body["bidPrice"],
            "B": body["bidQty"],
            "a": body["askPrice"],
            "A": body["askQty"],
            "O": body["openTime"],
            "C": body["closeTime"],
        }
    return frame


class Book:
    """A synthetic order book around a price: `BOOK_LEVELS` levels a side, sizes a pure function of the level."""

    def __init__(self, symbol: str, price: float, tick: float, step: float) -> None:
        gap = max(tick, round_to_step(price * 0.00005, tick))
        best_bid = round_to_step(price - tick, tick)
        best_ask = round_to_step(price + tick, tick)

        def size(level_price: float) -> float:
            rng = random.Random(f"{symbol}:{level_price}")
            return max(step, round_to_step(rng.uniform(200, 20_000) / price, step))

        self.bids = [
            (b, size(b)) for b in (round_to_step(best_bid - i * gap, tick) for i in range(BOOK_LEVELS))
        ]
        self.asks = [
            (a, size(a)) for a in (round_to_step(best_ask + i * gap, tick) for i in range(BOOK_LEVELS))
        ]

    def diff(self, newer: Book) -> tuple[list[list[str]], list[list[str]]]:
        """(bids, asks) deltas turning this book into `newer`: removed levels carry quantity "0"."""
        return _side_diff(self.bids, newer.bids), _side_diff(self.asks, newer.asks)


def _side_diff(old: list[tuple[float, float]], new: list[tuple[float, float]]) -> list[list[str]]:
    before, after = dict(old), dict(new)
    out = [[num(p), "0.00000000"] for p in before if p not in after]
    out += [[num(p), num(q)] for p, q in after.items() if before.get(p) != q]
    return out
