"""ASGI middleware: the bearer-token gate (before any body is read, so every route answers 401 first)
and the request log (method, path without query string, status, time — never headers or tokens)."""

from __future__ import annotations

import logging
import time
from collections.abc import Container

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_stub.auth import AuthError, AuthUnavailable, TokenVerifier, bearer_token
from backend_stub.errors import error_response, unauthorized

log = logging.getLogger("backend_stub.access")


class BearerAuth:
    """Puts the caller's uid in `request.state.uid`; answers 401 for HTTP requests without a valid token.

    WebSockets pass through: `/v1/stream` authenticates itself (it must close with 4401, not answer 401).
    """

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, public_paths: Container[str]) -> None:
        self._app = app
        self._verifier = verifier
        self._public = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public:
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            raw = headers.get(b"authorization")
            uid = await self._verifier.verify(bearer_token(raw.decode("latin-1") if raw else None))
        except AuthError as exc:
            await unauthorized(str(exc))(scope, receive, send)
            return
        except AuthUnavailable as exc:
            await error_response(503, str(exc), {"Retry-After": "5"})(scope, receive, send)
            return
        scope.setdefault("state", {})["uid"] = uid
        await self._app(scope, receive, send)


class AccessLog:
    """One line per request; the query string is left out (a browser's stream URL carries `?token=`)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await self._app(scope, receive, send_logged)
        finally:
            method = scope.get("method", "WS")
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %s %.1fms", method, scope["path"], status or "-", elapsed_ms)


class RedactQuery(logging.Filter):
    """Drops query strings from uvicorn's own log lines (its WebSocket lines include them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] if isinstance(a, str) and "?" in a and a.startswith("/") else a
                for a in record.args
            )
        return True
