"""Fixtures for market-data tests: a small simulated recording and a clock that tests move by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.market.recording import write_recording
from services.market.simulate import simulate


class FakeClock:
    """A wall clock (seconds) whose `sleep` advances it instead of waiting: pacing without real time."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@pytest.fixture(scope="session")
def small_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated minutes of the eight symbols (seed 3)."""
    path = tmp_path_factory.mktemp("replay") / "sim-3.jsonl.gz"
    meta, trades = simulate(3, 3)
    write_recording(path, meta, trades)
    return path
