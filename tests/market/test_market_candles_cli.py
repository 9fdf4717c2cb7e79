"""`python -m services.market.candles`: the CSV contract others rely on, run as a process, on every source."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from services.market.synthetic import DAY_MS, MINUTE_MS, SyntheticMarket

ROOT = Path(__file__).resolve().parents[2]
HEADER = "timestamp,open,high,low,close,volume"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def candles(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.market.candles", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)


def _rows(text: str) -> np.ndarray:
    lines = text.splitlines()
    assert lines[0] == HEADER
    return np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=",", ndmin=2) if len(lines) > 1 else np.empty((0, 6))


def test_synthetic_candles_as_csv_with_a_half_open_range(tmp_path):
    out = tmp_path / "eth.csv"
    done = candles("--source", "synthetic", "--symbol", "ETH/USDT", "--timeframe", "1h",
                   "--since", "2025-03-01", "--until", "2025-03-02T00:00:00+00:00", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    rows = _rows(out.read_text())
    since = 1_740_787_200_000  # 2025-03-01T00:00Z
    assert len(rows) == 24 and rows[0, 0] == since and rows[-1, 0] == since + 23 * 3_600_000  # until excluded
    expected = SyntheticMarket(7).candles("ETH/USDT", "1h", since, since + DAY_MS)
    assert np.allclose(rows, expected, rtol=0, atol=1e-6)
    line = out.read_text().splitlines()[1].split(",")
    assert len(line[1].split(".")[1]) == 2 and len(line[5].split(".")[1]) == 4  # ETH's tick 0.01, lot 0.0001


def test_to_stdout_with_a_zoned_datetime_and_a_seed():
    done = candles("--source", "synthetic:3", "--symbol", "BTC/USDT", "--timeframe", "5m",
                   "--since", "2025-06-01T12:02:00+02:00", "--until", "2025-06-01T10:30")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    first = 1_748_772_300_000  # 10:05Z: the first 5-minute bar opening at or after 10:02Z
    assert rows[0, 0] == first and len(rows) == 5
    assert np.allclose(rows, SyntheticMarket(3).candles("BTC/USDT", "5m", first, first + 25 * MINUTE_MS), atol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["--symbol", "LUNA/USDT"], "LUNA/USDT is not in the simulated market"),
    (["--symbol", "BTCUSDT"], "not a market such as BTC/USDT"),
    (["--timeframe", "2h"], "timeframe '2h' is not one of 1m, 5m, 15m, 1h, 4h, 1d"),
    (["--source", "bloomberg"], "unknown source 'bloomberg'"),
    (["--source", "replay:/nowhere.jsonl.gz"], "no recording at /nowhere.jsonl.gz"),
    (["--source", f"replay:{__file__}"], "Cannot read the recording"),
    (["--source", "csv:/nowhere.csv"], "no file at /nowhere.csv"),
    (["--source", "synthetic:lucky"], "the seed after synthetic: must be a whole number"),
    (["--since", "2025-02-01"], "must be before --until"),
    (["--until", "2025-01-01"], "must be before --until"),
    (["--since", "last tuesday"], "'last tuesday' is not an ISO date"),
    (["--until", "2025-13-01"], "is not an ISO date"),
    (["--since", "2020-01-01", "--until", "2021-01-01"], "starts on 2024-01-01"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(args, message):
    base = {"--source": "synthetic", "--symbol": "BTC/USDT", "--timeframe": "1h", "--since": "2025-01-01",
            "--until": "2025-02-01"}
    extra = []
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1]
        else:
            extra = args[i:]
            break
    done = candles(*[x for kv in base.items() for x in kv], *extra)
    assert done.returncode == 2, done
    assert done.stdout == "" and done.stderr.count("\n") == 1 and message in done.stderr


def test_a_csv_export_reads_back_through_csv_source_and_the_store(tmp_path):
    out = tmp_path / "sol-1m.csv"
    args = ["--symbol", "SOL/USDT", "--since", "2025-05-01", "--until", "2025-05-02"]
    assert candles("--source", "synthetic", "--timeframe", "1m", "--out", str(out), *args).returncode == 0
    direct = candles("--source", "synthetic", "--timeframe", "15m", *args)
    again = candles("--source", f"csv:{out}", "--timeframe", "15m", *args)
    cached = candles("--source", f"csv:{out}", "--timeframe", "15m", "--store", str(tmp_path / "store"), *args)
    assert again.returncode == cached.returncode == 0, again.stderr + cached.stderr
    assert np.allclose(_rows(again.stdout), _rows(direct.stdout)) and len(_rows(direct.stdout)) == 96
    assert cached.stdout == again.stdout
    assert list((tmp_path / "store").rglob("2025-05.npy"))


def test_a_recording_at_its_recorded_times(small_recording):
    done = candles("--source", f"replay:{small_recording}", "--symbol", "DOGE/USDT", "--timeframe", "1m",
                   "--since", "2025-12-31", "--until", "2026-01-02")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == 3 and rows[0, 0] == 1_767_225_600_000  # the simulator's origin, 2026-01-01
    missing = candles("--source", f"replay:{small_recording}", "--symbol", "PEPE/USDT", "--timeframe", "1m",
                      "--since", "2025-12-31", "--until", "2026-01-02")
    assert missing.returncode == 2 and "PEPE/USDT is not in the recording" in missing.stderr


async def test_ccxt_candles_through_the_loopback_exchange(loopback):
    now = int(time.time() * 1000)
    since = (now // 3_600_000 - 30) * 3_600_000
    iso = lambda ms: np.datetime_as_string(np.datetime64(ms, "ms"))  # noqa: E731
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.market.candles", "--source", f"loopback:127.0.0.1:{loopback.port}",
        "--symbol", "ETH/USDT", "--timeframe", "1h", "--since", iso(since), "--until", iso(since + 24 * 3_600_000),
        cwd=ROOT, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    rows = _rows(stdout.decode())
    expected = loopback.feed.candles_at("ETH/USDT", "1h", since_ms=since, limit=24)
    assert rows[:, 0].tolist() == [c.timestamp_ms for c in expected]
    assert rows[:, 4].tolist() == [c.close for c in expected]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.market.candles", "--source", f"loopback:127.0.0.1:{loopback.port}",
        "--symbol", "LUNA/USDT", "--timeframe", "1h", "--since", iso(since), "--until", iso(since + 3_600_000),
        cwd=ROOT, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2 and stderr.decode().count("\n") == 1 and "LUNA/USDT" in stderr.decode()
