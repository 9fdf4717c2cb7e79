"""The HTTP edge under the app: uvicorn with a protocol that bounds what a connection may send before the
app sees a request — the request head's size (431) and the time it may take to arrive (408).

Neither uvicorn's httptools protocol nor llhttp limits the head: a 64 MB `Authorization` header was
parsed in full (seconds of CPU on the event loop, so `/healthz` stalled with it), and a connection that
sends a header byte every few seconds was kept forever (uvicorn's keep-alive timer only runs between
requests). `h11_max_incomplete_event_size` covers the size only with the slower h11 parser, and nothing
covers the time, so the guard sits here, counting bytes before they reach the parser. Bodies are limited
in the ASGI middleware (`middleware.BodyLimit`), where the declared length and the route are known.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend_stub.gateway.wire import GatewayWebSocketProtocol
from backend_stub.settings import Settings

LINGER_S = 2.0  # after refusing a request, how long what the client still sends is read and dropped
LINGER_BYTES = 1024 * 1024  # ... and how much of it, before the connection is cut


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with a limit on the request head: at most `max_header_bytes` (request line
    and headers) within `header_timeout_s` of its first byte (or of the connection, for the first).

    A connection closed after a refusal (431, 408, or the app's 413 with `Connection: close`) closes
    lingering: our side is shut for writing after the answer, and what the client is still sending is
    dropped for a moment. Closing at once with unread data makes the kernel send a reset, and the
    client then loses the answer it had not read yet."""

    max_header_bytes = 16 * 1024
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._dropping = False
        self._dropped = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.abort()
            return
        if not self._in_head:
            super().data_received(data)
            return
        if self._head_timer is None:  # the first byte of a request on a kept-alive connection
            self._arm_head_timer()
        room = self.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Feed only what the head may still hold; the rest once we know the head ended within it (it may
        # be the body, which is not counted here).
        self._head_bytes += room
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(431, "The request headers are too large")
            return
        self.data_received(data[room:])

    # parser callbacks ---------------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:
            # The cycle closes its transport after a `Connection: close` answer: make that close linger.
            self.cycle.transport = _LingeringClose(self.transport, self)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's head.
        self._in_head = True
        self._head_bytes = 0

    # the guard --------------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                self._refuse(408, "The request headers took too long to arrive")
            else:
                self.transport.close()  # an idle connection: nothing to answer

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with our JSON error and close: the rest of what was sent is never parsed."""
        self._cancel_head_timer()
        body = json.dumps({"error": message}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.close_lingering()

    def close_lingering(self) -> None:
        """Shut our side once the answer is sent; drop what still arrives for `LINGER_S`, then close."""
        transport = self.transport
        if transport.is_closing() or self._dropping:
            return
        self._dropping = True
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        with contextlib.suppress(RuntimeError):
            transport.resume_reading()  # reading may be paused by flow control
        self._linger_timer = self.loop.call_later(LINGER_S, transport.close)


class _LingeringClose:
    """The connection's transport as one request's cycle sees it: `close()` lingers (see above)."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_lingering()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(settings: Settings) -> type[GuardedHttpProtocol]:
    """The protocol class with the settings' limits (uvicorn builds one instance per connection)."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"max_header_bytes": settings.max_header_bytes, "header_timeout_s": settings.header_timeout_s},
    )


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn configuration the backend runs with (`python -m backend_stub`, tests, benches)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": guarded_protocol(settings),
        "ws": GatewayWebSocketProtocol,  # uvicorn's websockets protocol + frames written once for many (gateway)
        "access_log": False,  # our AccessLog replaces uvicorn's, which prints query strings (?token=)
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 5,
        "timeout_keep_alive": 5,
        "ws_max_size": 64 * 1024,  # a stream client sends nothing big
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run(app: Any, settings: Settings) -> None:
    """Serve `app` until stopped (`python -m backend_stub`, the worker process).

    First everything imported and built so far (modules, classes, the app and its routes: ~78,000
    objects) is moved out of the cyclic garbage collector's sight (`gc.freeze`). They live as long as the
    process, yet every full collection walked them all: 30-200 ms during which no request moved, the
    bulk of the p99 at 1,000 orders/s. Garbage made later is collected as before, but the youngest
    generation is collected after 5,000 net allocations instead of 700: most of a request's objects die
    by reference count before that, so a POST's share of collecting went from ~10 to ~2 us (measured at
    150/s), for pauses of ~1 ms instead of ~0.2 ms every few hundred requests."""
    gc.freeze()
    gc.set_threshold(5_000, 10, 10)
    uvicorn.Server(uvicorn_config(app, settings)).run()


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_lines() -> None:
    """The server's logging (`python -m backend_stub`, the worker): INFO and up to stderr as `LOG_FORMAT`.

    One line per request is logged, so this is paid a thousand times a second under load. Records hold
    only what our lines show (time, level, logger, message): no caller's file and line (a walk up the
    stack for every record), thread or process, as the logging docs' "Optimization" section advises; the
    time stamp's text is made once a second (`LineFormatter`). A line costs ~6 us (0.7% of an order's CPU);
    writing a loop turn's lines together cost more than it saved at 150 req/s (one line per turn)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(LineFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


class LineFormatter(logging.Formatter):
    """`logging.Formatter` whose default time stamp (`2026-12-01 20:41:07,123`) formats the date and time
    once per second, not per record (`time.strftime` was a fifth of a request line's cost)."""

    _stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._stamp
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamp = (second, text)  # one tuple: another thread reads a whole pair
        msec_format = self.default_msec_format
        return msec_format % (text, record.msecs) if msec_format else text
