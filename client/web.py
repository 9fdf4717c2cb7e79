"""The hosted web app's server: Flet's FastAPI app, made to work offline for real and to end its sessions,
plus a loopback-only health endpoint; run by uvicorn, announcing its URL only once it answers.

- Offline: Flet's web client (`main.dart.js` / `main.dart.wasm`) asks a CDN (jsDelivr) for the Rive
  animation runtime, `rive_native.js`, even with `no_cdn`. Skeet draws no Rive animation, so the CDN prefix is
  rewritten, byte for byte the same length, to a local path (`RIVE_PATH`) whose script registers a runtime
  that never finishes loading: what happens today offline, minus the request and its console error.
- Sessions: a tab that closes (or navigates away, or reloads) tells the server so, closing its socket with
  code 1001 "going away"; its session ends at once, so its memory is back before the next tabs want it.
  A connection that drops without a word may come back (a network blip): its Flet session is evicted after
  `SESSION_TIMEOUT_S` (Flet's default is an hour), which fires the page's close event and so ends the
  Skeet session. Flet 1.0.5 never disconnects a
  session whose socket fails while it sends (`FletApp.handle` raises before `disconnect_session`): such a
  session would live, stream and repaint forever. `SkeetFletApp` disconnects it itself, and drops a message
  sent in the moment between the socket's end and the disconnect (Flet's send queue is already None then:
  the `'NoneType' object has no attribute 'put_nowait'` repaint failures).
- `GET /_skeet/health` (answers only to loopback clients): open sessions, their tasks, shared markets (one
  feed and one engine each) and their subscriptions, every asyncio task of the process, its RSS and (on
  jemalloc) the heap's allocated and active bytes, for the soak test and an operator's curl. With
  `SKEET_DEBUG_MEMORY=1` (never in production), `GET /_skeet/health/memory` adds what a leak hunt needs
  (`client.sessions.memory_report`; `?trace=start` / `?trace=stop`: what a window of sessions left alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import flet as ft
import flet_web.fastapi as flet_fastapi
import httpx
import msgpack
import uvicorn
from fastapi import Request, Response, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from flet.messaging.protocol import Message, configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet_web import get_package_web_dir
from starlette.websockets import WebSocketDisconnect

from client.hub import MarketHub
from client.sessions import DEBUG_ENV, SessionRegistry, jemalloc_stats, memory_report, trace_survivors
from services.auth.devtoken import state_dir

log = logging.getLogger(__name__)

SESSION_TIMEOUT_S = 12  # Flet evicts every 10 s: a dropped connection's session ends 12-22 s after it went away
GOING_AWAY = 1001  # the websocket close code a browser sends when its page unloads (RFC 6455 §7.4.1)
CLOSE_READ_S = 1.0  # how long a socket Flet gave up on may take to say how it closed
RIVE_CDN = b"https://cdn.jsdelivr.net/npm/@rive-app/flutter-native-wasm@44.0.0/"
RIVE_PATH = b"/_skeet/offline/rive/"
RIVE_STUB = ("// Skeet shows no Rive animation: a runtime that never finishes loading, as when the CDN is out of "
             "reach,\n// without asking it.\nwindow.RiveNative = () => new Promise(() => {});\n")
PATCHED = ("main.dart.js", "main.dart.wasm")
HEALTH_PATH = "/_skeet/health"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
ENCODE = configure_encode_object_for_msgpack(ft.BaseControl)  # what Flet's send_message encodes with
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin"}


def offline_web_client(cache_dir: Path) -> dict[str, Path]:
    """Flet's web client files that name the Rive CDN, rewritten to `RIVE_PATH`, cached per Flet version."""
    web_dir = Path(get_package_web_dir())
    local = RIVE_PATH + b"_" * (len(RIVE_CDN) - len(RIVE_PATH))  # same length: the wasm's string table holds
    cache = cache_dir / f"flet-{ft.__version__}"                 # the length before the bytes
    patched = {}
    for name in PATCHED:
        source, target = web_dir / name, cache / name
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_bytes(source.read_bytes().replace(RIVE_CDN, local))
            tmp.replace(target)  # atomic: two app processes starting at once never serve half a file
        patched[name] = target
    return patched


