"""A hosted Skeet web app as a child process, watched from outside: its health endpoint (sessions, tasks),
its memory and CPU, and its TCP connections to the backend. Used by the session tests, the soak test and
`bench/sessions.py`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support import ROOT, free_port, stop, wait_http

HEALTH = "/_skeet/health"


class HostedApp:
    """`python -m client --web` on a free loopback port against `backend_url`; a context manager."""

    def __init__(self, backend_url: str, env: dict[str, str], log_path: Path, *, extra_env: dict[str, str] | None = None
                 ) -> None:
        self.backend_url = backend_url
        self.backend_port = int(backend_url.rsplit(":", 1)[1])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**env, **(extra_env or {})}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HostedApp:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "client", "--web", "--port", str(self.port), "--backend-url", self.backend_url],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=self._env)
        wait_http(self.url, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process)

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + HEALTH, timeout=10).json())

    def rss_bytes(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def backend_connections(self) -> int:
        """Established TCP connections from the app to the backend (httpx pools, /v1/stream sockets)."""
        return sum(1 for c in self.ps.net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == self.backend_port and c.status == psutil.CONN_ESTABLISHED)


def wait_until(condition: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.5,
               what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError with the last value
    after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s:.0f} s (last: {last!r})")
        time.sleep(interval_s)


def hosted_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "SKEET_DATA_DIR": str(data_dir), "SKEET_DEV_KEY": "hosted-dev-key-not-a-secret",
            "PYTHONUNBUFFERED": "1"}
