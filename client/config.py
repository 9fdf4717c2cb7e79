"""Start-up configuration: `flet.toml` defaults, overridden by `SKEET_*` environment variables."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = ROOT / "flet.toml"
ASSETS_DIR = ROOT / "assets"


DEFAULT_WATCHLIST = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT")


class ConfigError(Exception):
    """flet.toml or an override is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    market: str = "synthetic"
    exchange: str = "binance"
    replay_speed: float = 1.0
    watchlist: tuple[str, ...] = DEFAULT_WATCHLIST
    timeframe: str = "1m"
    backend_url: str = ""
    theme: str = "system"
    user_id: str = "local"
    auth: str = "local"  # "local" (the embedded default) or "firebase" (Firebase Auth, or its emulator)
    state: str = "local"  # "local"/"sqlite" (the backend's /v1/stream) or "firestore" (Firestore listeners)
    firebase_api_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG_PATH, env: dict[str, str] | None = None) -> ClientConfig:
        env = dict(os.environ) if env is None else env
        try:
            table = tomllib.loads(path.read_text()).get("skeet", {}) if path.exists() else {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        values: dict[str, Any] = {}
        for name in ("market", "exchange", "replay_speed", "watchlist", "timeframe", "backend_url", "theme",
                     "user_id", "auth", "state", "firebase_api_key"):
            raw = env.get(f"SKEET_{name.upper()}")
            if raw is not None:
                values[name] = _parse_env(name, raw)
            elif name in table:
                values[name] = table[name]
        config = cls(**{**values, "watchlist": tuple(values.get("watchlist", DEFAULT_WATCHLIST))})
        config.validate()
        return config

    def validate(self) -> None:
        # "gateway": live prices through the backend's market gateway (what phones use: no ccxt there)
        if self.market.partition(":")[0] not in ("synthetic", "replay", "ccxt", "loopback", "gateway"):
            raise ConfigError("market must be 'synthetic', 'synthetic:SEED', 'replay', 'replay:PATH', 'ccxt', "
                              f"'loopback' or 'gateway', not {self.market!r}")
        if not (0 < float(self.replay_speed) <= 1000):
            raise ConfigError("replay_speed must be in (0, 1000]")
        if not self.watchlist or not all(isinstance(s, str) and "/" in s for s in self.watchlist):
            raise ConfigError("watchlist must list ccxt symbols such as 'BTC/USDT'")
        if self.auth not in ("local", "firebase"):
            raise ConfigError(f"auth must be 'local' or 'firebase', not {self.auth!r}")
        if self.state not in ("local", "sqlite", "firestore"):  # SKEET_STATE is shared with the backend
            raise ConfigError(f"state must be 'local', 'sqlite' or 'firestore', not {self.state!r}")
        if self.theme not in ("system", "light", "dark"):
            raise ConfigError("theme must be 'system', 'light' or 'dark'")


def _parse_env(name: str, raw: str) -> Any:
    if name == "watchlist":
        return [s.strip() for s in (json.loads(raw) if raw.startswith("[") else raw.split(",")) if s.strip()]
    if name == "replay_speed":
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"SKEET_REPLAY_SPEED must be a number, not {raw!r}") from exc
    return raw