class SkeetFletApp(flet_fastapi.FletApp):
    """Flet's per-connection handler, with the two disconnect gaps of Flet 1.0.5 closed (module doc)."""

    def __init__(self, main: Callable[[ft.Page], Awaitable[None]], *, registry: SessionRegistry,
                 session_timeout_s: int) -> None:
        super().__init__(loop=asyncio.get_running_loop(), executor=flet_fastapi.app_manager.executor, main=main,
                         before_main=None, session_timeout_seconds=session_timeout_s)
        self._registry = registry
        self._timeout_s = session_timeout_s
        self._left_session: Session | None = None

    async def handle(self, websocket: WebSocket) -> None:
        close_codes: list[int] = []
        receive = websocket.receive

        async def receive_noting_the_close() -> Any:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                close_codes.append(int(message.get("code") or 0))
            return message

        websocket.receive = receive_noting_the_close  # type: ignore[method-assign]
        try:
            await super().handle(websocket)
        except WebSocketDisconnect:
            pass  # the tab went away while a message was on its way: the same end as a clean close
        finally:
            for session in self._registry:
                flet_session = session.page.session
                if flet_session.connection is self:  # still attached to this dead socket: Flet skipped it
                    await flet_session.disconnect(self._timeout_s)
        if not close_codes:  # Flet stopped on a failed send before it read the close: read on to it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._read_to_the_close(receive_noting_the_close, close_codes), CLOSE_READ_S)
        if close_codes and close_codes[0] == GOING_AWAY:
            await self._end_gone_session()

    @staticmethod
    async def _read_to_the_close(receive: Callable[[], Awaitable[Any]], close_codes: list[int]) -> None:
        """Read (and drop: nobody is there to act on them) what the tab sent before its close, until it."""
        while not close_codes:
            await receive()

    async def _end_gone_session(self) -> None:
        """The browser closed the socket saying the page is going away (its tab closed, or it navigated
        or reloaded): no reconnect will come for this page, so its session ends now rather than after the
        timeout kept for dropped networks, and its memory goes back before the next tabs need it. A
        reloaded page then starts a new session (issue 13: a reload starts clean). Unless a new connection
        has already taken the session over."""
        flet_session, self._left_session = self._left_session, None
        if flet_session is None or flet_session.connection is not None:
            return
        unique_id = self._FletApp__get_unique_session_id(flet_session.id)  # type: ignore[attr-defined]
        await flet_fastapi.app_manager.delete_session(unique_id)

    def dispose(self) -> None:
        """Flet lets go of the session as the socket ends; it is kept until `handle` knows how it ended."""
        self._left_session = getattr(self, "_FletApp__session", None)  # Flet's private: the socket's session
        super().dispose()

    def send_message(self, message: Message) -> None:
        """Flet's own `send_message`, minus its `transport_log.debug(f"... {message}")`: the f-string runs
        whether or not debug logging is on, and the repr of every patch (each control in it, every field)
        cost ~6 % of the server's CPU per session under load (py-spy, bench/sessions.py)."""
        queue = getattr(self, "_FletApp__send_queue", None)  # Flet's private queue: None once the socket closed
        if queue is None:
            log.debug("message dropped: the client's socket has just closed")
            return
        queue.put_nowait(b"\x00" + msgpack.packb([message.action, message.body], default=ENCODE))


