"""The API as Cloud Run runs it: `python -m backend_stub serve` in a child process, on a free port.

The child is always stopped (SIGTERM, then SIGKILL) when the `with` block ends, so no server outlives
a test, and its output is kept to explain a failed start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]



class BackendProcess:
    """`argv` run from the repository root (the image's WORKDIR layout) with exactly `env`."""

    def __init__(self, argv: list[str], env: Mapping[str, str], *, port: int, log_path: Path) -> None:
        self.argv = argv
        self.env = dict(env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BackendProcess:
        log = self._log_path.open("wb")
        self._proc = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self._proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"the server did not answer /healthz within 30 s:\n{self.output()}")

    def output(self) -> str:
        return self._log_path.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: `sh -c` and the python it execs
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: this virtualenv's python first on PATH, nothing inherited that could
    configure the app (no SKEET_*, no cloud credentials)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


class Deployment:
    """What the deploy tests get from the `deployment` fixture: ports, a clean env, a server runner."""

    free_port = staticmethod(free_port)
    base_env = staticmethod(base_env)
    process = BackendProcess


@pytest.fixture(scope="session")
def deployment() -> type[Deployment]:
    return Deployment
