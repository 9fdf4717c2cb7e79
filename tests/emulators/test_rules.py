"""`firestore.rules` on the Firestore emulator, with real ID tokens from the Auth emulator.

Requests go through Firestore's REST API as a client SDK's would: `Authorization: Bearer <ID token>`;
the backend's writes use the emulator's admin token ("Bearer owner"), which the rules do not govern.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.emulator

BACKEND_ONLY = ("orders", "positions", "alerts", "insights")
PRIVATE = ("_changes", "_state", "_idempotency", "_account")
ADMIN = {"Authorization": "Bearer owner"}


class Rest:
    """Just enough of Firestore's REST API to ask the rules a question: returns the HTTP status."""

    def __init__(self, base: str) -> None:
        self._http = httpx.Client(base_url=base, timeout=30)

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def _headers(token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def get(self, path: str, token: str | None) -> int:
        return self._http.get(path, headers=self._headers(token)).status_code

    def list(self, path: str, token: str | None) -> int:
        return self._http.get(path, headers=self._headers(token)).status_code

    def write(self, path: str, token: str | None, fields: dict[str, str] | None = None) -> int:
        body = {"fields": {k: {"stringValue": v} for k, v in (fields or {"note": "x"}).items()}}
        return self._http.patch(path, json=body, headers=self._headers(token)).status_code

    def delete(self, path: str, token: str | None) -> int:
        return self._http.delete(path, headers=self._headers(token)).status_code


@pytest.fixture
def rest(emulators: Any, firestore_host: str) -> Iterator[Rest]:
    emulators.need_official_firestore("security rules and the REST API")
    client = Rest(emulators.firestore_rest)
    yield client
    client.close()


@pytest.fixture
def alice(sign_up) -> Any:  # noqa: ANN001
    return sign_up("alice@example.com")


@pytest.fixture
def bob(sign_up) -> Any:  # noqa: ANN001
    return sign_up("bob@example.com")


@pytest.fixture
def seeded(rest: Rest, alice: Any, bob: Any) -> None:
    """Every collection of both users holds a document, written as the backend writes (admin)."""
    for user in (alice, bob):
        for collection in (*BACKEND_ONLY, *PRIVATE):
            assert rest.write(f"users/{user.uid}/{collection}/d1", "owner") == 200
        assert rest.write(f"users/{user.uid}/settings/app", "owner", {"theme": "dark"}) == 200
        assert rest.write(f"users/{user.uid}/watchlist/BTC-USDT", "owner", {"symbol": "BTC/USDT"}) == 200


ALLOWED, DENIED = 200, 403


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("collection", [*BACKEND_ONLY, "settings", "watchlist"])
def test_a_user_reads_only_their_own_documents(rest: Rest, alice: Any, bob: Any, collection: str) -> None:
    doc = {"settings": "app", "watchlist": "BTC-USDT"}.get(collection, "d1")
    assert rest.get(f"users/{alice.uid}/{collection}/{doc}", alice.id_token) == ALLOWED
    assert rest.list(f"users/{alice.uid}/{collection}", alice.id_token) == ALLOWED
    assert rest.get(f"users/{bob.uid}/{collection}/{doc}", alice.id_token) == DENIED
    assert rest.list(f"users/{bob.uid}/{collection}", alice.id_token) == DENIED
    assert rest.get(f"users/{alice.uid}/{collection}/{doc}", None) == DENIED  # signed out
    assert rest.list(f"users/{alice.uid}/{collection}", None) == DENIED


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("collection", BACKEND_ONLY)
def test_orders_positions_alerts_insights_are_written_by_the_backend_alone(
    rest: Rest, alice: Any, bob: Any, collection: str
) -> None:
    own = f"users/{alice.uid}/{collection}"
    assert rest.write(f"{own}/new", alice.id_token) == DENIED  # create
    assert rest.write(f"{own}/d1", alice.id_token) == DENIED  # update
    assert rest.delete(f"{own}/d1", alice.id_token) == DENIED
    assert rest.write(f"users/{bob.uid}/{collection}/d1", alice.id_token) == DENIED
    assert rest.write(f"{own}/d2", "owner") == ALLOWED  # the backend (admin) may


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("collection", PRIVATE)
def test_the_backends_private_collections_are_hidden_even_from_their_owner(
    rest: Rest, alice: Any, collection: str
) -> None:
    path = f"users/{alice.uid}/{collection}"
    assert rest.get(f"{path}/d1", alice.id_token) == DENIED
    assert rest.list(path, alice.id_token) == DENIED
    assert rest.write(f"{path}/d1", alice.id_token) == DENIED


@pytest.mark.usefixtures("seeded")
def test_a_user_writes_their_own_settings_but_nobody_elses(rest: Rest, alice: Any, bob: Any) -> None:
    assert rest.write(f"users/{alice.uid}/settings/app", alice.id_token, {"theme": "light"}) == ALLOWED
    assert rest.write(f"users/{bob.uid}/settings/app", alice.id_token, {"theme": "light"}) == DENIED
    assert rest.write(f"users/{alice.uid}/settings/other", alice.id_token) == DENIED  # only settings/app
    assert rest.write(f"users/{alice.uid}/settings/app", alice.id_token, {"_version": "999"}) == DENIED
    assert rest.write(f"users/{alice.uid}/settings/app", alice.id_token, {"_updatedAt": "forged"}) == DENIED
    assert rest.delete(f"users/{alice.uid}/settings/app", alice.id_token) == DENIED
    assert rest.write(f"users/{alice.uid}/settings/app", None, {"theme": "light"}) == DENIED


@pytest.mark.usefixtures("seeded")
def test_a_user_edits_their_own_watchlist_but_nobody_elses(rest: Rest, alice: Any, bob: Any) -> None:
    own = f"users/{alice.uid}/watchlist"
    assert rest.write(f"{own}/ETH-USDT", alice.id_token, {"symbol": "ETH/USDT"}) == ALLOWED  # create
    assert rest.write(f"{own}/ETH-USDT", alice.id_token, {"symbol": "ETH/USDT", "pin": "1"}) == ALLOWED
    assert rest.delete(f"{own}/ETH-USDT", alice.id_token) == ALLOWED
    assert rest.write(f"users/{bob.uid}/watchlist/ETH-USDT", alice.id_token) == DENIED
    assert rest.delete(f"users/{bob.uid}/watchlist/BTC-USDT", alice.id_token) == DENIED
    assert rest.write(f"{own}/SOL-USDT", None) == DENIED


def test_nothing_outside_users_is_readable_or_writable(rest: Rest, alice: Any) -> None:
    assert rest.write("config/global", "owner") == ALLOWED
    assert rest.get("config/global", alice.id_token) == DENIED
    assert rest.write("config/global", alice.id_token) == DENIED
    assert rest.write(f"users/{alice.uid}", alice.id_token) == DENIED  # the user doc itself


def test_a_forged_token_is_not_an_identity(rest: Rest, alice: Any) -> None:
    # The emulator accepts unsigned tokens but not garbage; a token naming alice in another project's
    # audience is still a token naming alice (production checks the signature and audience).
    assert rest.write(f"users/{alice.uid}/orders/d1", "owner") == ALLOWED
    assert rest.get(f"users/{alice.uid}/orders/d1", "not-a-jwt") in (400, 401, 403)
