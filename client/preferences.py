"""The trader's preferences on this device (watchlist, theme), kept across restarts.

One JSON file, written atomically (temp file + rename); a corrupt file is moved aside and reported,
never silently replaced by defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Preferences:
    watchlist: list[str] = field(default_factory=list)
    theme: str = "system"
    market: str = ""  # a market source chosen in Settings; empty: flet.toml's


class PreferencesFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None  # set when a corrupt file was moved aside on load

    def load(self, defaults: Preferences) -> Preferences:
        try:
            doc = json.loads(self.path.read_text())
            watchlist = [s for s in doc.get("watchlist", defaults.watchlist) if isinstance(s, str) and "/" in s]
            theme = doc.get("theme", defaults.theme)
            market = doc.get("market", defaults.market)
            return Preferences(watchlist=watchlist or defaults.watchlist,
                               theme=theme if theme in ("system", "light", "dark") else defaults.theme,
                               market=market if isinstance(market, str) else defaults.market)
        except FileNotFoundError:
            return defaults
        except (ValueError, AttributeError, TypeError):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            self.problem = f"Your saved preferences were unreadable and were moved to {aside.name}"
            return defaults

    def save(self, preferences: Preferences) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".prefs-")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(preferences), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
