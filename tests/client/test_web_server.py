"""The web app's server: "Skeet is running at URL" only once the page answers; the health endpoint only for
loopback; Flet's web client rewritten so it asks no CDN; a closed tab's session ends at once, a dropped
connection's only after a grace it can come back in."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import msgpack
import uvicorn
import websockets
from flet_web import get_package_web_dir

from client.web import (
    GOING_AWAY,
    RIVE_CDN,
    RIVE_PATH,
    SESSION_TIMEOUT_S,
    announce_when_serving,
    offline_web_client,
)
from tests.hosted import HostedApp, hosted_env, wait_until
from tests.support import ROOT, free_port, start_backend, stop


def test_the_url_is_announced_only_once_the_page_answers() -> None:
    port = free_port()
    served: list[int] = []
    announced: list[tuple[str, list[int]]] = []

    class Warming(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            status = 503 if len(served) < 3 else 200  # still starting for the first three asks
            served.append(status)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    url = f"http://127.0.0.1:{port}"
    announcer = threading.Thread(target=announce_when_serving, daemon=True,
                                 args=(url, uvicorn.Server(uvicorn.Config(app=None)),
                                       lambda u: announced.append((u, list(served)))))
    announcer.start()  # nothing listens yet: refused connections are not an answer
    server = ThreadingHTTPServer(("127.0.0.1", port), Warming)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        announcer.join(timeout=30)
        assert announced == [(url, [503, 503, 503, 200])]
    finally:
        server.shutdown()


def test_python_m_client_prints_the_url_when_it_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SKEET_DATA_DIR": str(tmp_path), "SKEET_DEV_KEY": "k", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "client", "--web", "--port", str(port),
                                "--backend-url", "http://127.0.0.1:9"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Skeet is running at"):
                break
            assert time.monotonic() < deadline, "no 'running at' line within 60 s"
        assert line.split()[4] == f"http://127.0.0.1:{port}"
        assert httpx.get(f"http://127.0.0.1:{port}", timeout=10).status_code == 200  # at once, no retry
        health = httpx.get(f"http://127.0.0.1:{port}/_skeet/health", timeout=10).json()
        assert health["sessions"] == 0 and health["rss_bytes"] > 0
    finally:
        stop(process)


def test_the_web_client_names_no_cdn_for_rive(tmp_path: Path) -> None:
    patched = offline_web_client(tmp_path)
    for name, path in patched.items():
        data = path.read_bytes()
        assert RIVE_CDN not in data and RIVE_PATH in data, name
    source = Path(get_package_web_dir()) / "main.dart.wasm"
    assert patched["main.dart.wasm"].stat().st_size == source.stat().st_size  # same length: the wasm stays valid


# -- a session's end: at once for a tab that goes away, after a grace for a connection that drops ------------
REGISTER = 1  # flet.messaging.protocol.MessageAction.REGISTER_CLIENT


async def flet_client(url: str, session_id: str | None, *, then: str) -> str:
    """A Flet web client: registers (resuming `session_id` if given), takes the first screen, then leaves
    as a closing tab does (`then="go away"`: close code 1001) or as a dropped network does (`"drop"`: the
    connection cut, no close frame). The session id the server gave it."""
    async with websockets.connect(url.replace("http", "ws", 1) + "/ws", max_size=None, ping_interval=None,
                                  open_timeout=60) as ws:
        page = {"route": "/", "width": 1280.0, "height": 800.0, "web": True, "platform": "linux",
                "media": {}, "window": {"width": 1280.0, "height": 800.0}}
        await ws.send(b"\x00" + msgpack.packb([REGISTER, {"session_id": session_id, "page_name": "", "page": page}]))
        given: str | None = None
        for _ in range(10):  # the register answer, then the first screen's patches
            message = await asyncio.wait_for(ws.recv(), 60)
            if given is None and isinstance(message, bytes) and message[:1] == b"\x00":
                action, body = msgpack.unpackb(message[1:], raw=False, strict_map_key=False)
                if action == REGISTER:
                    given = str(body["session_id"])
        assert given is not None, "the server never answered the register"
        if then == "drop":
            ws.transport.abort()
        else:
            await ws.close(code=GOING_AWAY)
        return given


def test_a_closed_tab_ends_its_session_at_once_and_a_dropped_connection_can_come_back(tmp_path: Path) -> None:
    env = {**hosted_env(tmp_path / "data"), "SKEET_DEV_KEY": "web-server-test-dev-key-not-a-secret"}
    backend = start_backend(env, backend_port := free_port(), tmp_path / "backend.log")
    try:
        with HostedApp(f"http://127.0.0.1:{backend_port}", env, tmp_path / "client.log") as app:
            session_id = asyncio.run(flet_client(app.url, None, then="drop"))
            wait_until(lambda: app.health()["sessions"] == 1, 30, what="the session started")
            # the network came back: the same tab resumes its own session, nothing started afresh
            assert asyncio.run(flet_client(app.url, session_id, then="go away")) == session_id
            assert app.health()["sessions_opened"] == 1
            # the tab closed: its session ends now, not after the eviction a dropped one waits for (>= 12 s)
            health = wait_until(lambda: (h := app.health())["sessions"] == 0 and h["session_tasks"] == 0 and h,
                                SESSION_TIMEOUT_S - 2, what="the closed tab's session ended")
            assert health["sessions_closed"] == 1
    finally:
        stop(backend)
