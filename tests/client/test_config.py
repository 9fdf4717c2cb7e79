"""Start-up configuration: flet.toml's defaults, SKEET_* overrides, and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.config import DEFAULT_CONFIG_PATH, ClientConfig, ConfigError


def test_shipped_defaults_are_the_embedded_default() -> None:
    config = ClientConfig.load(DEFAULT_CONFIG_PATH, env={})
    assert (config.market, config.backend_url, config.auth, config.state) == ("synthetic", "", "local", "local")
    assert len(config.watchlist) >= 5


def test_environment_overrides_the_file() -> None:
    config = ClientConfig.load(DEFAULT_CONFIG_PATH, env={
        "SKEET_WATCHLIST": "DOGE/USDT, SOL/USDT", "SKEET_REPLAY_SPEED": "10", "SKEET_STATE": "sqlite",
        "SKEET_AUTH": "firebase", "SKEET_MARKET": "loopback:127.0.0.1:9000"})
    assert config.watchlist == ("DOGE/USDT", "SOL/USDT") and config.replay_speed == 10.0
    assert (config.state, config.auth, config.market) == ("sqlite", "firebase", "loopback:127.0.0.1:9000")


@pytest.mark.parametrize(("env", "message"), [
    ({"SKEET_MARKET": "bloomberg"}, "market must be"),
    ({"SKEET_REPLAY_SPEED": "fast"}, "SKEET_REPLAY_SPEED must be a number"),
    ({"SKEET_WATCHLIST": "BTCUSDT"}, "watchlist must list ccxt symbols"),
    ({"SKEET_STATE": "redis"}, "state must be"),
])
def test_bad_settings_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientConfig.load(DEFAULT_CONFIG_PATH, env=env)


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flet.toml"
    path.write_text("[skeet\nmarket = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ClientConfig.load(path, env={})
