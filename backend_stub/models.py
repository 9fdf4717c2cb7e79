"""Pydantic models at the API edge: what a request body may hold, and how its JSON is read (numbers as
exact decimals). Market rules live in `validation`.

Strict on purpose: a field the API does not know is refused (422 naming it), never dropped, since a
dropped `postOnly` or `reduceOnly` changes what the order does. Numbers are JSON numbers, read as
`Decimal` from the body's own digits (`DecimalJSONRoute`), or text of ASCII digits: "0.00_1", Arabic-Indic
digits, signs like "+1" and surrounding spaces are refused rather than read as some other number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, MutableMapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
)
from starlette.requests import ClientDisconnect

from backend_stub.brokers.base import OrderRequest

_LARGEST = Decimal("1e15")
_FINEST_EXPONENT = -18
_DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_SYMBOL = r"^[A-Za-z0-9._\-]{1,24}/[A-Za-z0-9._\-]{1,24}(?::[A-Za-z0-9._\-]{1,24})?$"
_KEY = r"^[A-Za-z0-9._:\-]+$"


def _strict_number(value: Any) -> Any:
    """JSON numbers (already `Decimal`) pass; text must be plain ASCII decimal notation."""
    if isinstance(value, bool):  # True is an int to Python, not a number to a trader
        raise ValueError("must be a number")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    if isinstance(value, Decimal | int):
        return value
    if isinstance(value, float):  # only when a body was parsed elsewhere: its shortest exact text
        return Decimal(repr(value))
    if isinstance(value, str) and value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ValueError("must be a finite number")
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    raise ValueError("must be a number")


def _sane(value: Decimal) -> Decimal:
    # Finite but absurd numbers ("1e400") would overflow Decimal arithmetic later: refuse them here.
    if abs(value) >= _LARGEST:
        raise ValueError("is out of range (too large)")
    if value != 0 and value.as_tuple().exponent < _FINEST_EXPONENT:  # type: ignore[operator]
        raise ValueError(f"has more than {-_FINEST_EXPONENT} decimal places")
    return value


# JSON numbers or numeric text; NaN and ±Infinity are refused here (before any arithmetic).
Number = Annotated[Decimal, BeforeValidator(_strict_number), AfterValidator(_sane)]


class OrderIn(BaseModel):
    """Body of `POST /v1/orders` (ccxt's createOrder arguments plus the order options ccxt names)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=74, pattern=_SYMBOL, description='ccxt symbol, e.g. "BTC/USDT"')
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop_market", "stop_limit", "trailing_stop", "oco"]
    amount: Number = Field(description="base-currency amount, on the market's step")
    price: Number | None = Field(default=None, description="limit price (limit, stop_limit, an oco's limit leg)")
    stopPrice: Number | None = Field(
        default=None, description="trigger price (stop_market, stop_limit, an oco's stop leg)"
    )
    trailingPercent: Number | None = Field(
        default=None, description="trailing_stop: how far (%) behind the best price since placement it fires"
    )
    timeInForce: Literal["GTC", "IOC", "FOK"] = Field(
        default="GTC", description="market and limit: GTC rests, IOC cancels what does not trade at once, FOK all or nothing"
    )
    postOnly: StrictBool = Field(
        default=False, description="limit only: refused (422) when it would trade at once"
    )
    takeProfitPrice: Number | None = Field(
        default=None, description="bracket: once the entry fills, a limit exit of the filled amount here"
    )
    stopLossPrice: Number | None = Field(
        default=None, description="bracket: once the entry fills, a stop exit here (with a take-profit: an OCO)"
    )
    clientOrderId: str = Field(
        min_length=1,
        max_length=64,
        pattern=_KEY,
        description="idempotency key: retries with the same key never make a second order",
    )

    def to_request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            price=self.price,
            stop_price=self.stopPrice,
            trailing_percent=self.trailingPercent,
            time_in_force=self.timeInForce,
            post_only=self.postOnly,
            take_profit_price=self.takeProfitPrice,
            stop_loss_price=self.stopLossPrice,
            client_order_id=self.clientOrderId,
        )


