"""Fixtures for CcxtBroker: the market engineer's loopback Binance exchange (real ccxt talks to it
over HTTP with signed private calls), an embedded SQLite store, and a keyring the test owns.

The OS keyring: the broker tests use `StandInKeyring`, an in-memory `keyring` backend installed with
`keyring.set_keyring` for the test only (the one allowed stand-in), so they need no D-Bus session;
`KeyringExchangeKeys` calls the real `keyring` API on top of it. test_secret_service_keyring.py runs the
same code against a real Secret Service (gnome-keyring) in a child D-Bus session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest

from backend_stub.brokers.ccxt_broker import ApiCredentials, CcxtBroker, KeyringExchangeKeys
from backend_stub.store.sqlite import SqliteStore
from services.market.loopback_exchange import LoopbackExchange

TRADER = "trader-1"


class StandInKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring backend (the allowed stand-in for the OS Secret Service)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


@pytest.fixture
def stand_in_keyring() -> Iterator[StandInKeyring]:
    previous = keyring.get_keyring()
    backend = StandInKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    async with LoopbackExchange(balances={"USDT": 50_000, "BTC": 1, "ETH": 10}) as ex:
        yield ex


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state.db") as s:
        yield s


@pytest.fixture
async def keys(stand_in_keyring: StandInKeyring, exchange: LoopbackExchange) -> KeyringExchangeKeys:
    source = KeyringExchangeKeys()
    await source.put(TRADER, "binance", ApiCredentials(api_key=exchange.api_key, secret=exchange.secret))
    return source


@pytest.fixture
async def broker(store, keys, exchange) -> AsyncIterator[CcxtBroker]:
    # Only the URLs and options point at loopback; the user's keys come from the keyring, not the config.
    config = exchange.ccxt_config() | {"enableRateLimit": False}
    async with CcxtBroker(store=store, keys=keys, exchange_id="binance", exchange_config=config) as b:
        yield b
