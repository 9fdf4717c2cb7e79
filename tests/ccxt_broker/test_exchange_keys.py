"""Where exchange keys come from: the OS keyring (through `keyring`) and Google Secret Manager (its REST
API on a loopback server, with `StandInGoogleCredentials` in place of a service account)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import google.auth.credentials
import keyring
import keyring.backends.fail
import pytest
from aiohttp import web

from backend_stub.brokers.ccxt_broker import (
    KEYRING_SERVICE,
    ApiCredentials,
    KeyringExchangeKeys,
    KeyStoreUnavailable,
    SecretManagerExchangeKeys,
)

CREDS = ApiCredentials(api_key="AKIA-test-8d1f03c2", secret="s3cr3t-test-77ab91e0", password="pass-phrase-1")


async def test_the_keyring_round_trips_under_the_skeet_service(stand_in_keyring) -> None:
    keys = KeyringExchangeKeys()
    assert await keys.get("u1", "binance") is None
    await keys.put("u1", "binance", CREDS)
    assert await keys.get("u1", "binance") == CREDS
    assert await keys.get("u1", "kraken") is None  # per exchange
    assert await keys.get("u2", "binance") is None  # and per user
    [(service, username)] = stand_in_keyring.passwords
    assert (service, username) == (KEYRING_SERVICE, "exchange-keys:binance:u1") and service == "skeet"
    await keys.delete("u1", "binance")
    await keys.delete("u1", "binance")  # deleting what is gone is fine
    assert await keys.get("u1", "binance") is None


async def test_no_keyring_backend_means_no_keys_and_a_clear_error() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # what a headless Linux box has
    try:
        with pytest.raises(KeyStoreUnavailable, match="No secure key store"):
            await KeyringExchangeKeys().get("u1", "binance")
        with pytest.raises(KeyStoreUnavailable, match="No secure key store"):
            await KeyringExchangeKeys().put("u1", "binance", CREDS)
    finally:
        keyring.set_keyring(previous)


async def test_unreadable_stored_keys_are_an_error_not_a_crash(stand_in_keyring) -> None:
    stand_in_keyring.set_password("skeet", "exchange-keys:binance:u1", "not json")
    with pytest.raises(KeyStoreUnavailable, match="unreadable"):
        await KeyringExchangeKeys().get("u1", "binance")


def test_credentials_never_show_in_repr() -> None:
    text = repr(CREDS) + str(CREDS)
    for secret in CREDS.secrets():
        assert secret not in text


class StandInGoogleCredentials(google.auth.credentials.Credentials):
    """google-auth credentials without Google's token endpoint (the one allowed stand-in): `refresh`
    mints a fixed access token that the loopback Secret Manager accepts."""

    TOKEN = "ya29.stand-in-secret-manager"

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request) -> None:  # noqa: ANN001 - google-auth's transport Request
        self.refreshes += 1
        self.token = self.TOKEN


class LoopbackSecretManager:
    """`GET /v1/projects/{p}/secrets/{s}/versions/latest:access` as secretmanager.googleapis.com answers."""

    def __init__(self) -> None:
        self.secrets: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.fail_with: int | None = None

    async def access(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {StandInGoogleCredentials.TOKEN}":
            return web.json_response({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401)
        if self.fail_with:
            return web.json_response(
                {"error": {"code": self.fail_with, "status": "INTERNAL"}}, status=self.fail_with
            )
        project, name = request.match_info["project"], request.match_info["secret"]
        if name not in self.secrets:
            message = f"Secret [projects/{project}/secrets/{name}] not found or has no versions."
            return web.json_response(
                {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, status=404
            )
        data = self.secrets[name]
        return web.json_response(
            {
                "name": f"projects/123456789/secrets/{name}/versions/3",
                "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": "2915823961"},
            }
        )


@pytest.fixture
async def secret_manager() -> AsyncIterator[tuple[LoopbackSecretManager, str]]:
    fake = LoopbackSecretManager()
    app = web.Application()
    app.router.add_get("/v1/projects/{project}/secrets/{secret}/versions/latest:access", fake.access)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_secret_manager_reads_the_latest_version_and_caches_it(secret_manager) -> None:
    fake, url = secret_manager
    secret_id = SecretManagerExchangeKeys.secret_id("uid:with/odd chars", "binance")
    assert secret_id == "skeet-exchange-keys-binance-uid_with_odd_chars"
    fake.secrets[secret_id] = CREDS.to_json().encode()
    credentials = StandInGoogleCredentials()
    now = [0.0]
    keys = SecretManagerExchangeKeys(
        project="skeet-prod", credentials=credentials, base_url=url, clock=lambda: now[0]
    )
    assert await keys.get("uid:with/odd chars", "binance") == CREDS
    assert await keys.get("uid:with/odd chars", "binance") == CREDS
    assert fake.requests == [f"/v1/projects/skeet-prod/secrets/{secret_id}/versions/latest:access"]
    now[0] = 301.0  # past the cache's 300 s
    await keys.get("uid:with/odd chars", "binance")
    assert len(fake.requests) == 2 and credentials.refreshes == 1  # the token was reused
    assert await keys.get("nobody", "binance") is None


async def test_secret_manager_failures_never_show_the_payload(secret_manager) -> None:
    fake, url = secret_manager
    keys = SecretManagerExchangeKeys(project="p", credentials=StandInGoogleCredentials(), base_url=url)
    fake.fail_with = 500
    with pytest.raises(KeyStoreUnavailable, match="HTTP 500"):
        await keys.get("u1", "binance")
    fake.fail_with = None
    fake.secrets[SecretManagerExchangeKeys.secret_id("u1", "binance")] = json.dumps(
        {"apiKey": "only-half"}
    ).encode()
    with pytest.raises(KeyStoreUnavailable, match="unreadable") as caught:
        await keys.get("u1", "binance")
    assert "only-half" not in str(caught.value)
    dead = SecretManagerExchangeKeys(
        project="p", credentials=StandInGoogleCredentials(), base_url="http://127.0.0.1:9"
    )
    with pytest.raises(KeyStoreUnavailable, match="cannot be read"):
        await dead.get("u1", "binance")
