"""Starts the local backend (`python -m backend_stub`) next to the app on the embedded default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.auth.devtoken import state_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBackend:
    """A child process serving the Skeet API on loopback; a context manager that stops it."""

    def __init__(self, *, port: int | None = None, replay_speed: float = 1.0,
                 log_path: Path | None = None, startup_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._replay_speed = replay_speed
        self._log_path = log_path or state_dir() / "backend.log"
        self._timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1",
               "SKEET_REPLAY_SPEED": str(self._replay_speed)}
        log = self._log_path.open("ab")
        self._process = subprocess.Popen([sys.executable, "-m", "backend_stub"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
        log.close()
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the local backend exited with code {self._process.returncode}; "
                                   f"see {self._log_path}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the local backend did not answer on {self.url} within {self._timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None
