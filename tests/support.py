"""Shared test harness: free loopback ports and real Skeet processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from client.launcher import free_port, wait_serving

__all__ = ["ROOT", "free_port", "start_backend", "stop", "wait_http"]

ROOT = Path(__file__).resolve().parents[1]


def wait_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 60.0) -> None:
    """The launcher's readiness poll, with a longer default: the suite shares 2 cores."""
    wait_serving(url, process, timeout_s=timeout_s)


def stop(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if process.poll() is None:
        process.kill() if kill else process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_backend(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m backend_stub` on 127.0.0.1:`port`, ready when this returns."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "backend_stub"], cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, env={**os.environ, **env, "PORT": str(port)})
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process
