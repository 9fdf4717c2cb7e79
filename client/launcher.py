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


def wait_serving(url: str, process: subprocess.Popen[bytes] | None = None, *, timeout_s: float = 30.0,
                 name: str = "server") -> None:
    """Returns once `url` answers 200; raises RuntimeError if `process` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the {name} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the {name} did not answer on {url} within {timeout_s:.0f} s")


class LocalService:
    """A child process serving HTTP on loopback (the local backend, the loopback exchange), ready
    when `health_path` answers 200; a context manager that stops it."""

    def __init__(self, module: str, *, name: str, health_path: str, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, port: int | None = None, log_path: Path | None = None,
                 startup_timeout_s: float = 30.0) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [sys.executable, "-m", module, *args]
        self._env = env or {}
        self._health = health_path
        self._log_path = log_path or state_dir() / f"{module.rsplit('.', 1)[-1]}.log"
        self._timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._env}
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(self._command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=Path(__file__).resolve().parent.parent)
        log.close()
        try:
            wait_serving(f"{self.url}{self._health}", self._process, timeout_s=self._timeout_s, name=self.name)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; see {self._log_path}") from None

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def local_backend(*, replay_speed: float = 1.0, port: int | None = None, feed: str = "synthetic") -> LocalService:
    """The Skeet API (`python -m backend_stub`): paper trading and the embedded state store, its paper
    fills on `feed` (the app's market, so both see the same trade at the same moment)."""
    port = port or free_port()
    return LocalService("backend_stub", name="local backend", health_path="/healthz", port=port,
                        env={"PORT": str(port), "HOST": "127.0.0.1", "SKEET_REPLAY_SPEED": str(replay_speed),
                             "SKEET_FEED": feed})


def loopback_exchange(*, port: int | None = None, log_path: Path | None = None,
                      market: str = "synthetic") -> LocalService:
    """A Binance-wire-compatible exchange on loopback serving `market` (the synthetic one): live mode, offline."""
    port = port or free_port()
    return LocalService("services.market.loopback_exchange", name="loopback exchange",
                        health_path="/api/v3/exchangeInfo", args=("--port", str(port), "--market", market),
                        port=port, log_path=log_path)
