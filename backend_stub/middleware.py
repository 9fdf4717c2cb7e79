"""ASGI middleware: the bearer-token gate (before any body is read, so every route answers 401 first),
the body limit (413 before a huge body is read, 408 for one that stalls), admission control (a bounded
number of requests at once and a short, bounded queue: 503 + Retry-After beyond it, never minutes of
queueing), and the request log (method, path without query string, status, time — never headers or tokens).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Container

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_stub.auth import AuthError, AuthUnavailable, TokenVerifier, bearer_token
from backend_stub.errors import error_response, unauthorized
from backend_stub.ratelimit import RateLimiter

log = logging.getLogger("backend_stub.access")


class BearerAuth:
    """Puts the caller's uid in `request.state.uid`; answers 401 for HTTP requests without a valid token.

    WebSockets pass through: `/v1/stream` authenticates itself (it must close with 4401, not answer 401).
    Reads (GET, HEAD) spend the caller's `read_limiter` bucket here (429 + Retry-After when empty), so one
    user's read flood is refused before it costs a store query; writes have their own bucket in the routes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        public_paths: Container[str],
        read_limiter: RateLimiter | None = None,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._public = public_paths
        self._reads = read_limiter

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
        if self._reads is not None and scope["method"] in ("GET", "HEAD"):
            wait_s = self._reads.take(uid)
            if wait_s > 0:
                retry_after = str(max(1, int(wait_s + 0.999)))
                await error_response(
                    429, f"Too many requests; try again in {retry_after} s", {"Retry-After": retry_after}
                )(scope, receive, send)
                return
        scope.setdefault("state", {})["uid"] = uid
        await self._app(scope, receive, send)


class BodyLimit:
    """At most `max_bytes` of request body: a larger `Content-Length` is answered 413 before anything is
    read, and a body sent without one (chunked) is cut off with 413 as soon as it passes the limit. A
    body that stops arriving for `read_timeout_s` is answered 408. Both close the connection, so the rest
    of what the client sends is never read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, read_timeout_s: float) -> None:
        self._app = app
        self._max = max_bytes
        self._timeout = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await _closing_error(400, "The Content-Length header is not a number")(scope, receive, send)
                return
            if int(declared) > self._max:
                await _closing_error(413, self._too_large())(scope, receive, send)
                return
        received = 0
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:  # the body is in: later calls wait for a disconnect, which has no deadline
                return await receive()
            try:
                async with asyncio.timeout(self._timeout):  # no task per call, unlike wait_for
                    message = await receive()
            except TimeoutError:
                # An HTTPException, as FastAPI re-raises those from body parsing (others become a 400).
                raise HTTPException(408, "The request body took too long to arrive", headers=CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise HTTPException(413, self._too_large(), headers=CLOSE)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        await self._app(scope, limited, send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self._max // 1024} KB"


class Admission:
    """Bounded concurrency: at most `max_in_flight` requests run at once; up to `max_queued` more wait
    for a turn, each at most `wait_s`; anything beyond is answered 503 + Retry-After at once. Offered more
    than it can serve, the API answers some requests quickly with 503 instead of all of them late.

    WebSockets (long-lived streams) and `exempt` paths (/healthz) are not counted."""

    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, max_queued: int, wait_s: float, exempt: Container[str]
    ) -> None:
        self._app = app
        self._max = max_in_flight
        self._max_queued = max_queued
        self._wait_s = wait_s
        self._exempt = exempt
        self._running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.refused = 0  # requests answered 503 (for tests and logs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        if self._running < self._max and not self._waiting:
            self._running += 1
        elif not await self._wait_turn():
            self.refused += 1
            await error_response(
                503, "The server is busy; try again in a moment", {"Retry-After": "1"}
            )(scope, receive, send)
            return
        try:
            await self._app(scope, receive, send)
        finally:
            self._release()

    async def _wait_turn(self) -> bool:
        """Wait in line for a slot (counted for us when handed over); False when the line is full or
        the wait ran out."""
        if len(self._waiting) >= self._max_queued:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), self._wait_s)
            return True
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as the wait ended: give it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(turn)
            if isinstance(exc, TimeoutError):
                return False
            raise

    def _release(self) -> None:
        self._running -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        """Hand the freed slot to the first waiter still waiting (the slot is counted for it now)."""
        while self._waiting and self._running < self._max:
            turn = self._waiting.popleft()
            if not turn.done():
                self._running += 1
                turn.set_result(None)


CLOSE = {"Connection": "close"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return None


def _closing_error(status: int, message: str) -> ASGIApp:
    return error_response(status, message, CLOSE)


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
