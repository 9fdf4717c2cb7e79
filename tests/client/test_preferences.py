"""The trader's preferences survive restarts, and a damaged file is kept and reported, never lost."""

from __future__ import annotations

from pathlib import Path

from client.preferences import Preferences, PreferencesFile

DEFAULTS = Preferences(watchlist=["BTC/USDT"], theme="system")


def test_round_trip(tmp_path: Path) -> None:
    prefs = PreferencesFile(tmp_path / "u" / "preferences.json")
    prefs.save(Preferences(watchlist=["ETH/USDT", "DOGE/USDT"], theme="dark", market="ccxt:kraken"))
    again = PreferencesFile(tmp_path / "u" / "preferences.json").load(DEFAULTS)
    assert again == Preferences(watchlist=["ETH/USDT", "DOGE/USDT"], theme="dark", market="ccxt:kraken")
    assert not list((tmp_path / "u").glob(".prefs-*"))  # no temp file left behind


def test_corrupt_file_is_moved_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.write_text('{"watchlist": ["ETH/USDT"')  # cut off mid-write by an older version, say
    prefs = PreferencesFile(path)
    assert prefs.load(DEFAULTS) == DEFAULTS
    kept = list(tmp_path.glob("preferences.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"watchlist": ["ETH/USDT"'
    assert prefs.problem and kept[0].name in prefs.problem


def test_bad_values_fall_back_per_field(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.write_text('{"watchlist": ["nonsense", 7, "SOL/USDT"], "theme": "purple", "market": 3}')
    assert PreferencesFile(path).load(DEFAULTS) == Preferences(watchlist=["SOL/USDT"], theme="system", market="")
