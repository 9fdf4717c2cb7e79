"""The CLI contract: epoch-ms and ISO timestamps, RESULT.json's shape, and one-line errors with exit code 2
for files and arguments a trader gets wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.backtest.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
SMA_CROSS = str(ROOT / "assets/strategies/sma-cross.json")


def _zigzag(n: int = 120) -> list[float]:
    # Up 30 candles, down 30: SMA 10 crosses SMA 20 both ways, several times.
    out, price = [], 100.0
    for i in range(n):
        price += 1.0 if (i // 30) % 2 == 0 else -1.0
        out.append(price)
    return out


def _write(path: Path, stamps: list[str], closes: list[float], header: str = "timestamp,open,high,low,close,volume") -> Path:
    lines = [header]
    prev = closes[0]
    for t, c in zip(stamps, closes, strict=True):
        lines.append(f"{t},{prev},{max(prev, c) + 0.5},{min(prev, c) - 0.5},{c},10")
        prev = c
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(tmp_path: Path, *args: str) -> tuple[int, dict | None]:
    out = tmp_path / "result.json"
    code = main([*args, "--out", str(out)])
    return code, json.loads(out.read_text()) if code == 0 else None


def test_epoch_ms_and_iso_files_give_the_same_result(tmp_path: Path) -> None:
    closes = _zigzag()
    start = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    ms = [str(start + 3_600_000 * i) for i in range(len(closes))]
    iso = [f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00" for i in range(len(closes))]  # no zone: UTC
    a = _write(tmp_path / "a.csv", ms, closes)
    b = _write(tmp_path / "b.csv", iso, closes)
    code_a, ra = _run(tmp_path, "--candles", str(a), "--strategy", SMA_CROSS)
    code_b, rb = _run(tmp_path, "--candles", str(b), "--strategy", SMA_CROSS)
    assert code_a == code_b == 0 and ra == rb and ra is not None
    assert ra["trades"] and ra["trades"][0]["entryTime"].endswith("Z")
    assert {"entryTime", "exitTime", "entryPrice", "exitPrice", "side", "amount", "pnl", "returnPct"} <= set(ra["trades"][0])
    assert ra["equity"][0] == [start, 10_000.0] and len(ra["equity"]) == len(closes)
    for key in ("totalReturn", "cagr", "winRate", "profitFactor", "expectancy", "sharpe", "sortino", "calmar",
                "maxDrawdown", "maxDrawdownDuration", "exposure", "fees", "trades"):
        assert key in ra["stats"]
    assert ra["stats"]["trades"] == len(ra["trades"])
    # All in, fee 0: final equity is cash plus the sum of trade P&L.
    assert ra["stats"]["finalEquity"] == pytest.approx(10_000 + sum(t["pnl"] for t in ra["trades"]))


def test_fee_is_a_fraction_of_traded_value(tmp_path: Path) -> None:
    closes = _zigzag()
    f = _write(tmp_path / "c.csv", [f"2024-02-{1 + i // 24:02d} {i % 24:02d}:00" for i in range(len(closes))], closes)
    _, free = _run(tmp_path, "--candles", str(f), "--strategy", SMA_CROSS, "--cash", "1000")
    _, paid = _run(tmp_path, "--candles", str(f), "--strategy", SMA_CROSS, "--cash", "1000", "--fee", "0.001")
    assert free is not None and paid is not None and free["stats"]["fees"] == 0
    traded = sum(t["amount"] * (t["entryPrice"] + t["exitPrice"]) for t in paid["trades"])
    assert paid["stats"]["fees"] == pytest.approx(traded * 0.001, rel=1e-6)
    assert paid["stats"]["finalEquity"] < free["stats"]["finalEquity"]


@pytest.mark.parametrize(("content", "args", "message"), [
    ("timestamp,open,high,low,close\n1,1,1,1,1\n", (), "no volume column"),
    ("timestamp,open,high,low,close,volume\n", (), "no candles"),
    ("timestamp,open,high,low,close,volume\nyesterday,1,2,1,1,0\n", (), "line 2: timestamp 'yesterday'"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,abc,0\n", (), "line 2: close 'abc' is not a number"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,nan,0\n", (), "line 2: close 'nan' must be a positive"),
    ("timestamp,open,high,low,close,volume\n1000,1,1,2,1,0\n", (), "line 2: high 1 is below low 2"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,1,0\n1000,1,2,1,1,0\n", (), "line 3: a second candle"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,1,0\n", ("--fee", "-0.1"), "--fee must be between 0"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,1,0\n", ("--cash", "lots"), "--cash must be a number"),
    ("timestamp,open,high,low,close,volume\n1000,1,2,1,1,0\n", ("--cash", "0"), "--cash must be greater than 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                               args: tuple[str, ...], message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    code = main(["--candles", str(f), "--strategy", SMA_CROSS, *args, "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("strategy", "message"), [
    ('{"buy": {"cross_above": ["sma(10)", "smaa(20)"]}}', "Unknown indicator 'smaa' — did you mean 'sma'?"),
    ('{"buy": {"crosses": ["sma(10)", "sma(20)"]}}', "unknown operator 'crosses'"),
    ('{"buy": {"gt": ["close", 1]}, "exit": {"stopLossPct": -2}}', "'exit.stopLossPct' (percent) must be between 0 and 100, not -2"),
    ('{"buy": {"gt": ["close", 1]}, "exit": {"timeInTrade": "soon"}}', "a duration such as"),
    ('{"buy": {"gt": ["close", 1]}, "sizing": {"type": "all"}}', "'sizing.type' must be"),
    ('{"sell": {"gt": ["close", 1]}}', "needs a 'buy' condition"),
    ('{"buy": {"gt": ["close", 1]}, "leverage": 5}', "unknown strategy field 'leverage'"),
    ('{"buy": ', "not valid JSON"),
])
def test_bad_strategy_is_refused_in_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str,
                                               message: str) -> None:
    candles = _write(tmp_path / "ok.csv", [str(60_000 * i) for i in range(30)], _zigzag(30))
    s = tmp_path / "s.json"
    s.write_text(strategy)
    code = main(["--candles", str(candles), "--strategy", str(s), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_missing_argument_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--strategy", SMA_CROSS, "--out", str(tmp_path / "r.json")]) == 2
    assert "--candles" in capsys.readouterr().err
    assert main(["--candles", str(tmp_path / "nope.csv"), "--strategy", SMA_CROSS, "--out", "r.json"]) == 2
    assert "does not exist" in capsys.readouterr().err