def web_app(main: Callable[[ft.Page], Awaitable[None]], *, registry: SessionRegistry, assets_dir: str,
            hub: MarketHub | None = None,
            session_timeout_s: int = SESSION_TIMEOUT_S, cache_dir: Path | None = None) -> Any:
    """The ASGI app: Skeet's few routes first, Flet's app (static web client + websocket) under them."""
    patched = offline_web_client(cache_dir or state_dir() / "web-cache")
    load_keyring_backends()
    app = flet_fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def serve_patched(name: str) -> Callable[[], Awaitable[Response]]:
        async def handler() -> Response:
            return FileResponse(patched[name], headers=ISOLATION)
        return handler

    for name in PATCHED:
        app.add_api_route(f"/{name}", serve_patched(name), methods=["GET"], include_in_schema=False)

    @app.get(RIVE_PATH.decode() + "{rest:path}", include_in_schema=False)
    async def rive_stub(rest: str) -> Response:
        return Response(RIVE_STUB, media_type="text/javascript", headers=ISOLATION)

    @app.get(HEALTH_PATH, include_in_schema=False)
    async def health(request: Request) -> Response:
        if request.client is None or request.client.host not in LOOPBACK:
            return JSONResponse({"detail": "Not found"}, status_code=404)  # not there for the world
        return JSONResponse({**registry.counts(), **(hub.counts() if hub else {}),
                             "process_tasks": len(asyncio.all_tasks()),
                             "rss_bytes": rss_bytes(),
                             # what the program holds vs the pages that holds it on (jemalloc only): a leak
                             # grows the first, fragmentation only the second
                             **{f"heap_{k}_bytes": v for k, v in jemalloc_stats().items() if k in ("allocated", "active")}})

    if os.environ.get(DEBUG_ENV) == "1":  # an engineer's leak hunt (client/sessions.py), never in production
        @app.get(HEALTH_PATH + "/memory", include_in_schema=False)
        async def memory(request: Request) -> Response:
            if request.client is None or request.client.host not in LOOPBACK:
                return JSONResponse({"detail": "Not found"}, status_code=404)
            if trace := request.query_params.get("trace"):  # start, then stop: what a window left alive
                return JSONResponse(trace_survivors(trace))
            return JSONResponse({**memory_report(), "rss_bytes": rss_bytes(), **registry.counts()})

    @app.websocket("/ws")  # ahead of Flet's own route, which the mount below also holds
    async def flet_socket(websocket: WebSocket) -> None:
        await SkeetFletApp(main, registry=registry, session_timeout_s=session_timeout_s).handle(websocket)

    app.mount("/", flet_fastapi.app(main, assets_dir=assets_dir, no_cdn=True,
                                    session_timeout_seconds=session_timeout_s))
    return app


def load_keyring_backends() -> None:
    """Find the OS keyring's backends now, before any session: keyring keeps, in a module global, the
    traceback of a backend that failed to import (`keyring.backends.Windows`), and with it every frame of
    the stack that first asked, a session's worker thread and its context, Flet's page among it: one
    whole ended session kept for the life of the process."""
    with contextlib.suppress(Exception):  # no keyring, a broken backend: the session says so when it asks
        import keyring

        keyring.get_keyring()


def serve(app: Any, *, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Run `app` until interrupted; `on_ready(url)` once the page really answers (not when uvicorn starts).

    First everything imported and built so far (modules, classes, the app) is moved out of the cyclic
    garbage collector's sight (`gc.freeze`, as `backend_stub.server.run` does): it lives as long as the
    process, yet each full collection walked it all, ~140 ms of CPU that held every session's ticks (the
    tail of tick → screen; ~60 ms with it frozen). Garbage made later, sessions' included, is collected as before."""
    gc.freeze()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, ws="websockets-sansio",
                                           log_level=os.environ.get("SKEET_WEB_LOG_LEVEL", "warning")))
    threading.Thread(target=announce_when_serving, args=(url, server, on_ready), daemon=True,
                     name="announce").start()
    server.run()


def announce_when_serving(url: str, server: uvicorn.Server, on_ready: Callable[[str], None],
                          timeout_s: float = 120.0) -> bool:
    """Poll `url` until it answers 200, then call `on_ready(url)`; False if it never did in time."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline and not server.should_exit:
            try:
                if http.get(url).status_code == 200:
                    on_ready(url)
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    log.error("the web app did not answer on %s within %.0f s", url, timeout_s)
    return False


def rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
