"""The web app's server: "Skeet is running at URL" only once the page answers; the health endpoint only for
loopback; Flet's web client rewritten so it asks no CDN."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import uvicorn
from flet_web import get_package_web_dir

from client.web import RIVE_CDN, RIVE_PATH, announce_when_serving, offline_web_client
from tests.support import ROOT, free_port, stop


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
