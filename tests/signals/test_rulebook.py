"""The rule book survives restarts, never half-writes, and never silently loses a user's rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.signals import Rule, RuleBook, RuleBookCorrupt, RuleError, RuleNotFound, default_rules

RSI_LOW = Rule(
    id="rsi-low", name="RSI < 25", direction="buy", when={"op": "lt", "left": "rsi_14", "right": 25}
)


def test_changes_persist_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    book = RuleBook(path, defaults=default_rules())
    assert [r.id for r in book.rules] == [r.id for r in default_rules()]
    assert not path.exists()  # defaults are not written until the user changes something
    book.add(RSI_LOW)
    book.disable("ema-cross-up")
    book.edit("rsi-low", name="Deep oversold", cooldown_ms=30_000)
    book.delete("bb-breakout-down")

    again = RuleBook(path, defaults=[])
    assert [r.id for r in again.rules] == [r.id for r in book.rules]
    assert again.get("rsi-low").name == "Deep oversold" and again.get("rsi-low").cooldown_ms == 30_000
    assert again.get("ema-cross-up").enabled is False
    assert "bb-breakout-down" not in again
    again.enable("ema-cross-up")
    assert RuleBook(path).get("ema-cross-up").enabled is True


def test_bad_operations_are_refused_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    book = RuleBook(path, defaults=[RSI_LOW])
    book.save()
    before = path.read_bytes()
    with pytest.raises(RuleError):
        book.add(RSI_LOW)
    with pytest.raises(RuleNotFound):
        book.delete("nope")
    with pytest.raises(RuleNotFound):
        book.enable("nope")
    with pytest.raises(RuleError):
        book.edit("rsi-low", id="other")
    with pytest.raises(RuleError):
        book.edit("rsi-low", direction="hold")
    assert path.read_bytes() == before
    assert book.rules == [RSI_LOW]


def test_a_failed_write_leaves_the_previous_file_intact_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.json"
    book = RuleBook(path, defaults=[RSI_LOW])
    book.save()
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        book.add(default_rules()[0])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.json"]
    assert [r.id for r in book.rules] == ["rsi-low"]  # memory still matches the disk


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        json.dumps({"version": 1, "rules": [{"id": "x", "direction": "up", "when": {}}]}).encode(),
        json.dumps([1, 2, 3]).encode(),
        json.dumps({"version": 99, "rules": []}).encode(),
    ],
    ids=["truncated", "binary", "invalid-rule", "wrong-shape", "future-version"],
)
def test_a_corrupt_file_is_moved_aside_and_reported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "rules.json"
    path.write_bytes(content)
    with pytest.raises(RuleBookCorrupt) as info:
        RuleBook(path, defaults=default_rules())
    err = info.value
    assert err.moved_to.name.startswith("rules.json.corrupt-")
    assert err.moved_to.read_bytes() == content  # the user's bytes are kept
    assert str(err.moved_to) in str(err) and not path.exists()
    # The app can carry on: a new book starts from the defaults.
    assert len(RuleBook(path, defaults=default_rules())) == len(default_rules())


def test_two_corruptions_in_the_same_second_keep_both_files(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    moved = []
    for content in (b"{", b"["):
        path.write_bytes(content)
        with pytest.raises(RuleBookCorrupt) as info:
            RuleBook(path)
        moved.append(info.value.moved_to)
    assert moved[0] != moved[1] and all(m.exists() for m in moved)


def test_a_saved_rule_naming_an_operand_that_does_not_exist_is_set_aside_and_the_others_load(
    tmp_path: Path,
) -> None:
    # Earlier versions saved `rsi_14 is above banana`: it could never fire. It is kept, with why.
    path = tmp_path / "rules.json"
    banana = {"id": "banana", "name": "b", "direction": "buy", "when": {"op": "gt", "left": "rsi_14", "right": "banana"}}
    doc = {"version": 1, "rules": [RSI_LOW.to_dict(), banana]}
    path.write_text(json.dumps(doc))
    book = RuleBook(path, defaults=default_rules())
    assert [r.id for r in book.rules] == ["rsi-low"]
    assert book.refused == [("banana", "Unknown indicator 'banana': use e.g. sma(20), ema(20), rsi(14), macd, "
                                       "bb(20, 2), atr(14), close or price")]
    assert book.refused_to is not None and book.refused_to.name.startswith("rules.json.refused-")
    kept = json.loads(book.refused_to.read_text())["refused"]
    assert kept == [{"rule": banana, "reason": book.refused[0][1]}]
    assert json.loads(path.read_text()) == doc  # untouched until the trader changes something
