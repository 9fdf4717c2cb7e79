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


@pytest.fixture(scope="session")
def shipped_recording():
    """The shipped simulated recording, loaded once (0.2 s) and shared by every loopback exchange."""
    from services.market.recording import load_recording
    from services.market.replay import default_recording

    return load_recording(default_recording())


@pytest.fixture
async def loopback(shipped_recording):
    """A loopback Binance on a free port, replaying the shipped recording in real time."""
    from services.market.loopback_exchange import LoopbackExchange
    from services.market.replay import ReplayFeed

    async with LoopbackExchange(ReplayFeed(recording=shipped_recording), push_interval_s=0.02) as exchange:
        yield exchange


@pytest.fixture
async def binance(loopback):
    """Unmodified ccxt.pro.binance pointed at the loopback exchange (keys included); closed after the test."""
    import ccxt.pro

    exchange = ccxt.pro.binance(loopback.ccxt_config(private=True) | {"enableRateLimit": False})
    try:
        yield exchange
    finally:
        await exchange.close()
