"""Errors as JSON `{"error": "<one readable sentence>"}`: the exception handlers of the app.

Request validation errors never echo the input back (it may hold NaN, which JSON cannot carry, or a
secret pasted in the wrong field). Every message goes out through `plain()`: where one names what the
caller sent (an order id, a field name), control and bidirectional-override characters are replaced, so
an error cannot rewrite how a log line or the app's error text reads.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend_stub.auth import AuthError
from backend_stub.brokers.base import BrokerError
from backend_stub.store.base import StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with `status` and `message`."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


MAX_MESSAGE = 300  # characters: an error is one sentence


def plain(message: str) -> str:
    """`message` with control, format (bidi overrides, zero-width) and separator characters replaced by
    "?", and cut to `MAX_MESSAGE` characters."""
    if message.isprintable() and len(message) <= MAX_MESSAGE:
        return message
    cleaned = "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else "?" for ch in message[:MAX_MESSAGE]
    )
    return cleaned if len(message) <= MAX_MESSAGE else cleaned[: MAX_MESSAGE - 1] + "…"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": plain(message)}, status_code=status, headers=headers)


def unauthorized(message: str) -> JSONResponse:
    return error_response(401, message, {"WWW-Authenticate": "Bearer"})


# Request fields as a trader names them (the API's own names stay for ids a trader never types).
FIELD_WORDS = {
    "symbol": "Symbol",
    "side": "Side",
    "type": "Order type",
    "amount": "Amount",
    "price": "Price",
    "stopPrice": "Stop price",
    "trailingPercent": "Trailing percent",
    "timeInForce": "Time in force",
    "postOnly": "Post-only",
    "takeProfitPrice": "Take-profit price",
    "stopLossPrice": "Stop-loss price",
    "note": "Note",
    "status": "Status",
    "limit": "Limit",
}
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}", re.ASCII)


def describe_validation(errors: list[Any]) -> str:
    """Pydantic errors → "Amount must be a number; Side must be buy or sell", without the input (a field
    name the API does not know is named only when it is a plain identifier)."""
    parts = []
    for error in errors[:5]:
        kind = error.get("type", "")
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        if kind == "json_invalid":
            return "The request body is not valid JSON"
        if kind == "missing" and not loc:
            return "The request needs a JSON body"
        if kind == "model_attributes_type" or (kind == "dict_type" and not loc):
            return "The request body must be a JSON object (Content-Type: application/json)"
        name = ".".join(loc)
        if kind == "extra_forbidden":
            shown = name if _SAFE_NAME.fullmatch(name) else "(a name that is not shown)"
            parts.append(f"Unknown field {shown}: the API does not take it, so nothing was done")
            continue
        label = FIELD_WORDS.get(name, name or "The request")
        parts.append(f"{label} {_problem(kind, error)}")
    return "; ".join(parts) or "The request is invalid"


def _problem(kind: str, error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("decimal_parsing", "decimal_type", "float_parsing", "float_type"):
        return "must be a number"
    if kind == "literal_error":
        return "must be " + str(ctx.get("expected", "one of the listed values")).replace("'", "")
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return "has characters it may not hold"
    if kind == "string_type":
        return "must be text"
    return str(error.get("msg", "is invalid")).removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, describe_validation(list(exc.errors())))

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(BrokerError)
    async def _broker(_: Request, exc: BrokerError) -> JSONResponse:
        return error_response(exc.status_code, str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return unauthorized(str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route"
        elif exc.status_code == 405:
            message = "Method not allowed on this route"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("state store error: %s", exc)
        return error_response(503, "The state store is unavailable; try again")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "Internal error; the request may be retried")
