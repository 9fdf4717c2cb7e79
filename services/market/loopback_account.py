"""The loopback exchange's private side: signed requests, balances and a small spot matching engine.

It checks what Binance checks (X-MBX-APIKEY, hex HMAC-SHA256 `signature` over the exact query or form body,
`timestamp` within `recvWindow`, PRICE_FILTER / LOT_SIZE / NOTIONAL filters, free balance) and answers with
Binance's error codes, so ccxt raises its own exceptions (AuthenticationError, InvalidOrder,
InsufficientFunds, OrderNotFound). Market orders fill at the synthetic book's top; limit orders rest and fill
when a replayed trade reaches their price. Commission (`commission_rate`, none by default) is charged as
Binance charges it without BNB: in the asset received, base on a buy, quote on a sell. Every fill is kept
for `myTrades`, with trade ids that count up per symbol (shared by the accounts of one exchange).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from services.market.types import Tick

DEFAULT_API_KEY = "loopback-api-key"
DEFAULT_SECRET = "loopback-secret"  # noqa: S105 - a fixed test secret for a local fake exchange
_COMMISSION_QUANTUM = Decimal("0.00000001")
_DAY_MS = 86_400_000
_MY_TRADES_FILTERS = ("orderId", "fromId", "startTime", "endTime")
# The parameter combinations Binance's GET /api/v3/myTrades accepts besides `symbol` and `limit`.
_MY_TRADES_COMBINATIONS: tuple[set[str], ...] = (
    set(),
    {"orderId"},
    {"fromId"},
    {"startTime"},
    {"endTime"},
    {"startTime", "endTime"},
    {"orderId", "fromId"},
)


class ApiError(Exception):
    """A Binance error answer: HTTP status and body `{"code": code, "msg": msg}`."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def _bad(code: int, msg: str) -> ApiError:
    return ApiError(400, code, msg)


@dataclass(frozen=True, slots=True)
class SpotOrder:
    order_id: int
    client_order_id: str
    symbol: str  # exchange id, e.g. BTCUSDT
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET | LIMIT_MAKER
    price: Decimal
    quantity: Decimal
    executed: Decimal
    quote_executed: Decimal
    status: str  # NEW | FILLED | CANCELED
    time_in_force: str
    time_ms: int
    update_ms: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": f"{self.price:.8f}",
            "origQty": f"{self.quantity:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "cummulativeQuoteQty": f"{self.quote_executed:.8f}",
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.update_ms,
            "isWorking": True,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }


def trade_id_counter() -> Callable[[str], int]:
    """Binance's trade ids: one increasing sequence per symbol."""
    counters: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
    return lambda symbol_id: next(counters[symbol_id])