class AlertIn(BaseModel):
    """Body of `POST /v1/alerts`: tell me when `symbol` trades at `price`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=74, pattern=_SYMBOL, description='ccxt symbol, e.g. "BTC/USDT"')
    price: Number = Field(description="the level; above the last price it fires on a rise, below it on a fall")
    note: str = Field(default="", max_length=140, description="the trader's own words, shown when it fires")
    clientAlertId: str = Field(
        min_length=1,
        max_length=64,
        pattern=_KEY,
        description="idempotency key and the alert's id: retries with the same key never make a second alert",
    )


class ErrorOut(BaseModel):
    """Every error response: one readable sentence."""

    error: str


_DECIMAL_JSON = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)


class DecimalJSONRequest(Request):
    """A request whose JSON numbers are read as `Decimal` from their own digits (never through float)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            # NaN / Infinity become Decimal NaN / Infinity, which `Number` refuses as "not finite". What
            # `json.loads(body, parse_float=...)` does, without building a decoder for every request.
            self._json = _DECIMAL_JSON.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
        return self._json


class DecimalJSONRoute(APIRoute):
    """Route class that hands endpoints a `DecimalJSONRequest` (FastAPI's documented custom-request hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler


class LeanJSONRoute(DecimalJSONRoute):
    """For the hottest write (`POST /v1/orders`): a well-formed request is served without FastAPI's
    per-request machinery (the dependency solve, the body's content-type parse through `email.message`,
    the response model's validation pass), which cost about a quarter of the event loop's time per order.

    The endpoint must take the body model, `Request` and `Response` only, and return a JSON-able dict.
    Fast path: a non-empty body with `Content-Type: application/json` whose JSON (numbers as decimals) is
    an object the model accepts; the answer's bytes are orjson's (the same bytes as pydantic's
    `dump_json`). Anything else — no or another content type, bad JSON, a refused field — goes FastAPI's
    own way with the body already read, so every error is answered exactly as before."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        generic = APIRoute.get_route_handler(self)
        dependant = self.dependant
        (body_param,) = dependant.body_params
        model: type[BaseModel] = body_param.field_info.annotation  # type: ignore[assignment]
        names = (body_param.name, dependant.request_param_name, dependant.response_param_name)
        if None in names or dependant.dependencies or len(dependant.query_params + dependant.header_params
                                                            + dependant.path_params + dependant.cookie_params):
            raise TypeError(f"{self.path}: a lean route takes (body, request, response) only")
        body_name, request_name, response_name = (str(name) for name in names)
        endpoint = dependant.call
        assert endpoint is not None
        default_status = self.status_code or 200
        response_field = self.response_field

        async def lean_handler(request: Request) -> Response:
            decimal_request = DecimalJSONRequest(request.scope, request.receive)
            data = await _json_object(decimal_request)
            parsed = None
            if data is not None:
                try:
                    parsed = model.model_validate(data)
                except ValidationError:
                    pass  # FastAPI's way names the refused fields
            if parsed is None:
                return await generic(decimal_request)
            response = Response()  # what the endpoint may set: its status code and headers
            response.status_code = None  # type: ignore[assignment]
            del response.headers["content-length"]
            result = await endpoint(**{body_name: parsed, request_name: decimal_request, response_name: response})
            try:
                content = orjson.dumps(result)
            except TypeError:  # not plain JSON (a Decimal, a big int): the response model's serializer
                assert response_field is not None
                content = response_field.serialize_json(result)
            answer = Response(content, status_code=response.status_code or default_status,
                              media_type="application/json")
            answer.headers.raw.extend(response.headers.raw)
            return answer

        return lean_handler


async def _json_object(request: DecimalJSONRequest) -> dict[str, Any] | None:
    """The body as a JSON object when it is one sent as `application/json`, else None (its bytes are kept
    on the request, so FastAPI's way reads them again without the client)."""
    receive = request.receive
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body: bytes = message.get("body", b"")
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        body += message.get("body", b"")
    request._body = body
    if not body or _content_type(request.scope) != b"application/json":
        return None
    try:
        data = await request.json()
    except ValueError:  # JSONDecodeError, or bytes that are not text: FastAPI's way answers it
        return None
    return data if type(data) is dict else None


def _content_type(scope: MutableMapping[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).lower()
    return None