class SpotAccount:
    """One API key's balances, orders and fills. `top_of_book(symbol_id)` gives (bid, ask) now."""

    def __init__(
        self,
        markets: Mapping[str, dict[str, Any]],
        *,
        top_of_book: Callable[[str], tuple[float, float]],
        clock_ms: Callable[[], int],
        api_key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_SECRET,
        balances: Mapping[str, float] | None = None,
        commission_rate: Decimal = Decimal(0),
        next_trade_id: Callable[[str], int] | None = None,
    ) -> None:
        self._markets = {m["id"]: m for m in markets.values()}
        self._top = top_of_book
        self._clock_ms = clock_ms
        self.api_key, self._secret = api_key, secret.encode()
        start = balances if balances is not None else {"USDT": 100_000, "BTC": 1, "ETH": 10}
        self._free: dict[str, Decimal] = {a: Decimal(str(v)) for a, v in start.items()}
        self._locked: dict[str, Decimal] = {}
        self._orders: dict[int, SpotOrder] = {}
        self._ids = itertools.count(1)
        self._commission_rate = commission_rate
        self._next_trade_id = next_trade_id or trade_id_counter()
        self.fills: list[dict[str, Any]] = []  # myTrades rows, oldest first

    # -- authentication ------------------------------------------------------------------------------------
    def authenticate(self, api_key: str | None, payload: str) -> dict[str, str]:
        """Parameters of a signed request, or ApiError as Binance would answer it."""
        if api_key != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        body, sep, signature = payload.rpartition("signature=")
        if not sep or not signature:
            raise _bad(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        signed = body[:-1] if body.endswith("&") else body
        expected = hmac.new(self._secret, signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _bad(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(signed, keep_blank_values=True))
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            raise _bad(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        now = self._clock_ms()
        if timestamp > now + 1000 or now - timestamp > window:
            raise _bad(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # -- queries ---------------------------------------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        assets = sorted(set(self._free) | set(self._locked))
        return {
            "makerCommission": int(self._commission_rate * 10_000),  # in basis points, as Binance says it
            "takerCommission": int(self._commission_rate * 10_000),
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "updateTime": self._clock_ms(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": a,
                    "free": f"{self._free.get(a, Decimal(0)):.8f}",
                    "locked": f"{self._locked.get(a, Decimal(0)):.8f}",
                }
                for a in assets
            ],
            "permissions": ["SPOT"],
        }

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._find(params)
        if order is None:
            raise _bad(-2013, "Order does not exist.")
        return order.to_wire()

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol is not None:
            self._market(symbol)
        return [
            o.to_wire()
            for o in self._orders.values()
            if o.status == "NEW" and (symbol is None or o.symbol == symbol)
        ]

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol", "")
        self._market(symbol)
        return [o.to_wire() for o in self._orders.values() if o.symbol == symbol]

    def my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Binance's rules: the most recent `limit` trades (500, at most 1000) unless `fromId` (trades from
        that id on) or a time (from `startTime`, up to `endTime`, at most 24 hours apart); oldest first."""
        symbol = params.get("symbol", "")
        self._market(symbol)
        given = {k for k in _MY_TRADES_FILTERS if k in params}
        if given not in _MY_TRADES_COMBINATIONS:
            raise _bad(-1128, "Combination of optional parameters invalid.")
        limit = self._integer(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise _bad(-1100, "Illegal characters found in parameter 'limit'; legal range is '1'..'1000'.")
        rows = [f for f in self.fills if f["symbol"] == symbol]
        if "orderId" in params:
            order_id = self._integer(params, "orderId", 0)
            rows = [f for f in rows if f["orderId"] == order_id]
        if "fromId" in params:
            from_id = self._integer(params, "fromId", 0)
            return [f for f in rows if f["id"] >= from_id][:limit]
        if "startTime" in params:
            start = self._integer(params, "startTime", 0)
            end = self._integer(params, "endTime", start + _DAY_MS)
            if end - start > _DAY_MS:
                raise _bad(-1127, "More than 24 hours between startTime and endTime.")
            return [f for f in rows if start <= f["time"] <= end][:limit]
        if "endTime" in params:
            end = self._integer(params, "endTime", 0)
            rows = [f for f in rows if f["time"] <= end]
        return rows[-limit:]

    # -- orders ----------------------------------------------------------------------------------------------
    def place(self, params: Mapping[str, str]) -> dict[str, Any]:
        market = self._market(params.get("symbol", ""))
        side, kind = params.get("side", "").upper(), params.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise _bad(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise _bad(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"loopback-{next(self._ids)}"
        if any(o.client_order_id == client_id and o.status == "NEW" for o in self._orders.values()):
            raise _bad(-2010, "Duplicate order sent.")
        bid, ask = self._top(market["id"])
        touch = Decimal(str(ask if side == "BUY" else bid))
        quantity = self._decimal(
            params, "quantity", required=kind != "MARKET" or "quoteOrderQty" not in params
        )
        if kind == "MARKET" and quantity is None:
            quote = self._decimal(params, "quoteOrderQty", required=True)
            assert quote is not None
            step = Decimal(str(market["precision"]["amount"]))
            quantity = (quote / touch // step) * step
        assert quantity is not None
        price = touch if kind == "MARKET" else self._decimal(params, "price", required=True)
        assert price is not None
        self._check_filters(market, kind, price, quantity)
        marketable = (side == "BUY" and price >= touch) or (side == "SELL" and price <= touch)
        if kind == "LIMIT_MAKER" and marketable:
            raise _bad(-2010, "Order would immediately match and take.")
        base, quote_asset = market["base"], market["quote"]
        fill_price = touch if marketable else price
        cost_asset, cost = (quote_asset, quantity * price) if side == "BUY" else (base, quantity)
        if self._free.get(cost_asset, Decimal(0)) < cost:
            raise _bad(-2010, "Account has insufficient balance for requested action.")
        now = self._clock_ms()
        order = SpotOrder(
            order_id=next(self._ids),
            client_order_id=client_id,
            symbol=market["id"],
            side=side,
            type=kind,
            price=Decimal(0) if kind == "MARKET" else price,
            quantity=quantity,
            executed=Decimal(0),
            quote_executed=Decimal(0),
            status="NEW",
            time_in_force=params.get("timeInForce", "GTC") if kind != "MARKET" else "GTC",
            time_ms=now,
            update_ms=now,
        )
        self._move(cost_asset, cost, lock=True)
        self._orders[order.order_id] = order
        fills: list[dict[str, Any]] = []
        if marketable:
            order, fill = self._fill(order, fill_price, maker=False)
            fills.append(fill)
        return order.to_wire() | {"transactTime": now, "fills": fills}

    def cancel(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._market(params.get("symbol", ""))
        order = self._find(params)
        if order is None or order.status != "NEW":
            raise _bad(-2011, "Unknown order sent.")
        market = self._markets[order.symbol]
        asset, amount = (
            (market["quote"], order.quantity * order.price)
            if order.side == "BUY"
            else (market["base"], order.quantity)
        )
        self._move(asset, amount, lock=False)
        cancelled = replace(order, status="CANCELED", update_ms=self._clock_ms())
        self._orders[order.order_id] = cancelled
        return cancelled.to_wire() | {
            "origClientOrderId": order.client_order_id,
            "transactTime": self._clock_ms(),
        }

    def on_trades(self, symbol_id: str, ticks: list[Tick]) -> None:
        """Fill resting limit orders that the replayed trades reached."""
        for order in list(self._orders.values()):
            if order.symbol != symbol_id or order.status != "NEW":
                continue
            for tick in ticks:
                price = Decimal(str(tick.price))
                if (order.side == "BUY" and price <= order.price) or (
                    order.side == "SELL" and price >= order.price
                ):
                    self._fill(order, order.price, maker=True)
                    break

    # -- internals -------------------------------------------------------------------------------------------
    def _market(self, symbol_id: str) -> dict[str, Any]:
        market = self._markets.get(symbol_id)
        if market is None:
            raise _bad(-1121, "Invalid symbol.")
        return market

    def _find(self, params: Mapping[str, str]) -> SpotOrder | None:
        if "orderId" in params:
            try:
                return self._orders.get(int(params["orderId"]))
            except ValueError:
                return None
        client_id = params.get("origClientOrderId")
        matches = [o for o in self._orders.values() if o.client_order_id == client_id]
        return matches[-1] if matches else None

    @staticmethod
    def _integer(params: Mapping[str, str], name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise _bad(-1100, f"Illegal characters found in parameter '{name}'.") from None

    @staticmethod
    def _decimal(params: Mapping[str, str], name: str, *, required: bool) -> Decimal | None:
        raw = params.get(name)
        if raw is None:
            if required:
                raise _bad(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise _bad(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
            ) from None
        if not value.is_finite() or value <= 0:
            raise _bad(-1013, f"Invalid {name}.")
        return value

    @staticmethod
    def _check_filters(market: dict[str, Any], kind: str, price: Decimal, quantity: Decimal) -> None:
        tick = Decimal(str(market["precision"]["price"]))
        step = Decimal(str(market["precision"]["amount"]))
        limits = market["limits"]
        if kind != "MARKET" and price % tick != 0:
            raise _bad(-1013, "Filter failure: PRICE_FILTER")
        min_qty = Decimal(str(limits["amount"]["min"] or step))
        max_qty = Decimal(str(limits["amount"]["max"] or "9000000"))
        if quantity % step != 0 or not min_qty <= quantity <= max_qty:
            raise _bad(-1013, "Filter failure: LOT_SIZE")
        if quantity * price < Decimal(str(limits["cost"]["min"] or 0)):
            raise _bad(-1013, "Filter failure: NOTIONAL")

    def _move(self, asset: str, amount: Decimal, *, lock: bool) -> None:
        src, dst = (self._free, self._locked) if lock else (self._locked, self._free)
        src[asset] = src.get(asset, Decimal(0)) - amount
        dst[asset] = dst.get(asset, Decimal(0)) + amount

    def _fill(self, order: SpotOrder, price: Decimal, *, maker: bool) -> tuple[SpotOrder, dict[str, Any]]:
        market = self._markets[order.symbol]
        base, quote = market["base"], market["quote"]
        qty, notional = order.quantity, order.quantity * price
        # Commission comes out of what the trader receives: the coin on a buy, the quote on a sell.
        received, commission_asset = (qty, base) if order.side == "BUY" else (notional, quote)
        commission = (received * self._commission_rate).quantize(_COMMISSION_QUANTUM)
        if order.side == "BUY":
            reserved = qty * (order.price if order.type != "MARKET" else price)
            self._locked[quote] -= reserved
            self._free[quote] = self._free.get(quote, Decimal(0)) + reserved - notional
            self._free[base] = self._free.get(base, Decimal(0)) + qty - commission
        else:
            self._locked[base] -= qty
            self._free[quote] = self._free.get(quote, Decimal(0)) + notional - commission
        now = self._clock_ms()
        filled = replace(order, executed=qty, quote_executed=notional, status="FILLED", update_ms=now)
        self._orders[order.order_id] = filled
        trade_id = self._next_trade_id(order.symbol)
        fill = {
            "price": f"{price:.8f}",
            "qty": f"{qty:.8f}",
            "commission": f"{commission:.8f}",
            "commissionAsset": commission_asset,
            "tradeId": trade_id,
        }
        self.fills.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": fill["price"],
                "qty": fill["qty"],
                "quoteQty": f"{notional:.8f}",
                "commission": fill["commission"],
                "commissionAsset": commission_asset,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )
        return filled, fill
